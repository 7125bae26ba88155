"""A corrected copy of a COCO instances file, from its audit (`noisy-mask audit`).

    noisy-mask refine --annotations A.json IMAGE_DIR --audit AUDIT_DIR --output OUT.json
        [--source auto|prediction|grabcut|agreement|none] [--reference REF.json] [--add-missing]
        [--fix-classes]

The masks of the suspicious annotations (matched by the audit with a mask IoU in
[--min-iou, --max-iou)) are replaced by those of one source, with their boxes and areas:
`prediction` (the audit's best match; cross-fitted when the audit used --folds), `grabcut` (the
image, seeded by the annotation), `agreement` (the pixels at least 2 of annotation, prediction
and GrabCut hold) or `none`. `auto` (the default) chooses per dataset: with --reference (a few
carefully annotated images of the same file) the source whose masks are closer to the reference
than the annotations, by at least --min-gain mean IoU and beyond the spread over annotations (a
paired bootstrap); without, by label-free evidence (each source refereed by the other); and
`none` when nothing shows a gain. With --fix-classes, classes the model disputes with a score
>= --class-score are corrected (off by default: a model that disputes many correct classes makes
them worse), and with --reference only when, on the reference's annotations, the corrections
fix more classes than they break beyond chance (a sign test at 0.05); --add-missing adds its
confident predictions that no annotation covers.

Writes OUT.json and OUT.refine_report.json (every change by annotation id, the choice and its
numbers), each atomically; the input is never changed. Prints a one-line summary. Exit status 2
on bad input, with nothing written. See docs/refine.md.
"""

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..refine.options import MAX_IOU, MIN_IOU
from ..refine.apply import RefineOptions, refine_file
from ..refine.choose import ChoiceOptions
from ..refine.truth import truth_line
from . import COMMANDS, prog

EXIT_BAD_INPUT = 2
SOURCE_CHOICES = ("auto", "none", "prediction", "grabcut", "agreement")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("refine"), description=COMMANDS["refine"],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )  # fmt: skip
    parser.add_argument(
        "--annotations",
        nargs=2,
        required=True,
        metavar=("JSON", "IMAGE_DIR"),
        help="the audited COCO instances file and its image folder",
    )
    parser.add_argument(
        "--audit",
        required=True,
        type=Path,
        metavar="AUDIT_DIR",
        help="the folder `noisy-mask audit` wrote for that file",
    )
    parser.add_argument("--output", required=True, type=Path, metavar="OUT_JSON")
    parser.add_argument(
        "--source",
        choices=SOURCE_CHOICES,
        default="auto",
        help="the masks that replace the suspicious ones (default: auto)",
    )
    parser.add_argument(
        "--reference",
        type=Path,
        metavar="REF_JSON",
        help="a few carefully annotated images of the same file (COCO): decides " "the source",
    )
    parser.add_argument(
        "--detections",
        type=Path,
        metavar="RESULTS_JSON",
        help="the predictions the audit scored against, when they are no longer "
        "where it left them",
    )
    parser.add_argument("--max-iou", type=float, default=MAX_IOU,
                        help=f"suspicious: audited mask IoU below this (default {MAX_IOU:g}; 1: "
                             "every matched annotation, when the noise touches every outline)")
    parser.add_argument("--min-iou", type=float, default=MIN_IOU,
                        help="... and at least this: below it the model sees another object "
                             f"(default {MIN_IOU:g})")
    parser.add_argument(
        "--class-score",
        type=float,
        default=0.7,
        help="take the model's class when it disputes the annotation's with at "
        "least this score (default 0.7)",
    )
    parser.add_argument("--fix-classes", action="store_true",
                        help="take the model's class where it disputes the annotation's with at "
                             "least --class-score; with --reference, only if that fixes more of "
                             "the reference's classes than it breaks, beyond chance (off by "
                             "default: see docs/refine.md)")
    parser.add_argument(
        "--add-missing",
        action="store_true",
        help="add the confident predictions that no annotation covers",
    )
    parser.add_argument(
        "--missing-score",
        type=float,
        default=0.7,
        help="with --add-missing: the least score of one (default 0.7)",
    )
    parser.add_argument(
        "--min-gain",
        type=float,
        default=0.02,
        help="auto: the least mean IoU a source must gain (default 0.02)",
    )
    parser.add_argument(
        "--band-ratio",
        type=float,
        default=0.1,
        help="GrabCut's band on each side of the outline, x sqrt(area) " "(default 0.1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the bootstrap's (default 0)")
    parser.add_argument(
        "--clean",
        type=Path,
        metavar="CLEAN_JSON",
        help="the clean file a noisy copy was made from: score every source "
        "against it (paired by annotation id)",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    annotations, image_dir = args.annotations
    for path, what in ((annotations, "annotation file"), (args.reference, "reference file"),
                       (args.detections, "results file"),
                       (args.clean, "clean annotation file")):  # fmt: skip
        if path is not None and not Path(path).is_file():
            parser.error(f"{what} {path} not found")
    for path, what in ((image_dir, "image folder"), (args.audit, "audit folder")):
        if not Path(path).is_dir():
            parser.error(f"{what} {path} not found")


    try:
        options = RefineOptions(
            source=args.source, max_iou=args.max_iou, min_iou=args.min_iou,
            fix_classes=args.fix_classes, class_score=args.class_score,
            add_missing=args.add_missing, missing_score=args.missing_score,
            band_ratio=args.band_ratio,
            choice=ChoiceOptions(min_gain=args.min_gain, seed=args.seed),
        ).check()  # fmt: skip
        result = refine_file(
            annotations, image_dir, args.audit, args.output, detections=args.detections,
            reference=args.reference, clean=args.clean, options=options,
        )  # fmt: skip
    except (ValueError, OSError) as e:  # AnnotationError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(result["line"])
    if "truth" in result["report"]:
        print(truth_line(result["report"]["truth"]))
    for path in result["paths"].values():
        print(f"  {path}")
    return 0
