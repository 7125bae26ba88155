"""Make the built-in synthetic shapes dataset (COCO instance segmentation) from a seed:

    noisy-mask make_shapes --output datasets/shapes --num-train 200 --num-val 50
    python -m noisy_mask.data.shapes --output datasets/shapes_hard --variant hard

prints the paths of the annotation files and image folders, and exits with status 2 on bad
arguments. The dataset itself is `noisy_mask.data.shapes`.
"""

import argparse
import sys
from typing import Optional, Sequence

from ..data.shapes import VARIANTS, generate_shapes_dataset
from . import COMMANDS, prog


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog("make_shapes"), description=COMMANDS["make_shapes"])
    parser.add_argument("--output", required=True, help="folder to write the dataset to")
    parser.add_argument("--num-train", type=int, default=200, help="training images (200)")
    parser.add_argument("--num-val", type=int, default=50, help="validation images (50)")
    parser.add_argument("--image-size", type=int, default=192, help="side of the images (192)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="plain",
        help="plain: flat shapes whose edges are their outlines; hard: textured, low-contrast, "
        "touching shapes on a cluttered background (plain)",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paths = generate_shapes_dataset(
            args.output, args.num_train, args.num_val, args.image_size, args.seed, args.variant
        )
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key in ("train_json", "train_images", "val_json", "val_images"):
        print(f"{key}: {paths[key]}")
    return 0
