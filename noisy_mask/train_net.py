"""`python -m noisy_mask.train_net`: detectron2's `tools/train_net.py` with noisy_mask's head.

    python -m noisy_mask.train_net --config-file CONFIG [--num-gpus N] [--resume] [KEY VALUE ...]

Same flags as detectron2's `tools/train_net.py`, plus `--register-coco NAME JSON IMAGE_DIR`;
see `noisy_mask.engine.trainer`.
"""
from detectron2.engine import launch

from .engine.trainer import argument_parser, main


def cli(argv=None):
    args = argument_parser().parse_args(argv)
    print("Command Line Args:", args)
    return launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    cli()
