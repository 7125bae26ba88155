"""Train or evaluate Mask R-CNN with noisy_mask's head: detectron2's `tools/train_net.py`.

    noisy-mask train_net --config-file CONFIG.yaml [--num-gpus N] [--resume] [KEY VAL ...]
    noisy-mask train_net --config-file CONFIG.py [--num-gpus N] [--resume] [key=val ...]

(also `python -m noisy_mask.train_net` and, in a checkout, `python train_net.py`). Same flags as
detectron2's `tools/train_net.py`, plus `--register-coco NAME JSON IMAGE_DIR`. A `.py` config is
a LazyConfig, trained as by detectron2's `tools/lazyconfig_train_net.py` (`noisy_mask.engine.lazy`);
any other is a YAML config (`noisy_mask.engine.trainer`). Either way a run (training or
`--eval-only`) holds its output folder while it lives: a second run into the same `OUTPUT_DIR`
(`train.output_dir`) is refused (`noisy_mask.engine.lock`).
"""

from pathlib import Path
from typing import Optional, Sequence

from detectron2.engine import launch

from ..engine import lazy, trainer
from . import COMMANDS, prog


def train(args):
    """Train or evaluate in this process (launch starts one per GPU, or CPU process)."""
    if Path(args.config_file).suffix == ".py":
        return lazy.main(args)
    return trainer.main(args)


def build_parser():
    """detectron2's `default_argument_parser`, with `--register-coco`."""
    parser = trainer.argument_parser()
    parser.prog, parser.description = prog("train_net"), COMMANDS["train_net"]
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    print("Command Line Args:", args)
    launch(
        train,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
    return 0
