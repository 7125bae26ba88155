"""Compare runs: precision/recall curves on the clean masks and training-loss curves, as PNG:

    noisy-mask plot RUN_DIR [RUN_DIR ...] --output DIR [--labels NAME ...] [--dataset D]

Each RUN_DIR is a training output folder (one per loss) holding detectron2's metrics.json and the
precision/recall data of its evaluation, in the folder itself, in inference/ or in
inference/<dataset>/. Writes DIR/pr_curves.png and DIR/loss_curves.png (see `noisy_mask.viz.curves`);
the same inputs give the same bytes. Exits 1, naming the folder and the file, when one is missing.
"""

import argparse
import sys
from typing import Optional, Sequence

from ..utils.run_folders import default_labels
from ..viz.curves import load_run, write_plots
from . import COMMANDS, prog


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("plot"), description=COMMANDS["plot"] + " Written as PNG files.",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training output folders")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the PNG files")
    parser.add_argument(
        "--labels", nargs="+", metavar="NAME", help="one per run (default: folder names)"
    )
    parser.add_argument("--dataset", help="the test dataset to plot when inference/ holds several")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.runs):
        parser.error(f"--labels has {len(args.labels)} names for {len(args.runs)} run folders")
    labels = args.labels or default_labels(args.runs)
    try:
        runs = [load_run(d, label, args.dataset) for d, label in zip(args.runs, labels)]
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in write_plots(runs, args.output):
        print(path)
    return 0
