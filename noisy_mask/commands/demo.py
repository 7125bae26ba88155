"""The noisy-mask experiment on the built-in shapes dataset, as one command (`make demo`):

    noisy-mask demo --output output/demo [--noise mid] [--losses bce dice]
    noisy-mask demo --output output/demo-quick --quick [--pretrained WEIGHTS]

pretrains a detector without masks (once per output folder), fine-tunes BCE on the clean training
masks and each loss on a noisy copy of them, evaluates every run on the clean validation masks,
and writes results.md (with the share of BCE's loss to noise each loss recovers), the curves and
the pictures into the output folder (`noisy_mask.experiments.shapes_demo`). Finished runs are not
trained again, so an interrupted experiment resumes where it stopped.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from ..engine.launcher import RunsFailedError
from ..experiments.shapes_demo import DEMO_LOSSES, FULL, QUICK, run_demo
from ..experiments.levels import LEVELS
from . import COMMANDS, prog
from .arguments import add_launch_arguments, launch_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("demo"), description=COMMANDS["demo"]
    )
    parser.add_argument("--output", required=True, type=Path, help="folder for everything")
    parser.add_argument("--losses", nargs="+", default=list(DEMO_LOSSES),
                        help="losses trained on the noisy masks (default: %(default)s)")
    parser.add_argument("--noise", default="mid", choices=[lvl for lvl in LEVELS if lvl != "clean"])
    parser.add_argument("--seed", type=int, default=0, help="noise and training seed")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a first look: {QUICK.schedule.num_train} training images, "
        f"{QUICK.schedule.max_iter} iterations from a detector pretrained "
        f"{QUICK.pretrain.max_iter} (full: {FULL.schedule.num_train}, {FULL.schedule.max_iter}, "
        f"{FULL.pretrain.max_iter})",
    )
    parser.add_argument("--pretrained", default=None,
                        help="weights of a detector to fine-tune instead of pretraining one "
                             "(make demo-quick passes the full demo's when it exists)")
    add_launch_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.pretrained and not Path(args.pretrained).is_file():
        parser.error(f"--pretrained: {args.pretrained} not found")
    launch = launch_from_args(parser, args)
    started = time.time()
    print(
        f"noisy-mask demo: clean bce, and {', '.join(args.losses)} at noise {args.noise}; "
        f"{plan.schedule.max_iter} iterations each {launch.describe()}, output {args.output}",
        flush=True,
    )
    try:
        table_path = run_demo(args.output, args.losses, args.noise, plan, args.seed, launch,
                              args.pretrained)
    except RunsFailedError as e:  # each failed run named with its log; the others ran
        print(f"error: {e}", file=sys.stderr)
        return 1
    print()
    print(table_path.read_text())
    print(
        f"Done in {(time.time() - started) / 60:.1f} min. Results, curves and runs: {args.output}/"
    )
    return 0
