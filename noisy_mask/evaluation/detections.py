"""A run's detections and mask AP as train_net.py's evaluation leaves them in its folder
(coco_instances_results.json, eval_results.json), and the per-image score that compares runs:

    m(image, run) = mean over ground-truth instances g of  max over detections d of the same
                    category (score >= threshold) of  |d & g| / |d | g|   (0 without detection),

with the choice of the images where the runs differ most."""

import json
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from pycocotools import mask as mask_utils

from ..coco.io import annotation_rle, segmentation_rle
from ..utils.run_folders import DETECTIONS_FILE, EVAL_RESULTS_FILE, find_run_file


class Detection(NamedTuple):
    """One result of a COCO results file: its class, its score and its mask (pycocotools RLE)."""

    category_id: int
    score: float
    rle: dict


def find_results_file(run_dir: Union[str, os.PathLike], dataset: Optional[str] = None) -> Path:
    """coco_instances_results.json of `run_dir` (see `find_run_file`)."""
    return find_run_file(run_dir, DETECTIONS_FILE, "detections", dataset)


def read_mask_ap(
    run_dir: Union[str, os.PathLike], dataset: Optional[str] = None
) -> Optional[float]:
    """segm AP of RUN_DIR/eval_results.json: {"segm": {"AP": ...}}, or {dataset: {"segm": ...}}
    when the run was tested on several datasets (`dataset` picks one; without it, the only one).
    None when the file or the value is missing."""
    path = Path(run_dir) / EVAL_RESULTS_FILE
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(results, dict) and "segm" not in results:
        tables = [v for k, v in sorted(results.items()) if dataset in (None, k)]
        results = tables[0] if len(tables) == 1 else None
    try:
        return float(results["segm"]["AP"])
    except (TypeError, KeyError, ValueError):
        return None


def read_detections(
    path: Union[str, os.PathLike], gt: Mapping[str, Any], score_threshold: float
) -> Dict[int, List[Detection]]:
    """Detections of a COCO results json with score >= `score_threshold`, by image id (only the
    images of `gt`), in the file's order. Errors name the file, the result and the key."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid json ({e})") from None
    if not isinstance(results, list):
        raise ValueError(f"{path}: expected a list of results, got {type(results).__name__}")
    images = {image["id"]: image for image in gt["images"]}
    category_ids = {category["id"] for category in gt["categories"]}
    by_image: Dict[int, List[Detection]] = {}
    for k, result in enumerate(results):
        for key in ("image_id", "category_id", "score", "segmentation"):
            if not isinstance(result, dict) or key not in result:
                raise ValueError(f"{path}: result #{k} has no {key!r}")
        image = images.get(result["image_id"])
        if image is None:
            raise ValueError(
                f"{path}: result #{k}: 'image_id' {result['image_id']!r} is not in the annotations"
            )
        if result["category_id"] not in category_ids:
            raise ValueError(
                f"{path}: result #{k} (image {image['id']}): 'category_id'"
                f" {result['category_id']!r} is not among the categories {sorted(category_ids)}"
            )
        score = result["score"]
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f"{path}: result #{k} (image {image['id']}): 'score' {score!r}")
        if score < score_threshold:
            continue
        where = f"{path}: result #{k} (image {image['id']})"
        rle = segmentation_rle(result["segmentation"], image["height"], image["width"], where)
        if rle is not None:
            by_image.setdefault(image["id"], []).append(
                Detection(result["category_id"], float(score), rle)
            )
    return by_image


def mean_best_iou(
    gt_rles: Sequence[dict],
    gt_categories: Sequence[int],
    detections: Sequence[Detection],
) -> float:
    """Mean over ground-truth masks g of max over detections d of g's category of IoU(d, g)
    (0 when there is none); NaN without ground truth."""
    if not gt_rles:
        return math.nan
    if not detections:
        return 0.0
    ious = np.asarray(
        mask_utils.iou([d.rle for d in detections], list(gt_rles), [0] * len(gt_rles)),
        dtype=np.float64,
    ).reshape(len(detections), len(gt_rles))
    same = np.array([[d.category_id == c for c in gt_categories] for d in detections])
    return float(np.where(same, ious, 0.0).max(axis=0).mean())


def choose_by_spread(per_run: Mapping[int, Sequence[float]], num: int) -> List[int]:
    """The `num` image ids with the largest spread max - min of their per-run values; ties go to
    the lower mean, then the lower id. Images with a NaN value are left out."""
    keyed = []
    for image_id, values in per_run.items():
        values = np.asarray(values, dtype=np.float64)
        if values.size and np.all(np.isfinite(values)):
            keyed.append((-(values.max() - values.min()), values.mean(), image_id))
    return [image_id for _, _, image_id in sorted(keyed)[:num]]


GtMasks = Dict[int, List[Tuple[int, dict]]]  # image id -> (category id, RLE) per instance


def ground_truth_rles(gt: Mapping[str, Any], name: str = "ground truth") -> GtMasks:
    """The non-crowd instances of `gt` that have a mask, by image id, in the file's order."""
    images = {image["id"]: image for image in gt["images"]}
    by_image: GtMasks = {}
    for ann in gt["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        rle = annotation_rle(ann, images[ann["image_id"]], name)
        if rle is not None:
            by_image.setdefault(ann["image_id"], []).append((ann["category_id"], rle))
    return by_image


def image_ious(
    gt_rles: GtMasks, runs: Sequence[Mapping[int, Sequence[Detection]]]
) -> Dict[int, List[float]]:
    """`mean_best_iou` of each run (detections by image id) on each image with ground truth."""
    out = {}
    for image_id in sorted(gt_rles):
        categories, rles = zip(*gt_rles[image_id])
        out[image_id] = [mean_best_iou(rles, categories, run.get(image_id, [])) for run in runs]
    return out
