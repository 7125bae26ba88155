"""Corrupt the masks of a COCO instances file with seeded, reproducible noise, and report how much.

    python -m noisy_mask.noise --input IN.json --output OUT.json --preset mid --seed 0

writes OUT.json (same images, categories and annotation ids; noisy masks, bbox and area recomputed
from the noisy mask) and OUT.noise_report.json, both atomically, and never touches IN.json.

Noise models, applied to each surviving instance in this order (each can be switched off with 0):
  1. dilation or erosion by a k x k square (the direction drawn per instance, 50/50);
  2. Douglas-Peucker simplification of the outline (cv2.approxPolyDP, tolerance in px);
  3. Gaussian jitter of every outline vertex (sigma in px);
and, over the whole file, deletion of a fraction of the instances and a class flip of a fraction
of the others (to a different category of the file, drawn uniformly).

`apply_to` says what the outline noise (1-3) changes: "both" the mask and its box (the box and
area recomputed from the noisy mask; the default), only the "masks" (each keeps its input bbox),
or only the "boxes" (bbox from the noisy mask; segmentation and area kept). The last two split
what noise costs into its mask part and its detection part.

Presets use the sizes of the COCO-N benchmark (Grad, Kimhi et al., 2024): tolerance 5/10/15 px,
sigma 2/3/4 px, kernel 3/5/7 for easy/mid/hard, with 5% deletion and 5% class flips. COCO-N draws
one of its boundary models for a random part of the instances; here every model applies to every
instance, so a preset is harsher than the COCO-N level of the same name.

Sizes: the preset sizes are for a 640 px image. Per instance, with s = longer image
side / 640 and c = 0.25 * sqrt(clean mask area in px):
  tolerance = min(max(tolerance * s, 0.5), c)   sigma = min(max(sigma * s, 0.5), c)
  kernel = 2 * min(r, max(1, floor(c))) + 1,  r = max(1, round_half_up((kernel * s - 1) / 2)),
so the kernel stays odd and >= 3, and no size exceeds a quarter of the object's size: the cap
binds on small objects only, which the full sizes would wipe out.

Counts: deleted = round_half_up(delete_fraction * N) of the N instances; flipped =
round_half_up(flip_fraction * N) of the remaining ones (at most all of them). An instance that the
noise would leave empty keeps its original mask (so the deletion count stays exact) and is counted
as `kept_original` in the report.

Outputs: polygons in -> polygons out (outer outlines only, as COCO polygons have no holes; vertices
clipped to the image and rounded to 0.01 px); RLE in -> RLE out of the same kind (compressed or
uncompressed counts), holes kept. Randomness comes from numpy Generators seeded with
(seed, stream, annotation id), so one annotation's noise depends neither on the others nor on
their order, and the same seed gives the same bytes.
"""

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from ..utils.atomic import write_json_atomic
from .models import noise_instance

EXIT_BAD_INPUT = 2
PERCENTILES = (5, 25, 50, 75, 95)
_CHUNK = 64  # instances per task sent to a worker process

# Generator streams: (seed, stream, ...) keeps them independent of each other.
_GEOMETRY_STREAM, _SELECTION_STREAM, _FLIP_STREAM = 0, 1, 2


class AnnotationError(ValueError):
    """A COCO file this tool cannot read: the message names the file, the annotation and the key."""


@dataclass(frozen=True)
class NoiseParams:
    """Noise sizes at 640 px image scale (see the module docstring for the per-instance scaling)."""

    simplify_tolerance: float = 0.0  # px, Douglas-Peucker tolerance; 0 = off
    jitter_sigma: float = 0.0  # px, std of the vertex noise; 0 = off
    kernel: int = 0  # side of the dilation/erosion square, odd >= 3; 0 = off
    delete_fraction: float = 0.0  # fraction of instances removed, in [0, 1]
    flip_fraction: float = 0.0  # fraction of instances given another category, in [0, 1]
    apply_to: str = "both"  # what the outline noise changes: "both", "masks" or "boxes"

    def check(self) -> "NoiseParams":
        """Raise ValueError naming the first option out of range; return self."""
        for name in ("simplify_tolerance", "jitter_sigma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (0 = off), got {value}")
        odd = _is_int(self.kernel) and self.kernel >= 3 and self.kernel % 2 == 1
        if not (odd or self.kernel == 0):
            raise ValueError(f"kernel must be 0 (off) or an odd integer >= 3, got {self.kernel}")
        for name in ("delete_fraction", "flip_fraction"):
            value = getattr(self, name)
            if not (0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.apply_to not in APPLY_TO:
            raise ValueError(f"apply_to must be one of {', '.join(APPLY_TO)}, got {self.apply_to!r}")
        return self


APPLY_TO = ("both", "masks", "boxes")


PRESETS: Dict[str, NoiseParams] = {
    "easy": NoiseParams(5.0, 2.0, 3, 0.05, 0.05),
    "mid": NoiseParams(10.0, 3.0, 5, 0.05, 0.05),
    "hard": NoiseParams(15.0, 4.0, 7, 0.05, 0.05),
}


def make_params(preset: Optional[str] = "mid", **overrides: Any) -> NoiseParams:
    """A preset with some options replaced (None values are ignored); preset None = all off."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {', '.join(PRESETS)}")
    names = {f.name for f in dataclasses.fields(NoiseParams)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown noise option(s) {unknown}; valid options: {sorted(names)}")
    base = PRESETS[preset] if preset is not None else NoiseParams()
    given = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base, **given).check()


def round_half_up_count(fraction: float, n: int) -> int:
    """Instances a fraction stands for: floor(fraction * n + 0.5), e.g. 0.05 * 10 -> 1, * 9 -> 0."""
    return int(math.floor(fraction * n + 0.5))


# ---------------------------------------------------------------------------------------------
# Input checks: all done before any noise, so a bad file fails fast and writes nothing.


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_polygons(ann_id: Any, seg: list) -> None:
    where = f"annotation {ann_id}: 'segmentation'"
    if not seg:
        raise AnnotationError(f"{where} is an empty polygon list")
    for k, polygon in enumerate(seg):
        if not isinstance(polygon, list):
            raise AnnotationError(f"{where} polygon {k} is not a list of coordinates")
        try:
            coords = np.asarray(polygon) if polygon else np.zeros(0)
        except ValueError:  # ragged nesting
            coords = np.zeros((0, 0))
        if coords.ndim != 1 or coords.dtype.kind not in "iuf":
            raise AnnotationError(f"{where} polygon {k} has non-numeric coordinates")
        if coords.size % 2:
            raise AnnotationError(
                f"{where} polygon {k} has {coords.size} coordinates, an odd count (x, y pairs)"
            )
        if coords.size < 6:
            raise AnnotationError(
                f"{where} polygon {k} has {coords.size // 2} points; a polygon needs at least 3"
            )
        if not np.all(np.isfinite(coords.astype(np.float64))):
            raise AnnotationError(f"{where} polygon {k} has NaN or infinite coordinates")


def _check_rle(ann_id: Any, seg: dict, height: int, width: int) -> None:
    where = f"annotation {ann_id}: 'segmentation'"
    if "size" not in seg or "counts" not in seg:
        raise AnnotationError(f"{where} RLE needs the keys 'size' and 'counts'")
    size = seg["size"]
    if not (isinstance(size, list) and len(size) == 2 and list(size) == [height, width]):
        raise AnnotationError(
            f"{where} RLE 'size' {size} does not match the image's [height, width] "
            f"[{height}, {width}]"
        )
    counts = seg["counts"]
    if isinstance(counts, str):
        try:
            counts = rle_string_counts(counts)
        except ValueError as e:
            raise AnnotationError(f"{where} RLE 'counts' is not a valid COCO RLE string: {e}")
    elif not isinstance(counts, list) or not all(_is_int(c) and c >= 0 for c in counts):
        raise AnnotationError(
            f"{where} RLE 'counts' must be a string or a list of non-negative integers"
        )
    if sum(counts) != height * width:
        raise AnnotationError(
            f"{where} RLE 'counts' sum to {sum(counts)}, not height * width = {height * width}"
        )


def rle_string_counts(text: str) -> List[int]:
    """Run lengths of a compressed COCO RLE string (the inverse of pycocotools' rleToString).

    Each count is a little-endian run of 5-bit groups stored as chr(48 + group), 0x20 marking
    "more groups follow" and 0x10 of the last group the sign; from the 4th count on, the value is
    a difference to the count two places before. pycocotools does not check any of this, and a
    bad string makes it write out of bounds, so it is checked here first.
    """
    counts: List[int] = []
    p = 0
    while p < len(text):
        value, k, more = 0, 0, True
        while more:
            if p >= len(text):
                raise ValueError("it ends in the middle of a count")
            c = ord(text[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"character {text[p]!r} at {p} is outside '0'..'o'")
            value |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                value |= -1 << (5 * k)
        if len(counts) > 2:
            value += counts[-2]
        if value < 0:
            raise ValueError(f"count {len(counts)} is negative")
        counts.append(value)
    return counts


def check_coco(coco: Any) -> None:
    """Raise AnnotationError on the first problem of a COCO instances dict, naming id and key."""
    if not isinstance(coco, dict):
        raise AnnotationError("the top level is not a JSON object")
    for key in ("images", "annotations", "categories"):
        if key not in coco:
            raise AnnotationError(f"missing top-level key '{key}'")
        if not isinstance(coco[key], list):
            raise AnnotationError(f"top-level key '{key}' is not a list")
    images: Dict[Any, Tuple[int, int]] = {}
    for k, image in enumerate(coco["images"]):
        if not isinstance(image, dict) or not _is_int(image.get("id")):
            raise AnnotationError(f"image {k} (in list order) has no integer 'id'")
        for key in ("height", "width"):
            if not (_is_int(image.get(key)) and image[key] > 0):
                raise AnnotationError(f"image {image['id']}: '{key}' is not a positive integer")
        if image["id"] in images:
            raise AnnotationError(f"image {image['id']}: 'id' appears twice")
        images[image["id"]] = (image["height"], image["width"])
    category_ids = set()
    for k, category in enumerate(coco["categories"]):
        if not isinstance(category, dict) or not _is_int(category.get("id")):
            raise AnnotationError(f"category {k} (in list order) has no integer 'id'")
        category_ids.add(category["id"])
    ann_ids = set()
    for k, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict) or not _is_int(ann.get("id")) or ann["id"] < 0:
            raise AnnotationError(
                f"annotation {k} (in list order) has no non-negative integer 'id'"
            )
        ann_id = ann["id"]
        if ann_id in ann_ids:
            raise AnnotationError(f"annotation {ann_id}: 'id' appears twice")
        ann_ids.add(ann_id)
        if ann.get("image_id") not in images:
            raise AnnotationError(
                f"annotation {ann_id}: 'image_id' {ann.get('image_id')} is unknown"
            )
        if ann.get("category_id") not in category_ids:
            raise AnnotationError(
                f"annotation {ann_id}: 'category_id' {ann.get('category_id')} is unknown"
            )
        seg = ann.get("segmentation")
        if isinstance(seg, list):
            _check_polygons(ann_id, seg)
        elif isinstance(seg, dict):
            _check_rle(ann_id, seg, *images[ann["image_id"]])
        else:
            raise AnnotationError(
                f"annotation {ann_id}: 'segmentation' is missing or neither polygons nor RLE"
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


def _run_job(job: _Job, params: NoiseParams, seed: int):
    segmentation, height, width, ann_id = job
    rng = np.random.default_rng([seed, _GEOMETRY_STREAM, ann_id])
    return noise_instance(
        segmentation,
        height,
        width,
        params.simplify_tolerance,
        params.jitter_sigma,
        params.kernel,
        rng,
    )


def _init_worker(params: NoiseParams, seed: int) -> None:
    global _worker_setup
    _worker_setup = (params, seed)
    cv2.setNumThreads(1)  # a forked child must not rely on the parent's OpenCV thread pool


def _run_job_in_worker(job: _Job):
    return _run_job(job, *_worker_setup)


def _run_jobs(jobs: List[_Job], params: NoiseParams, seed: int, workers: int, progress: bool):
    """Results of every job, in job order (so the output does not depend on `workers`)."""
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
        with context.Pool(workers, _init_worker, (params, seed)) as pool:
            for result in pool.imap(_run_job_in_worker, jobs, chunksize=_CHUNK):
                yield result
                bar.update()


def add_mask_noise(
    coco: Dict[str, Any],
    params: NoiseParams,
    seed: int,
    progress: bool = False,
    workers: int = 1,
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Noisy copy of a COCO instances dict (the input is not modified), and a report of the noise.

    Deleted and flipped instances are drawn with np.random.default_rng([seed, 1]) from the sorted
    annotation ids; each instance's geometry uses default_rng([seed, 0, ann_id]) and its new class
    default_rng([seed, 2, ann_id]), so the result is the same for any number of `workers`
    (processes). Raises AnnotationError on bad input, before any noise.
    """
    params.check()
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    check_coco(coco)
    images = {image["id"]: (image["height"], image["width"]) for image in coco["images"]}
    category_ids = sorted({category["id"] for category in coco["categories"]})
    annotations = coco["annotations"]
    n = len(annotations)

    selection = np.random.default_rng([seed, _SELECTION_STREAM])
    ids = sorted(ann["id"] for ann in annotations)
    n_delete = round_half_up_count(params.delete_fraction, n)
    deleted = set(selection.choice(ids, size=n_delete, replace=False).tolist()) if n else set()
    survivors = [i for i in ids if i not in deleted]
    n_flip = min(round_half_up_count(params.flip_fraction, n), len(survivors))
    if n_flip and len(category_ids) < 2:
        raise ValueError("class flips need at least 2 categories; set flip_fraction to 0")
    flipped = (
        set(selection.choice(survivors, size=n_flip, replace=False).tolist()) if n_flip else set()
    )

    kept = [ann for ann in annotations if ann["id"] not in deleted]
    jobs = [(a["segmentation"], *images[a["image_id"]], a["id"]) for a in kept]
    noisy_annotations, instance_stats, flips = [], [], {}
    for ann, result in zip(kept, _run_jobs(jobs, params, seed, workers, progress)):
        new = dict(ann)
        segmentation, bbox, area, stats = result
        if params.apply_to != "boxes":
            new["segmentation"], new["area"] = segmentation, area
        if params.apply_to != "masks":
            new["bbox"] = bbox
        if params.apply_to == "boxes":
            stats = dict(stats, iou=1.0)  # the written mask is the clean one
        if ann["id"] in flipped:
            others = [c for c in category_ids if c != ann["category_id"]]
            pick = np.random.default_rng([seed, _FLIP_STREAM, ann["id"]]).integers(len(others))
            new["category_id"] = others[int(pick)]
            flips[ann["id"]] = [ann["category_id"], new["category_id"]]
        noisy_annotations.append(new)
        instance_stats.append(stats)

    noisy = dict(coco)
    noisy["annotations"] = noisy_annotations
    return noisy, _report(params, seed, n, sorted(deleted), flips, instance_stats)


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
    return (
        f"{report['instances']} instances: {report['deleted']} deleted, {report['flipped']} "
        f"flipped, {report['kept_original']} kept original (noise would empty them); {iou_text}; "
        f"seed {report['seed']}"
    )


# ---------------------------------------------------------------------------------------------
# Files.


def report_path(output_path: os.PathLike) -> Path:
    """OUT.json -> OUT.noise_report.json (any other name gets `.noise_report.json` appended)."""
    output_path = Path(output_path)
    if output_path.suffix == ".json":
        return output_path.with_suffix(".noise_report.json")
    return output_path.with_name(output_path.name + ".noise_report.json")


def load_coco(path: os.PathLike) -> Dict[str, Any]:
    """Read a COCO json file; AnnotationError naming the file if it is missing or not JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f"{path}: not valid JSON ({e})") from None


def noise_file(
    input_path: os.PathLike,
    output_path: os.PathLike,
    preset: Optional[str] = "mid",
    seed: int = 0,
    progress: bool = False,
    workers: int = 1,
    **overrides: Any,
) -> Dict[str, Any]:
    """Write a noisy copy of a COCO file and its report next to it; return the report.

    `overrides` are NoiseParams fields replacing the preset's (None = keep); `workers` processes
    share the instances (same result for any number). Raises
    AnnotationError (message starting with the input path) and writes nothing on bad input.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    params = make_params(preset, **overrides)
    if input_path.resolve() in (output_path.resolve(), report_path(output_path).resolve()):
        raise ValueError(f"{output_path}: writing it would overwrite the input {input_path}")
    if not output_path.parent.is_dir():
        raise ValueError(f"{output_path}: the output folder does not exist")
    coco = load_coco(input_path)
    try:
        noisy, report = add_mask_noise(coco, params, seed, progress=progress, workers=workers)
    except AnnotationError as e:
        raise AnnotationError(f"{input_path}: {e}") from None
    report = {"input": str(input_path), "output": str(output_path), "preset": preset, **report}
    write_json_atomic(output_path, noisy, indent=None, separators=(",", ":"))
    write_json_atomic(report_path(output_path), report, indent=2)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m noisy_mask.noise",
        description="Write a copy of a COCO instances file with seeded, reproducible mask noise, "
        "and OUT.noise_report.json next to it.",
        epilog="Sizes are for a 640 px image. Per instance, with s = longer image side / 640 and "
        "c = 0.25 * sqrt(mask area): tolerance and sigma become min(max(size * s, 0.5), c); the "
        "kernel radius becomes min(max(1, round((k * s - 1) / 2)), max(1, floor(c))), so the "
        "kernel stays odd and >= 3. An instance the noise would empty keeps its original mask "
        "(counted as kept_original). Deletion and flips take round_half_up(fraction * N) "
        "instances. Exit status 2 on bad input, with nothing written.",
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
    parser.add_argument("--flip-fraction", type=float, help="fraction given another class")
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
    except (AnnotationError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{format_report(report)} -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
