"""Write a copy of a COCO instances file with seeded, reproducible mask noise:

    noisy-mask noise --input IN.json --output OUT.json --preset mid --seed 0

writes OUT.json and OUT.noise_report.json (see `noise.apply`: the counts, the mask IoU and what was
done to each instance), prints a one-line summary, and exits with status 2 on bad input, with
nothing written.
"""

import argparse
import os
import sys
from typing import Iterable, Optional

from ..noise.apply import format_report, noise_file
from ..noise.params import APPLY_TO, PRESETS
from . import COMMANDS, prog

EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("noise"),
        description=COMMANDS["noise"] + " OUT.noise_report.json is written next to it.",
        epilog="Sizes are for a 640 px image. Per instance, with s = longer image side / 640 and "
        "c = 0.25 * sqrt(mask area): tolerance and sigma become min(max(size * s, 0.5), c); the "
        "kernel radius becomes min(max(1, round((k * s - 1) / 2)), max(1, floor(c))), so the "
        "kernel stays odd and >= 3. An instance the noise would empty keeps its original mask "
        "(counted as kept_original). Deletion and flips take round_half_up(fraction * N) "
        "instances; on a file of one category the presets skip the flips (the report says so) "
        "and an explicit --flip-fraction above 0 is an error. OUT.noise_report.json lists what "
        "was done to each instance (per_instance). Exit status 2 on bad input, with nothing "
        "written.",
    )
    parser.add_argument("--input", required=True, help="COCO instances json to read (unchanged)")
    parser.add_argument("--output", required=True, help="COCO instances json to write")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mid", help="default: mid")
    parser.add_argument("--seed", type=int, default=0, help="non-negative integer, default 0")
    parser.add_argument(
        "--simplify-tolerance", type=float, help="Douglas-Peucker tolerance, px at 640 px; 0 = off"
    )
    parser.add_argument("--jitter-sigma", type=float, help="vertex jitter sigma, px; 0 = off")
    parser.add_argument(
        "--kernel", type=int, help="dilation/erosion square side, odd >= 3 at 640 px; 0 = off"
    )
    parser.add_argument("--delete-fraction", type=float, help="fraction of instances deleted")
    parser.add_argument(
        "--flip-fraction", type=float, help="fraction given another class (needs 2 categories)"
    )
    parser.add_argument(
        "--apply-to",
        choices=APPLY_TO,
        help="what the outline noise changes: both the mask and its box (default), only the "
        "masks (boxes stay as in the input) or only the boxes (masks stay clean)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="processes sharing the instances; the output is the same for any number (default: "
        "%(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return parser


def main(argv: Optional[Iterable[str]] = None) -> int:
    args = build_parser().parse_args(None if argv is None else list(argv))

    overrides = {
        "simplify_tolerance": args.simplify_tolerance,
        "jitter_sigma": args.jitter_sigma,
        "kernel": args.kernel,
        "delete_fraction": args.delete_fraction,
        "flip_fraction": args.flip_fraction,
        "apply_to": args.apply_to,
    }
    try:
        report = noise_file(
            args.input,
            args.output,
            args.preset,
            args.seed,
            progress=not args.no_progress,
            workers=args.workers,
            **overrides,
        )
    except (ValueError, OSError) as e:  # AnnotationError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{format_report(report)} -> {args.output}")
    return 0
