"""Evaluation on clean masks: mask AP, boundary AP and the precision/recall data behind them.

AP comes from faster-coco-eval's C++ COCOeval, on the COCO definitions: for each IoU threshold t
in 0.50:0.05:0.95 and category k, detections are matched greedily by score, and the interpolated
precision p(r) = max_{r' >= r} precision(r') is read at the 101 recall thresholds r = 0:0.01:1;
AP = mean over (t, r, k) of p, with categories that have no ground truth left out (-1 entries).

Boundary AP (Cheng et al., "Boundary IoU", CVPR 2021) matches with
    IoU_b(d, g) = min( |d & g| / |d | g|,  |D & G| / |D | G| )
where D (G) holds the pixels of d (g) within `dil` pixels of its contour (mask minus its erosion,
the image border counting as contour) and dil = max(1, round(ratio * image diagonal)). The ratio
is 0.02 by default (the metric's authors'; TEST.BOUNDARY_DILATION_RATIO in a train_net config).
When most ground-truth instances are no thicker than twice the band, the band holds their whole
mask and boundary AP is mask AP: the evaluation then warns, once per file and ratio, with the
ratio that would resolve them (`evaluation.boundary`, which defines the thickness).

Metrics follow detectron2's COCOEvaluator: 0-100 scale, NaN where a metric cannot be computed
(no ground truth in that category or area range). Unlike pycocotools, faster-coco-eval evaluates
an empty result list, so a model without a single detection gets AP 0 (with a warning), not NaN.
"""

import copy
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster

from ..coco.io import AnnotationError, CocoArg, coco_name, read_coco
from .boundary import DILATION_RATIO, check_band_once
from .pr_data import CURVE_NAMES

logger = logging.getLogger(__name__)

IOU_TYPES = ("bbox", "segm", "boundary")
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # order of COCOeval.stats[:6]
# Keys of the ground truth that COCOeval does not read: their problems do not stop it.
UNUSED_KEYS = ("file_name",)


def load_coco_gt(gt: CocoArg) -> Dict[str, Any]:
    """Ground truth as a private dict (a path is read, a dict is deep-copied), checked by
    `coco.checks` for what COCOeval reads; AnnotationError names the file (or "ground truth"),
    the ids and the key of the first problem."""
    if isinstance(gt, (str, os.PathLike)):
        name, data = os.fspath(gt), read_coco(gt, unused=UNUSED_KEYS)
    else:
        name = "ground truth"
        data = read_coco(copy.deepcopy(dict(gt)), name, UNUSED_KEYS)
    if not data["categories"]:
        raise AnnotationError("'categories' is empty", name)
    return data


def _check_results(results: Sequence[Mapping[str, Any]], gt: Dict[str, Any], iou_types) -> None:
    """Fail on a result that COCOeval would reject with an assert or misread silently."""
    image_ids = {img["id"] for img in gt["images"]}
    category_ids = {cat["id"] for cat in gt["categories"]}
    needed = ["image_id", "category_id", "score"]
    needed += ["bbox"] if "bbox" in iou_types else []
    needed += ["segmentation"] if {"segm", "boundary"} & set(iou_types) else []
    for i, res in enumerate(results):
        for key in needed:
            if key not in res:
                raise ValueError(f"result #{i} (image {res.get('image_id')!r}) has no {key!r}")
        if res["image_id"] not in image_ids:
            raise ValueError(
                f"result #{i}: image_id {res['image_id']!r} is not in the ground truth"
            )
        if res["category_id"] not in category_ids:
            raise ValueError(
                f"result #{i} (image {res['image_id']}): category_id {res['category_id']!r} is not"
                f" in the ground truth categories {sorted(category_ids)}"
            )


def _mean_valid(a: np.ndarray, axis) -> np.ndarray:
    """Mean over `axis` of the entries that are finite and > -1 (COCOeval's 'absent'); NaN where
    there are none."""
    valid = np.isfinite(a) & (a > -1)
    count = valid.sum(axis=axis)
    total = np.where(valid, a, 0.0).sum(axis=axis)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def derive_curves(precision: np.ndarray, iou_thresholds: np.ndarray) -> Dict[str, np.ndarray]:
    """Precision/recall curves at area "all" and the largest maxDets from COCOeval's precision.

    Args:
        precision (ndarray): (T, R, K, A, M) interpolated precision, -1 where category k has no
            ground truth in area range a.
        iou_thresholds (ndarray): (T,) thresholds; must hold 0.50 and 0.75.

    Returns:
        dict with
        "category_precision": (3, K, R) curves per category for CURVE_NAMES, NaN if absent;
        "mean_precision": (3, R) mean over the categories present at each recall threshold;
        "category_ap": (3, K) mean over R of each category curve (0-1), NaN if absent;
        "mean_ap": (3,) mean of "mean_precision" over R; for "0.50:0.95" this equals COCO's AP,
        because a category is either present at every (t, r) or at none.
    """
    p = precision[:, :, :, 0, -1]  # (T, R, K)
    rows = []
    for thr in (0.50, 0.75):
        hits = np.flatnonzero(np.isclose(iou_thresholds, thr))
        if hits.size == 0:
            raise ValueError(f"IoU threshold {thr} is not among {iou_thresholds.tolist()}")
        rows.append(_mean_valid(p[hits[0]][None], axis=0))  # -1 -> NaN
    rows.append(_mean_valid(p, axis=0))
    category_precision = np.stack(rows).transpose(0, 2, 1)  # (3, K, R)
    return {
        "category_precision": category_precision,
        "mean_precision": _mean_valid(category_precision, axis=1),
        "category_ap": _mean_valid(category_precision, axis=2),
        "mean_ap": _mean_valid(_mean_valid(category_precision, axis=1), axis=1),
    }


def coco_metrics(stats: np.ndarray, precision: np.ndarray, class_names: Sequence[str]) -> Dict:
    """detectron2's metrics from COCOeval: AP, AP50, AP75, APs, APm, APl (x100, NaN for -1), and
    AP-<class> (mean of the valid precision[:, :, k, area all, maxDets 100], x100) when there is
    more than one class."""
    results = {
        m: float(stats[i] * 100) if stats[i] >= 0 else float("nan")
        for i, m in enumerate(METRIC_NAMES)
    }
    if len(class_names) > 1:
        for k, name in enumerate(class_names):
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            results[f"AP-{name}"] = float(np.mean(p) * 100) if p.size else float("nan")
    return results


def _copies_for_load_res(results: Sequence[Mapping[str, Any]], keep_bbox: bool) -> List[Dict]:
    """Copies of the results that `loadRes` may annotate in place (area, id, iscrowd, bbox).

    Each dict and its RLE dict are copied; the values inside (strings, numbers, the box list,
    which is only read) are shared: a deep copy of every result took 20 % of an evaluation.
    Without `keep_bbox` the box is left out, as detectron2 does for segm: the area range of a
    prediction (small/medium/large) is then its mask area, not its box area.
    """
    copies = []
    for result in results:
        result = dict(result)
        if isinstance(result.get("segmentation"), dict):
            result["segmentation"] = dict(result["segmentation"])
        if not keep_bbox:
            result.pop("bbox", None)
        copies.append(result)
    return copies


def evaluate_coco_json(
    gt: CocoArg,
    results: Sequence[Mapping[str, Any]],
    iou_types: Sequence[str] = ("segm", "boundary"),
    *,
    boundary_dilation_ratio: float = DILATION_RATIO,
    workers: Optional[int] = None,
    name: Optional[str] = None,
) -> Dict[str, Dict[str, Any]]:
    """Evaluate COCO-format results against COCO-format ground truth with faster-coco-eval.

    Args:
        gt: path of a COCO instances json, or its dict (not modified).
        results (list[dict]): COCO results: image_id, category_id (dataset ids), score, and
            "segmentation" (RLE) for segm/boundary, "bbox" (XYWH) for bbox. Not modified.
        iou_types: any of "bbox", "segm", "boundary".
        boundary_dilation_ratio: contour width of Boundary IoU as a fraction of the image diagonal.
        workers: threads for IoU and contours; None keeps faster-coco-eval's defaults.
        name: the ground truth's file in messages (default: the path `gt`, or "ground truth");
            the thin-instance warning is given once per (file, ratio) when it is known.

    Returns:
        {iou_type: {"metrics": {AP, AP50, AP75, APs, APm, APl, AP-<class>: 0-100},
                    "pr_data": {name: ndarray}}}; see `pr_data_from_eval` for the arrays. The
        "boundary" entry also has "band": the dilation ratio, the band in px and how it compares
        with the instances' thickness (`evaluation.boundary.band_check`).
    """
    unknown = [t for t in iou_types if t not in IOU_TYPES]
    if unknown or not iou_types:
        raise ValueError(f"iou_types {list(iou_types)}: each must be one of {list(IOU_TYPES)}")
    if not 0 < boundary_dilation_ratio <= 1:
        raise ValueError(
            f"boundary_dilation_ratio must be in (0, 1], got {boundary_dilation_ratio}"
        )
    gt_data = load_coco_gt(gt)
    _check_results(results, gt_data, iou_types)
    gt_name = name or coco_name(gt, "ground truth")
    band = None
    if "boundary" in iou_types:
        remember = name is not None or isinstance(gt, (str, os.PathLike))
        band = check_band_once(gt_data, boundary_dilation_ratio, gt_name, remember)
    if not results:
        logger.warning("No predictions to evaluate: AP is 0 for every category with ground truth.")
    options = (
        {} if workers is None else {"boundary_cpu_count": workers, "rle_iou_max_workers": workers}
    )
    coco_gt = COCO(gt_data, print_function=logger.debug)  # one index for all types: RLEs are reused
    category_ids = sorted(coco_gt.getCatIds())
    class_names = [coco_gt.cats[i]["name"] for i in category_ids]

    out = OrderedDict()
    for iou_type in [t for t in IOU_TYPES if t in iou_types]:
        coco_dt = coco_gt.loadRes(_copies_for_load_res(results, keep_bbox=iou_type == "bbox"))
        ev = COCOeval_faster(
            coco_gt,
            coco_dt,
            iou_type,
            print_function=logger.debug,
            boundary_dilation_ratio=boundary_dilation_ratio,
            **options,
        )
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        metrics = coco_metrics(ev.stats, ev.eval["precision"], class_names)
        out[iou_type] = {
            "metrics": metrics,
            "pr_data": pr_data_from_eval(ev.eval, ev.params, category_ids, class_names),
        }
        main = ", ".join(f"{m} {metrics[m]:.3f}" for m in METRIC_NAMES)
        if iou_type == "boundary":
            out[iou_type]["band"] = band
            main += f"; dilation ratio {boundary_dilation_ratio:g} ({band['band_px']} px band)"
        logger.info(f"Evaluation results for {iou_type}: {main}")
        per_class = ", ".join(
            f"{k[3:]} {v:.1f}" for k, v in metrics.items() if k not in METRIC_NAMES
        )
        if per_class:
            logger.info(f"Per-category {iou_type} AP: {per_class}")
    return out


def pr_data_from_eval(
    eval_dict: Mapping, params, category_ids, class_names
) -> Dict[str, np.ndarray]:
    """COCOeval's accumulated arrays plus the derived curves, as plain numpy arrays.

    Keys: precision (T, R, K, A, M), scores (T, R, K, A, M), recall (T, K, A, M), iou_thresholds
    (T,), recall_thresholds (R,), category_ids (K,), category_names (K,), area_labels (A,),
    max_dets (M,), curve_names (3,), and the arrays of `derive_curves`.
    """
    precision = np.asarray(eval_dict["precision"], dtype=np.float64)
    data = {
        "precision": precision,
        "scores": np.asarray(eval_dict["scores"], dtype=np.float64),
        "recall": np.asarray(eval_dict["recall"], dtype=np.float64),
        "iou_thresholds": np.asarray(params.iouThrs, dtype=np.float64),
        "recall_thresholds": np.asarray(params.recThrs, dtype=np.float64),
        "category_ids": np.asarray(category_ids, dtype=np.int64),
        "category_names": np.asarray(class_names, dtype=str),
        "area_labels": np.asarray(params.areaRngLbl, dtype=str),
        "max_dets": np.asarray(params.maxDets, dtype=np.int64),
        "curve_names": np.asarray(CURVE_NAMES, dtype=str),
    }
    data.update(derive_curves(precision, data["iou_thresholds"]))
    return data
