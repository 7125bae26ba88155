"""Refinement's work per annotation on large images: the candidate masks (GrabCut, the vote) and
the segmentations written, made on windows around each object (what `python -m noisy_mask.refine`
does) against the whole image, side by side in one run.

    python benchmarks/bench_refine_large.py [--height 3000 --width 4000] [--images 2]
        [--objects 20] [--rounds 1] [--output DIR]

Data: `bench_audit_large.make_data` (ellipses of 30 to 180 px axes annotated as RLE, the
"predictions" the same masks dilated 2 px), audited with `--detections`. For every annotation,
both ways: (1) `prediction`: the prediction's mask written as a segmentation of each kind
(polygons, list and string RLE); (2) `grabcut + agreement`: GrabCut seeded by the annotation and
the vote of the three masks, as RLEs. The whole-image way decodes the masks to the image's size,
runs the same `refine.sources` functions on them and encodes the results, as refinement did
before the windows. Rounds in the order B A A B (drift cancels); both ways' results are checked
equal. Then `refine_file --source agreement --max-iou 1` is timed once, every file written.
"""

import sys

import numpy as np
# benchmarks/ is on the path when run as a script
from bench_audit_large import (
    make_data,
    parse_data_args,
    print_times,
    print_whole_run,
    timed_rounds,
)
from pycocotools import mask as mask_utils

from noisy_mask.audit.predict import Predictions
from noisy_mask.audit.run import run_audit
from noisy_mask.coco.io import read_image
from noisy_mask.coco.rle import decode, uncompressed_counts
from noisy_mask.noise.models import mask_to_polygons
from noisy_mask.refine.apply import RefineOptions, refine_file
from noisy_mask.refine.audited import read_audited
from noisy_mask.refine.candidates import candidate_masks
from noisy_mask.refine.changes import segmentation_like
from noisy_mask.refine.choose import AGREEMENT, GRABCUT, PREDICTION
from noisy_mask.refine.sources import grabcut_mask, vote_mask

KINDS = ([], {"counts": []}, {"counts": ""})  # polygons, list RLE, string RLE
SOURCES = (PREDICTION, GRABCUT, AGREEMENT)


def encode(mask):
    return None if mask is None else mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def segmentations_whole(audited, ids):
    out = []
    for ann_id in ids:
        mask = mask_utils.decode(audited.scores[ann_id].pred_rle).astype(bool)
        out.append([
            [p.reshape(-1).tolist() for p in mask_to_polygons(mask)],
            {"size": list(mask.shape), "counts": uncompressed_counts(mask)},
            {"size": list(mask.shape), "counts": encode(mask)["counts"].decode("ascii")},
        ])  # fmt: skip
    return out


def segmentations_windows(audited, ids):
    return [[segmentation_like(kind, audited.scores[i].pred_rle) for kind in KINDS] for i in ids]


def candidates_whole(audited, ids, image_dir):
    images = {image["id"]: image for image in audited.gt["images"]}
    out, pixels = {}, {}
    for ann_id in ids:
        score = audited.scores[ann_id]
        image = images[score.image_id]
        if score.image_id not in pixels:
            pixels = {score.image_id: read_image(image_dir, image)}
        h, w = image["height"], image["width"]
        annotation, prediction = decode(score.ann_rle, h, w), decode(score.pred_rle, h, w)
        found = grabcut_mask(pixels[score.image_id], annotation)
        out[ann_id] = {GRABCUT: encode(found),
                       AGREEMENT: encode(vote_mask([annotation, prediction, found]))}  # fmt: skip
    return out


def candidates_windows(audited, ids, image_dir):
    made = candidate_masks(audited, ids, image_dir, SOURCES)
    return {i: {GRABCUT: made[i][GRABCUT], AGREEMENT: made[i][AGREEMENT]} for i in ids}


def main(argv=None) -> int:
    args = parse_data_args(argv, __doc__.split("\n")[0], images=2, rounds=1,
                           output="output/bench_refine_large")  # fmt: skip
    annotations, image_dir, detections, _ = make_data(
        args.output, args.height, args.width, args.images, args.objects)
    run_audit(annotations, image_dir, args.output / "audit", Predictions(detections=detections))
    audited = read_audited(annotations, args.output / "audit")
    ids = sorted(audited.scores)
    print(f"{len(ids)} annotations on {args.images} images of {args.height} x {args.width} px")
    cases = {
        "prediction (3 segmentations)": {
            "whole image": lambda: segmentations_whole(audited, ids),
            "windows": lambda: segmentations_windows(audited, ids),
        },
        "grabcut + agreement": {
            "whole image": lambda: candidates_whole(audited, ids, image_dir),
            "windows": lambda: candidates_windows(audited, ids, image_dir),
        },
    }
    for case, ways in cases.items():
        times, results = timed_rounds(ways, args.rounds)
        if results["whole image"] != results["windows"]:
            print(f"error: {case}: the windows' results differ from the whole image's")
            return 1
        print(f"  {case} (equal both ways):")
        print_times(times, len(ids), indent="    ")
    options = RefineOptions(source=AGREEMENT, max_iou=1.0)
    print_whole_run("refine --source agreement --max-iou 1",
                    lambda: refine_file(annotations, image_dir, args.output / "audit",
                                        args.output / "refined.json", options=options),
                    len(ids))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
