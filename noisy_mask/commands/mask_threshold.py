"""Finished runs evaluated again at other mask thresholds (MODEL.ROI_MASK_HEAD.MASK_THRESHOLD):
is a loss's low mask AP its masks' shape or only where detectron2's 0.5 cuts them?

    noisy-mask mask_threshold RUN_DIR [RUN_DIR ...] [--thresholds 0.5 0.7 0.9]

Each evaluation is kept in RUN_DIR/mask_threshold_<t>/; prints box, mask and boundary AP and how
much of its box a mask fills, per run and threshold.
"""
import argparse
from pathlib import Path
from typing import Optional, Sequence

from ..engine.launcher import Launch
from ..engine.placement import DEVICES, resolve_device
from ..experiments.variants import evaluate_at_thresholds, thresholds_table
from . import COMMANDS, prog


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("mask_threshold"), description=COMMANDS["mask_threshold"],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.5, 0.7, 0.9])
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="auto (default): CUDA when torch sees a GPU, else the CPU")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:  # the evaluations run one after the other, each on the whole machine
        slot = Launch(resolve_device(args.device), jobs=1).slots()[0]
    except ValueError as e:
        parser.error(str(e))
    rows = {str(run): evaluate_at_thresholds(run, args.thresholds, slot) for run in args.runs}
    print("\n".join(thresholds_table(rows)))
    return 0
