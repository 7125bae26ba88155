"""The commands, one thin module each (its parser and `main(argv)`), behind one door:

    noisy-mask COMMAND [ARGS ...]          # the console script
    python -m noisy_mask COMMAND [ARGS ...]

`COMMANDS` names each with its one-line purpose, which is also its `--help` description. The
commands the README teaches are also `python -m noisy_mask.COMMAND` (a three-line module of that
name, or the `__main__` of the package of that name).
"""

import importlib
import sys
import textwrap
from typing import Optional, Sequence

# In the order of the work: data, training, the loss grid, the audit and the repair, pictures.
COMMANDS = {
    "make_shapes": "Make the built-in synthetic shapes dataset (COCO instance segmentation) "
    "from a seed.",
    "validate": "Report every problem in a COCO instances json and its images.",
    "noise": "Write a copy of a COCO instances file with seeded, reproducible mask noise.",
    "train_net": "Train or evaluate Mask R-CNN with the noisy-mask head (detectron2's "
    "train_net, the same flags).",
    "demo": "The experiment in small on the built-in shapes: clean BCE against each loss on "
    "noisy masks.",
    "robustness": "Which loss helps at which noise level: the loss grid, on the built-in data "
    "or yours.",
    "loss_variants": "Losses as practitioners set them (Dice 3x longer, focal's alpha, bce+dice) "
    "against BCE, in a grid's folder.",
    "mask_threshold": "Finished runs evaluated again at other mask thresholds.",
    "audit": "Which annotations of a COCO file are bad: each scored against a model's "
    "predictions, ranked by suspicion.",
    "refine": "A corrected copy of a COCO instances file, from its audit.",
    "plot": "Compare runs: precision/recall curves on the clean masks and training-loss curves.",
    "visualize": "Pictures of the masks: what the noise did to the annotations, and what each "
    "run predicts.",
}


def prog(command: str) -> str:
    """The name a command's parser shows: `noisy-mask COMMAND`."""
    return f"noisy-mask {command}"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: noisy-mask COMMAND [ARGS ...]   (or python -m noisy_mask COMMAND ...)", "",
             "Noise-robust mask losses for Detectron2's Mask R-CNN, and the tools around them.",
             "", "commands:"]
    for name, purpose in COMMANDS.items():
        lines += textwrap.wrap(purpose, 100, initial_indent=f"  {name:<{width}}  ",
                               subsequent_indent=" " * (width + 4))
    lines += ["", "noisy-mask COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run `COMMAND ARGS ...` (a dash in the name is read as an underscore: `train-net`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name = argv[0].replace("-", "_")
    if name not in COMMANDS:
        print(f"noisy-mask: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    command = importlib.import_module(f"{__name__}.{name}")
    return command.main(argv[1:])
