"""Losses as practitioners set them (Dice 3x longer, focal's alpha, bce+dice at Mask2Former's
weights) against BCE, in a robustness grid's folder (`noisy_mask.experiments.variants`).

    noisy-mask loss_variants --output output/robustness-grid --levels clean mid \\
        --seeds 0 1 2 [--variants dice_3x focal_no_alpha ...] [--weights CHECKPOINT]

Runs already in the folder (the grid's bce, dice, focal, bce+dice) are read, not trained again.
"""
import argparse
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..engine.launcher import RunsFailedError, Schedule
from ..experiments.levels import NOISE_LEVELS
from ..experiments.options import GRID, PRETRAIN, StartingPoint
from ..experiments.variants import VARIANTS, run_variants
from . import COMMANDS, prog
from .arguments import add_launch_arguments, launch_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("loss_variants"), description=COMMANDS["loss_variants"],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    parser.add_argument("--output", type=Path, required=True, help="a robustness grid's folder")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--levels", nargs="+", choices=NOISE_LEVELS, default=["mid"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--weights", default="",
                        help="the checkpoint every run starts from (default: the grid's "
                             "detector pretrained without masks, made under --output)")
    parser.add_argument("--max-iter", type=int, default=GRID.max_iter,
                        help="the grid's iterations per run; a 3x variant trains 3 times as many")
    add_launch_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    launch = launch_from_args(parser, args)
    start = StartingPoint(weights=args.weights, pretrain=None if args.weights else PRETRAIN)
    schedule = Schedule(GRID.num_train, GRID.num_val, args.max_iter)
    command = shlex.join(["noisy-mask", "loss_variants",
                          *(sys.argv[1:] if argv is None else argv)])
    try:
        print(run_variants(args.output, args.variants, args.levels, args.seeds, launch, schedule,
                           start, command))
    except RunsFailedError as e:  # each failed run named with its log; the others ran
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
