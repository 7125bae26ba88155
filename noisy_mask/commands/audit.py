"""Which annotations of a COCO file are bad: every annotation scored against a model's predictions
on the same images, ranked by suspicion, with the confident predictions that no annotation covers.

    noisy-mask audit --annotations A.json IMAGE_DIR --output DIR --detections RESULTS.json
    noisy-mask audit --annotations A.json IMAGE_DIR --output DIR --weights W --config C
    noisy-mask audit --annotations A.json IMAGE_DIR --output DIR --folds K [--config C]
        [--max-iter N] [KEY VALUE ...]

The predictions come from a COCO results file (any model: segmentation RLE, score, category_id),
from a detectron2 model run on the images, or from K models cross-fitted on the file itself: a
model audits its own training data badly, since it has learned the noise; with --folds K each
image is predicted by a model trained on the other folds. Without --config, the built-in data uses
the built-in CPU config and other data a CPU config sized from it (OUTPUT/config.yaml). Trailing
KEY VALUE pairs override the config.

Writes into --output: audit.json and audit.csv (ranked by suspicion), audit_suspects.png,
audit.html with audit_thumbs/ (open it in a browser, offline; click a header to sort), and
predictions.json with --weights or --folds; prints a one-line summary. Exit status 2 on bad input.
See docs/audit.md for how to read the scores.
"""

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..audit.predict import Predictions
from ..audit.run import run_audit
from ..audit.scores import AuditOptions
from ..audit.truth import truth_line
from ..engine.launcher import RunsFailedError
from ..utils.overrides import check_overrides
from . import COMMANDS, prog
from .arguments import add_launch_arguments, launch_from_args

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("audit"), description=COMMANDS["audit"],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    parser.add_argument("--annotations", nargs=2, required=True, metavar=("JSON", "IMAGE_DIR"),
                        help="the COCO instances file to audit and its image folder")
    parser.add_argument("--output", required=True, type=Path, metavar="DIR")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--detections", type=Path, metavar="RESULTS_JSON",
                        help="a COCO results file of predictions on the same images")
    source.add_argument("--weights", help="a detectron2 checkpoint to run on the images")
    source.add_argument("--folds", type=int, metavar="K",
                        help="cross-fit K models on the file itself (K >= 2)")
    parser.add_argument("--config", type=Path, default=None,
                        help="detectron2 config of --weights, or to train with --folds")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="with --folds: iterations per model (default: the config's)")
    parser.add_argument("--seed", type=int, default=0,
                        help="with --folds: the split of the images and the training seed")
    parser.add_argument("--min-score", type=float, default=0.05,
                        help="predictions below this score are ignored (default 0.05)")
    parser.add_argument("--match-iou", type=float, default=0.1,
                        help="the least mask IoU of a match (default 0.1)")
    parser.add_argument("--missing-score", type=float, default=0.5,
                        help="the least score of a possibly missing instance (default 0.5)")
    parser.add_argument("--boundary-ratio", type=float, default=None,
                        help="the boundary IoU's contour band, a fraction of the image diagonal "
                             "(default 0.02, as boundary AP)")
    parser.add_argument("--num-pictures", type=int, default=12,
                        help="annotations in audit_suspects.png (0: no picture)")
    parser.add_argument("--no-html", action="store_true", help="no audit.html nor thumbnails")
    truth = parser.add_mutually_exclusive_group()
    truth.add_argument("--noise-report", type=Path, metavar="REPORT_JSON",
                       help="the report of `noisy-mask noise` that made the annotations: "
                            "also score the audit against the truth (flip AUROC, IoU rank "
                            "correlation)")
    truth.add_argument("--clean", type=Path, metavar="CLEAN_JSON",
                       help="the clean file a noisy copy was made from: the same, paired by "
                            "annotation id, and the deleted instances among the possibly "
                            "missing ones")
    add_launch_arguments(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                        help="config overrides (with --weights or --folds)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_overrides(parser, args.opts)
    annotations, image_dir = args.annotations
    predictions = Predictions(
        detections=args.detections, weights=args.weights, folds=args.folds, config=args.config,
        opts=args.opts, max_iter=args.max_iter, seed=args.seed,
        launch=launch_from_args(parser, args),
    )  # fmt: skip
    try:
        predictions.check()
    except ValueError as e:
        parser.error(str(e))
    for path, what in ((annotations, "annotation file"), (args.clean, "clean annotation file"),
                       (args.noise_report, "noise report")):  # fmt: skip
        if path is not None and not Path(path).is_file():
            parser.error(f"{what} {path} not found")
    if not Path(image_dir).is_dir():
        parser.error(f"image folder {image_dir} not found")
    options = AuditOptions(args.min_score, args.match_iou, args.missing_score)
    if args.boundary_ratio is not None:
        options = dataclasses.replace(options, boundary_ratio=args.boundary_ratio)
    try:
        result = run_audit(
            annotations, image_dir, args.output, predictions, options,
            num_pictures=args.num_pictures, html=not args.no_html, clean=args.clean,
            noise_report=args.noise_report,
        )  # fmt: skip
    except (ValueError, OSError) as e:  # AnnotationError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunsFailedError as e:  # a fold model failed, named with its log
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(result["line"])
    if result["truth"] is not None:
        print(truth_line(result["truth"]))
    for path in result["paths"].values():
        print(f"  {path}")
    return 0
