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

Report: the counts and IoU statistics above, and `per_instance`, one record per instance in id
order, for scoring an annotation audit against the truth:
    {"id": 17, "image_id": 4, "category_id": 2, "action": "flipped", "new_category_id": 3,
     "mask_iou": 0.8123, "kept_original": false}
action: "kept", "deleted" (absent from the output) or "flipped" (given new_category_id; its mask
is noisy all the same); mask_iou: IoU of the written vs the clean mask (6 decimals; null when
deleted or when the clean mask is empty); kept_original: the noise would have emptied the mask,
so the clean one was written (mask_iou 1).

Outputs: polygons in -> polygons out (outer outlines only, as COCO polygons have no holes; vertices
clipped to the image and rounded to 0.01 px); RLE in -> RLE out of the same kind (compressed or
uncompressed counts), holes kept. Randomness comes from numpy Generators seeded with
(seed, stream, annotation id), so one annotation's noise depends neither on the others nor on
their order, and the same seed gives the same bytes.
"""

import dataclasses
import json
import math
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..coco.io import AnnotationError, PathArg, check_coco, load_json
from ..coco.values import is_int
from ..utils.atomic import write_json_atomic, write_text_atomic
from .matching import DELETED, FLIPPED, KEPT
from .models import noise_instance
from .params import NoiseParams, make_params

PERCENTILES = (5, 25, 50, 75, 95)
_CHUNK = 64  # instances per task sent to a worker process

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


# ---------------------------------------------------------------------------------------------
# A whole file.


def _summary(values: Sequence[float]) -> Dict[str, float]:
    if not values:
        return {"min": 0.0, "mean": 0.0, "max": 0.0}
    array = np.asarray(values, dtype=np.float64)
    return {
        "min": round(float(array.min()), 4),
        "mean": round(float(array.mean()), 4),
        "max": round(float(array.max()), 4),
    }


_Job = Tuple[Any, int, int, int]  # segmentation, height, width, annotation id
_worker_setup: Tuple[NoiseParams, int] = (NoiseParams(), 0)


class _InstanceFailure(Exception):
    """An unexpected error on one instance, named (`annotation A: ...`) for the parent process."""


def _run_job(job: _Job, params: NoiseParams, seed: int):
    segmentation, height, width, ann_id = job
    rng = np.random.default_rng([seed, _GEOMETRY_STREAM, ann_id])
    try:
        return noise_instance(
            segmentation,
            height,
            width,
            params.simplify_tolerance,
            params.jitter_sigma,
            params.kernel,
            rng,
        )
    except Exception as e:  # input the checks let through, or a bug: say which instance
        raise _InstanceFailure(
            f"annotation {ann_id}: the noise failed on its segmentation: {type(e).__name__}: {e}"
        ) from e


def _init_worker(params: NoiseParams, seed: int) -> None:
    global _worker_setup
    _worker_setup = (params, seed)


def _run_job_in_worker(job: _Job):
    return _run_job(job, *_worker_setup)


def _run_jobs(
    jobs: List[_Job], params: NoiseParams, seed: int, workers: int, progress: bool, name: str
):
    """Results of every job, in job order (so the output does not depend on `workers`); an error
    on an instance is an AnnotationError naming the file `name` and the annotation."""
    try:
        yield from _run_jobs_unnamed(jobs, params, seed, workers, progress)
    except _InstanceFailure as e:
        raise AnnotationError(str(e), name) from e.__cause__


def _run_jobs_unnamed(
    jobs: List[_Job], params: NoiseParams, seed: int, workers: int, progress: bool
):
    bar = tqdm(
        total=len(jobs), desc="mask noise", unit="inst", file=sys.stderr, disable=not progress
    )
    with bar:
        if workers <= 1 or len(jobs) < 2 * _CHUNK:
            for job in jobs:
                yield _run_job(job, params, seed)
                bar.update()
            return
        # fork: workers inherit the loaded modules instead of importing them again
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else None)
        # A forked child inherits OpenCV's thread-pool state but none of its threads, and
        # reconfiguring that pool there waits forever for them. With one thread in the parent
        # while it forks, the children never touch the pool.
        opencv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with context.Pool(workers, _init_worker, (params, seed)) as pool:
                for result in pool.imap(_run_job_in_worker, jobs, chunksize=_CHUNK):
                    yield result
                    bar.update()
        finally:
            cv2.setNumThreads(opencv_threads)


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
        ann["id"]: _instance_record(ann, DELETED, None, None, False)
        for ann in annotations
        if ann["id"] in deleted
    }
    for ann, result in zip(kept, _run_jobs(jobs, params, seed, workers, progress, name)):
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
        records[ann["id"]] = _instance_record(
            ann, action, new["category_id"], stats["iou"], stats["kept_original"]
        )

    noisy = dict(coco)
    noisy["annotations"] = [  # the input's order; crowd regions as they are
        written.get(ann["id"], ann) for ann in coco["annotations"] if ann["id"] not in deleted
    ]
    report = _report(params, seed, n, sorted(deleted), flips, instance_stats)
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


def _instance_record(
    ann: Dict[str, Any],
    action: str,
    new_category_id: Optional[int],
    iou: Optional[float],
    kept_original: bool,
) -> Dict[str, Any]:
    """One entry of the report's `per_instance` (see the module docstring)."""
    return {
        "id": ann["id"],
        "image_id": ann["image_id"],
        "category_id": ann["category_id"],
        "action": action,
        "new_category_id": new_category_id,
        "mask_iou": None if iou is None or math.isnan(iou) else round(float(iou), 6),
        "kept_original": bool(kept_original),
    }


def _report(
    params: NoiseParams,
    seed: int,
    n: int,
    deleted: List[int],
    flips: Dict[int, List[int]],
    stats: List[Dict[str, Any]],
) -> Dict[str, Any]:
    ious = [s["iou"] for s in stats if not s["empty_clean"]]
    iou: Dict[str, Any] = {"count": len(ious)}
    if ious:
        iou["mean"] = round(float(np.mean(ious)), 6)
        for q, value in zip(PERCENTILES, np.percentile(ious, PERCENTILES)):
            iou[f"p{q}"] = round(float(value), 6)
    return {
        "seed": seed,
        "params": dataclasses.asdict(params),
        "instances": n,
        "deleted": len(deleted),
        "flipped": len(flips),
        "kept_original": sum(s["kept_original"] for s in stats),
        "empty_clean": sum(s["empty_clean"] for s in stats),
        "dilated": sum(s["grow"] is True for s in stats),
        "eroded": sum(s["grow"] is False for s in stats),
        "capped": sum(s["capped"] for s in stats),
        "mask_iou": iou,
        "scaled": {
            "simplify_tolerance": _summary([s["tolerance"] for s in stats]),
            "jitter_sigma": _summary([s["sigma"] for s in stats]),
            "kernel": _summary([s["kernel"] for s in stats]),
        },
        "deleted_ids": deleted,
        "flipped_ids": {str(k): v for k, v in sorted(flips.items())},
    }


def format_report(report: Dict[str, Any]) -> str:
    """The one-line summary printed by the command line."""
    iou = report["mask_iou"]
    iou_text = (
        f"mask IoU mean {iou['mean']:.3f} (p5 {iou['p5']:.3f}, p50 {iou['p50']:.3f}, "
        f"p95 {iou['p95']:.3f})"
        if iou["count"]
        else "mask IoU n/a"
    )
    apply_to = report["params"].get("apply_to", "both")
    if apply_to != "both":
        iou_text += f"; outline noise on the {apply_to} only"
    skipped = report.get("flips_skipped")
    flipped = f"{report['flipped']} flipped" + (f" (flips skipped: {skipped})" if skipped else "")
    crowd = f" (and {report['crowd']} crowd regions, as they are)" if report.get("crowd") else ""
    return (
        f"{report['instances']} instances{crowd}: {report['deleted']} deleted, {flipped}, "
        f"{report['kept_original']} kept original (noise would empty them); {iou_text}; "
        f"seed {report['seed']}"
    )


# ---------------------------------------------------------------------------------------------
# Files.


def report_path(output_path: PathArg) -> Path:
    """OUT.json -> OUT.noise_report.json (any other name gets `.noise_report.json` appended)."""
    output_path = Path(output_path)
    if output_path.suffix == ".json":
        return output_path.with_suffix(".noise_report.json")
    return output_path.with_name(output_path.name + ".noise_report.json")


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


def report_text(report: Dict[str, Any]) -> str:
    """The report as json indented by 2, but each `per_instance` record on one line (one line per
    instance, not nine: the report of a COCO-sized file stays readable and small)."""
    head = {k: v for k, v in report.items() if k != "per_instance"}
    text = json.dumps(head, indent=2)[: -len("\n}")]
    records = ",\n".join("    " + json.dumps(r) for r in report.get("per_instance", []))
    body = f"[\n{records}\n  ]" if records else "[]"
    return f'{text},\n  "per_instance": {body}\n}}\n'
