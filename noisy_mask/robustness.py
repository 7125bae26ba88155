"""Which loss helps at which noise level: a grid of losses x noise levels x seeds.

    python -m noisy_mask.robustness --output output/robustness                   # the full grid
    python -m noisy_mask.robustness --output output/robustness-smoke --smoke     # a quick subset
    python -m noisy_mask.robustness --output DIR --losses bce svls --levels clean mid --seeds 0 1 2

Each run fine-tunes a detector pretrained without masks on a noisy copy of the built-in dataset's
training masks and evaluates on the clean validation split (`noisy_mask.experiments.robustness`).
An interrupted grid resumes: finished runs are not repeated. Writes results.json, results.md and
pr_curves_<level>.png into the output folder.
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .experiments.levels import LEVELS
from .experiments.robustness import (
    BCE_ONLY_LEVELS,
    DEFAULT_LEVELS,
    DEFAULT_LOSSES,
    GRID,
    PRETRAIN,
    SMOKE,
    run_robustness,
)
from .experiments.runner import DEFAULT_JOBS, Schedule


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m noisy_mask.robustness", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--losses", nargs="+", default=list(DEFAULT_LOSSES))
    parser.add_argument("--levels", nargs="+", default=list(DEFAULT_LEVELS), choices=LEVELS,
                        help="default: %(default)s; mid_outlines and mid_no_outlines split mid "
                             "into its mask part and the rest (noisy_mask/experiments/levels.py); "
                             f"at {', '.join(BCE_ONLY_LEVELS)} only bce is trained")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--clean-losses", nargs="+", default=None,
                        help="losses trained on clean masks (default: all of --losses); the "
                             "recovered share needs only bce there")
    parser.add_argument("--max-iter", type=int, default=None,
                        help=f"iterations per run (default {GRID.max_iter}; "
                             f"{SMOKE['schedule'].max_iter} with --smoke)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="runs side by side")
    parser.add_argument("--smoke", action="store_true",
                        help=f"only {SMOKE['losses']} at {SMOKE['levels']}, seed 0")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.losses, args.levels, args.seeds = SMOKE["losses"], SMOKE["levels"], SMOKE["seeds"]
    base = SMOKE["schedule"] if args.smoke else GRID
    schedule = Schedule(base.num_train, base.num_val, args.max_iter or base.max_iter)
    command = "python -m noisy_mask.robustness " + " ".join(sys.argv[1:] if argv is None else argv)
    table = run_robustness(
        args.output, args.losses, args.levels, args.seeds, schedule, args.jobs,
        args.clean_losses, SMOKE["pretrain"] if args.smoke else PRETRAIN, command,
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
