"""Check a COCO instances json and its images in one pass, and report every problem found:

    noisy-mask validate ANNOTATIONS.json IMAGE_DIR

prints one line per problem (`instances_train.json: annotation 17 (image 4): 'segmentation'
polygon 0 has 5 coordinates (odd count)`), then a summary line, and exits 1 if there is any
problem, 0 if there is none (`ok: N images, M annotations`), 2 if a file or folder given on the
command line is missing. The checks are those of `noisy_mask.coco.checks`.
"""

import argparse
import sys
from typing import Optional, Sequence

from ..coco.checks import format_problem, validate_dataset
from . import COMMANDS, prog


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("validate"),
        description=COMMANDS["validate"] + " Exit status: 0 no problem, 1 problems found, "
        "2 usage error.",
    )
    parser.add_argument("annotations", help="the COCO instances json")
    parser.add_argument("image_dir", nargs="?", help="the folder the images' file_name is under")
    parser.add_argument("--json-only", action="store_true", help="do not open the image files")
    parser.add_argument("--workers", type=int, default=None, help="image decoding threads")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.image_dir is None and not args.json_only:
        parser.error("IMAGE_DIR is required (or pass --json-only)")
    image_dir = None if args.json_only else args.image_dir
    try:
        validation = validate_dataset(args.annotations, image_dir, args.workers)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for problem in validation.problems:
        print(format_problem(problem))
    print(validation.summary())
    return 1 if validation.problems else 0
