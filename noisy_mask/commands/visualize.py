"""Pictures of the masks: what the noise did to the annotations, and what each run predicts.

    noisy-mask visualize noise --clean CLEAN.json --noisy NOISY.json --images DIR
        --output OUT.png [--num 6] [--seed 0] [--image-ids ID ...] [--columns 3]
    noisy-mask visualize predictions RUN_DIR [RUN_DIR ...] --images DIR
        --annotations GT.json --output OUT.png [--labels NAME ...] [--num 4] [--image-ids ID ...]
        [--score-threshold 0.5] [--dataset D]

`noise` draws the clean and noisy outlines of sample images, `predictions` each run's predicted
masks side by side on the images where the runs differ most (see `noisy_mask.viz.pictures`).
Prints the PNG's path; exits 1, naming the file, on a missing or bad input.
"""

import argparse
import sys
from typing import Optional, Sequence

from ..viz.pictures import draw_noise_grid, draw_predictions_grid
from . import COMMANDS, prog

EXIT_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("visualize"), description=COMMANDS["visualize"],
    )
    commands = parser.add_subparsers(dest="command", required=True)
    noise = commands.add_parser("noise", help="clean vs noisy outlines of sample images")
    noise.add_argument("--clean", required=True, metavar="CLEAN.json")
    noise.add_argument("--noisy", required=True, metavar="NOISY.json")
    noise.add_argument("--images", required=True, metavar="DIR", help="the images' folder")
    noise.add_argument("--output", required=True, metavar="OUT.png")
    noise.add_argument("--num", type=int, default=6, help="images to draw (6)")
    noise.add_argument("--seed", type=int, default=0, help="for the choice of images (0)")
    noise.add_argument("--image-ids", type=int, nargs="+", metavar="ID", help="draw these images")
    noise.add_argument("--columns", type=int, default=3, help="images per row (3)")

    pred = commands.add_parser("predictions", help="each run's predicted masks, side by side")
    pred.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training output folders")
    pred.add_argument("--images", required=True, metavar="DIR", help="the images' folder")
    pred.add_argument("--annotations", required=True, metavar="GT.json", help="clean masks")
    pred.add_argument("--output", required=True, metavar="OUT.png")
    pred.add_argument("--labels", nargs="+", metavar="NAME", help="one per run (folder names)")
    pred.add_argument("--num", type=int, default=4, help="images to draw (4)")
    pred.add_argument("--image-ids", type=int, nargs="+", metavar="ID", help="draw these images")
    pred.add_argument("--score-threshold", type=float, default=0.5, help="lowest score (0.5)")
    pred.add_argument("--dataset", help="the test dataset when inference/ holds several")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"--num must be >= 1, got {args.num}")
    if args.command == "noise" and args.columns < 1:
        parser.error(f"--columns must be >= 1, got {args.columns}")
    labels = args.labels if args.command == "predictions" else None
    if labels is not None and len(labels) != len(args.runs):
        parser.error(f"--labels has {len(args.labels)} names for {len(args.runs)} run folders")
    try:
        if args.command == "noise":
            path = draw_noise_grid(
                args.clean,
                args.noisy,
                args.images,
                args.output,
                args.num,
                args.seed,
                args.image_ids,
                args.columns,
            )
        else:
            path = draw_predictions_grid(
                args.runs,
                args.images,
                args.annotations,
                args.output,
                args.labels,
                args.num,
                args.image_ids,
                args.score_threshold,
                args.dataset,
            )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(path)
    return 0
