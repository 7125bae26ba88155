"""Finished runs evaluated again at other mask thresholds (MODEL.ROI_MASK_HEAD.MASK_THRESHOLD):
is a loss's low mask AP its masks' shape or only where detectron2's 0.5 cuts them?

    python benchmarks/mask_threshold.py RUN_DIR [RUN_DIR ...] [--thresholds 0.5 0.7 0.9]

Each evaluation is kept in RUN_DIR/mask_threshold_<t>/; prints box, mask and boundary AP and how
much of its box a mask fills, per run and threshold.
"""
import argparse
import sys
from pathlib import Path

from noisy_mask.experiments.loss_variants import evaluate_at_thresholds, thresholds_table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--thresholds", nargs="+", type=float, default=[0.5, 0.7, 0.9])
    args = parser.parse_args(argv)
    rows = {str(run): evaluate_at_thresholds(run, args.thresholds) for run in args.runs}
    print("\n".join(thresholds_table(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
