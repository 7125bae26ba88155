"""The noisy-mask experiment on the built-in shapes dataset, as one command (`make demo`):

    python -m noisy_mask.experiment --output output/demo [--losses bce dice] [--noise mid] [--quick]

generates the dataset, makes a noisy copy of its training masks, trains one Mask R-CNN per loss
on it, evaluates each on the clean validation masks, and writes results.md, the curves and the
pictures into the output folder (`noisy_mask.experiments.demo`). Finished runs are not trained
again, so an interrupted experiment resumes where it stopped.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .experiments.demo import FULL, QUICK, run_experiment
from .experiments.levels import LEVELS
from .experiments.runner import DEFAULT_JOBS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m noisy_mask.experiment", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--output", required=True, type=Path, help="folder for everything")
    parser.add_argument("--losses", nargs="+", default=["bce", "dice", "label_smoothing"])
    parser.add_argument("--noise", default="mid", choices=LEVELS)
    parser.add_argument("--seed", type=int, default=0, help="noise and training seed")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                        help="runs trained side by side, the cores shared between them "
                             f"(default {DEFAULT_JOBS})")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a first look: {QUICK.num_train} training images, {QUICK.max_iter} "
        f"iterations (full: {FULL.num_train}, {FULL.max_iter})",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    schedule = QUICK if args.quick else FULL
    started = time.time()
    print(
        f"noisy-mask experiment: losses {', '.join(args.losses)}, noise {args.noise}, "
        f"{schedule.max_iter} iterations each, output {args.output}",
        flush=True,
    )
    table_path = run_experiment(args.output, args.losses, args.noise, schedule, args.seed, args.jobs)
    print()
    print(table_path.read_text())
    print(
        f"Done in {(time.time() - started) / 60:.1f} min. Results, curves and runs: {args.output}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
