"""Corrupt the masks of a COCO instances file with seeded, reproducible noise, and report how much.

`noise_file` writes OUT.json (same images, categories and annotation ids; noisy masks, bbox and
area recomputed from the noisy mask) and OUT.noise_report.json, both atomically, and never touches
IN.json; `add_mask_noise` does the same on dicts. `python -m noisy_mask.noise` is its command.

Noise models, applied to each surviving instance in this order (each can be switched off with 0):
  1. dilation or erosion by a k x k square (the direction drawn per instance, 50/50);
  2. Douglas-Peucker simplification of the outline (cv2.approxPolyDP, tolerance in px);
  3. Gaussian jitter of every outline vertex (sigma in px);
and, over the whole file, deletion of a fraction of the instances and a class flip of a fraction
of the others (to a different category of the file, drawn uniformly). A file of one category has
no other category to flip to: the flips are skipped, and the report says so (`flips_skipped`);
`noise_file` given `flip_fraction` > 0 explicitly (not by a preset) raises an error instead.

`apply_to` says what the outline noise (1-3) changes: "both" the mask and its box (the box and
area recomputed from the noisy mask; the default), only the "masks" (each keeps its input bbox),
or only the "boxes" (bbox from the noisy mask; segmentation and area kept). The last two split
what noise costs into its mask part and its detection part. The presets are in `noise.params`.

Sizes: the preset sizes are for a 640 px image. Per instance, with s = longer image
side / 640 and c = 0.25 * sqrt(clean mask area in px):
  tolerance = min(max(tolerance * s, 0.5), c)   sigma = min(max(sigma * s, 0.5), c)
  kernel = 2 * min(r, max(1, floor(c))) + 1,  r = max(1, round_half_up((kernel * s - 1) / 2)),
so the kernel stays odd and >= 3, and no size exceeds a quarter of the object's size: the cap
binds on small objects only, which the full sizes would wipe out.

Crowd regions (`iscrowd` 1) are not instances: they are written as they are (never deleted,
flipped or noised) and left out of N, the counts and `per_instance`; the report counts them
(`crowd`). Detectron2 drops them from training and COCO evaluation only ignores detections in
them, so noise there would only blur the statistics of the noise that matters.

Counts: deleted = round_half_up(delete_fraction * N) of the N instances; flipped =
round_half_up(flip_fraction * N) of the remaining ones (at most all of them). An instance that the
noise would leave empty keeps its original mask (so the deletion count stays exact) and is counted
as `kept_original` in the report.

Report (`noise.report`): the counts and IoU statistics above, and `per_instance`, one record per
instance in id order, for scoring an annotation audit against the truth.

Outputs: polygons in -> polygons out (outer outlines only, as COCO polygons have no holes; vertices
clipped to the image and rounded to 0.01 px); RLE in -> RLE out of the same kind (compressed or
uncompressed counts), holes kept. Randomness comes from numpy Generators seeded with
(seed, stream, annotation id), so one annotation's noise depends neither on the others nor on
their order, and the same seed gives the same bytes.
"""

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..coco.io import AnnotationError, PathArg, check_coco, load_json
from ..coco.values import is_int
from ..utils.atomic import write_json_atomic, write_text_atomic
from .matching import DELETED, FLIPPED, KEPT
from .params import NoiseParams, make_params
from .report import build_report, format_report, instance_record, report_path, report_text
from .workers import run_jobs

# The noise's entry points, with the report's summary and file name that callers print and read.
__all__ = [
    "UNUSED_KEYS",
    "add_mask_noise",
    "check_noise_input",
    "format_report",
    "noise_file",
    "report_path",
    "round_half_up_count",
]

# Generator streams: (seed, stream, ...) keeps them independent of each other.
_GEOMETRY_STREAM, _SELECTION_STREAM, _FLIP_STREAM = 0, 1, 2

# Keys the noise does not read: it recomputes bbox and area, and copies the others as they are.
UNUSED_KEYS = ("file_name", "name", "area", "bbox")


def round_half_up_count(fraction: float, n: int) -> int:
    """Instances a fraction stands for: floor(fraction * n + 0.5), e.g. 0.05 * 10 -> 1, * 9 -> 0."""
    return int(math.floor(fraction * n + 0.5))


def check_noise_input(coco: Any, name: str = "annotations") -> None:
    """Raise AnnotationError, naming `name`, the ids and the key, on the first problem of a COCO
    instances dict that the noise cannot work with: a fatal problem (`coco.checks`) of a key it
    reads, a segmentation pycocotools cannot rasterize (an empty polygon list, a polygon of fewer
    than 3 points; an empty mask is kept as it is), or a negative annotation id (ids seed the
    noise)."""
    check_coco(coco, name, unused=UNUSED_KEYS, readable_masks=True)
    for ann in coco["annotations"]:
        if ann["id"] < 0:
            raise AnnotationError(
                f"annotation {ann['id']} (image {ann['image_id']}): 'id' {ann['id']} is negative;"
                " the noise is seeded with ids >= 0",
                name,
            )


def add_mask_noise(
    coco: Dict[str, Any],
    params: NoiseParams,
    seed: int,
    progress: bool = False,
    workers: int = 1,
    name: str = "annotations",
    require_flips: bool = False,
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Noisy copy of a COCO instances dict (the input is not modified), and a report of the noise.

    Deleted and flipped instances are drawn with np.random.default_rng([seed, 1]) from the sorted
    annotation ids; each instance's geometry uses default_rng([seed, 0, ann_id]) and its new class
    default_rng([seed, 2, ann_id]), so the result is the same for any number of `workers`
    (processes). With fewer than 2 categories the flips are skipped (report: `flips_skipped`),
    or, with `require_flips`, an error. Raises AnnotationError naming `name` on bad input, before
    any noise.
    """
    params.check()
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    check_noise_input(coco, name)
    images = {image["id"]: (image["height"], image["width"]) for image in coco["images"]}
    category_ids = sorted({category["id"] for category in coco["categories"]})
    crowd = {ann["id"] for ann in coco["annotations"] if ann.get("iscrowd", 0)}
    annotations = [ann for ann in coco["annotations"] if ann["id"] not in crowd]
    n = len(annotations)
    flips_skipped = _flips_skipped(params, category_ids, name, require_flips)

    selection = np.random.default_rng([seed, _SELECTION_STREAM])
    ids = sorted(ann["id"] for ann in annotations)
    n_delete = round_half_up_count(params.delete_fraction, n)
    deleted = set(selection.choice(ids, size=n_delete, replace=False).tolist()) if n else set()
    survivors = [i for i in ids if i not in deleted]
    n_flip = min(round_half_up_count(params.flip_fraction, n), len(survivors))
    if flips_skipped:
        n_flip = 0
    flipped = (
        set(selection.choice(survivors, size=n_flip, replace=False).tolist()) if n_flip else set()
    )

    kept = [ann for ann in annotations if ann["id"] not in deleted]
    jobs = [(a["segmentation"], *images[a["image_id"]], a["id"]) for a in kept]
    written, instance_stats, flips = {}, [], {}
    records = {
        ann["id"]: instance_record(ann, DELETED, None, None, False)
        for ann in annotations
        if ann["id"] in deleted
    }
    for ann, result in zip(
        kept, run_jobs(jobs, params, (seed, _GEOMETRY_STREAM), workers, progress, name)
    ):
        new = dict(ann)
        segmentation, bbox, area, stats = result
        if params.apply_to != "boxes":
            new["segmentation"], new["area"] = segmentation, area
        if params.apply_to != "masks":
            new["bbox"] = bbox
        if params.apply_to == "boxes":
            # the written mask is the clean one: IoU 1, NaN if empty (coco.rle.mask_iou)
            stats = dict(stats, iou=math.nan if stats["empty_clean"] else 1.0)
        if ann["id"] in flipped:
            others = [c for c in category_ids if c != ann["category_id"]]
            pick = np.random.default_rng([seed, _FLIP_STREAM, ann["id"]]).integers(len(others))
            new["category_id"] = others[int(pick)]
            flips[ann["id"]] = [ann["category_id"], new["category_id"]]
        written[ann["id"]] = new
        instance_stats.append(stats)
        action = FLIPPED if ann["id"] in flipped else KEPT
        records[ann["id"]] = instance_record(
            ann, action, new["category_id"], stats["iou"], stats["kept_original"]
        )

    noisy = dict(coco)
    noisy["annotations"] = [  # the input's order; crowd regions as they are
        written.get(ann["id"], ann) for ann in coco["annotations"] if ann["id"] not in deleted
    ]
    report = build_report(params, seed, n, sorted(deleted), flips, instance_stats)
    report["crowd"] = len(crowd)
    report["flips_skipped"] = flips_skipped
    report["per_instance"] = [records[i] for i in ids]
    return noisy, report


def _flips_skipped(
    params: NoiseParams, category_ids: List[int], name: str, require_flips: bool
) -> Optional[str]:
    """Why the class flips are skipped ("one category", "no category"), or None when they are not
    (flip_fraction 0, or at least 2 categories to flip between). With `require_flips` a skip is an
    AnnotationError naming `name` and the option."""
    if params.flip_fraction == 0 or len(category_ids) >= 2:
        return None
    reason = "one category" if category_ids else "no category"
    if require_flips:
        have = f"one category (id {category_ids[0]})" if category_ids else "no category"
        raise AnnotationError(
            f"flip_fraction {params.flip_fraction} (--flip-fraction) asks for class flips, but "
            f"the file has {have}: there is no other category to flip to. Set it to 0, or leave "
            "it unset (the presets skip the flips on a file of one category)",
            name,
        )
    return reason


def noise_file(
    input_path: PathArg,
    output_path: PathArg,
    preset: Optional[str] = "mid",
    seed: int = 0,
    progress: bool = False,
    workers: int = 1,
    **overrides: Any,
) -> Dict[str, Any]:
    """Write a noisy copy of a COCO file and its report next to it; return the report.

    `overrides` are NoiseParams fields replacing the preset's (None = keep); `workers` processes
    share the instances (same result for any number). On a file of one category, a preset's flips
    are skipped (the report says so) but an explicit `flip_fraction` > 0 is an error. Raises
    AnnotationError (message starting with the input path; FileNotFoundError for a missing one)
    and writes nothing on bad input. The report is json, one `per_instance` record a line.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    params = make_params(preset, **overrides)
    if input_path.resolve() in (output_path.resolve(), report_path(output_path).resolve()):
        raise ValueError(f"{output_path}: writing it would overwrite the input {input_path}")
    if not output_path.parent.is_dir():
        raise ValueError(f"{output_path}: the output folder does not exist")
    coco = load_json(input_path)
    explicit_flips = (overrides.get("flip_fraction") or 0) > 0
    noisy, report = add_mask_noise(
        coco,
        params,
        seed,
        progress=progress,
        workers=workers,
        name=os.fspath(input_path),
        require_flips=explicit_flips,
    )
    report = {"input": str(input_path), "output": str(output_path), "preset": preset, **report}
    write_json_atomic(output_path, noisy, indent=None, separators=(",", ":"))
    write_text_atomic(report_path(output_path), report_text(report))
    return report
