"""Evaluation on clean masks: mask AP, boundary AP and the precision/recall data behind them.

AP comes from faster-coco-eval's C++ COCOeval, on the COCO definitions: for each IoU threshold t
in 0.50:0.05:0.95 and category k, detections are matched greedily by score, and the interpolated
precision p(r) = max_{r' >= r} precision(r') is read at the 101 recall thresholds r = 0:0.01:1;
AP = mean over (t, r, k) of p, with categories that have no ground truth left out (-1 entries).

Boundary AP (Cheng et al., "Boundary IoU", CVPR 2021) matches with
    IoU_b(d, g) = min( |d & g| / |d | g|,  |D & G| / |D | G| )
where D (G) holds the pixels of d (g) within `dil` pixels of its contour (mask minus its erosion,
the image border counting as contour) and dil = max(1, round(ratio * image diagonal)).

Metrics follow detectron2's COCOEvaluator: 0-100 scale, NaN where a metric cannot be computed
(no ground truth in that category or area range). Unlike pycocotools, faster-coco-eval evaluates
an empty result list, so a model without a single detection gets AP 0 (with a warning), not NaN.
"""

import copy
import itertools
import json
import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from faster_coco_eval import COCO, COCOeval_faster

import detectron2.utils.comm as comm
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils.events import get_event_storage
from detectron2.utils.logger import create_small_table

from ..utils.atomic import atomic_write, write_json_atomic
from ..utils.run_folders import DETECTIONS_FILE

logger = logging.getLogger(__name__)

IOU_TYPES = ("bbox", "segm", "boundary")
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # order of COCOeval.stats[:6]
# Derived curves: precision at IoU 0.50, at 0.75, and averaged over the ten thresholds 0.50:0.95.
CURVE_NAMES = ("0.50", "0.75", "0.50:0.95")
PR_INDEX = "pr_data.json"
PR_FORMAT_VERSION = 1

GroundTruth = Union[str, os.PathLike, Mapping[str, Any]]


def pr_data_file(iou_type: str) -> str:
    """Name of the file that holds the precision/recall arrays of `iou_type`."""
    return f"pr_data_{iou_type}.npz"


def load_coco_gt(gt: GroundTruth) -> Dict[str, Any]:
    """Ground truth as a private dict (a path is read, a dict is deep-copied), checked for the
    keys COCOeval needs."""
    name = (
        f"ground truth {os.fspath(gt)!r}" if isinstance(gt, (str, os.PathLike)) else "ground truth"
    )
    if isinstance(gt, (str, os.PathLike)):
        if not os.path.isfile(gt):
            raise FileNotFoundError(f"{name}: file not found")
        with open(gt) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{name}: not valid json ({e})") from e
    else:
        data = copy.deepcopy(dict(gt))
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{name}: missing list {key!r}")
    if not data["categories"]:
        raise ValueError(f"{name}: 'categories' is empty")
    for img in data["images"]:
        for key in ("id", "height", "width"):
            if key not in img:
                raise ValueError(f"{name}: image {img.get('id')!r} has no {key!r}")
    for ann in data["annotations"]:
        for key in ("id", "image_id", "category_id", "segmentation", "bbox", "area"):
            if key not in ann:
                raise ValueError(f"{name}: annotation {ann.get('id')!r} has no {key!r}")
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
    gt: GroundTruth,
    results: Sequence[Mapping[str, Any]],
    iou_types: Sequence[str] = ("segm", "boundary"),
    *,
    boundary_dilation_ratio: float = 0.02,
    workers: Optional[int] = None,
) -> Dict[str, Dict[str, Any]]:
    """Evaluate COCO-format results against COCO-format ground truth with faster-coco-eval.

    Args:
        gt: path of a COCO instances json, or its dict (not modified).
        results (list[dict]): COCO results: image_id, category_id (dataset ids), score, and
            "segmentation" (RLE) for segm/boundary, "bbox" (XYWH) for bbox. Not modified.
        iou_types: any of "bbox", "segm", "boundary".
        boundary_dilation_ratio: contour width of Boundary IoU as a fraction of the image diagonal.
        workers: threads for IoU and contours; None keeps faster-coco-eval's defaults.

    Returns:
        {iou_type: {"metrics": {AP, AP50, AP75, APs, APm, APl, AP-<class>: 0-100},
                    "pr_data": {name: ndarray}}}; see `pr_data_from_eval` for the arrays.
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
        main = {m: metrics[m] for m in METRIC_NAMES}
        logger.info(f"Evaluation results for {iou_type}: \n" + create_small_table(main))
        per_class = ", ".join(f"{k[3:]} {v:.1f}" for k, v in metrics.items() if k not in main)
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


def save_pr_data(
    output_dir: Union[str, os.PathLike],
    evaluations: Mapping[str, Mapping[str, Any]],
    extra: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Write pr_data_<iou_type>.npz for each evaluation of `evaluate_coco_json`, then the index
    pr_data.json (iou types, files, metrics, shapes, `extra`), each file atomically.

    Returns the path of the index.
    """
    output_dir = Path(output_dir)
    index = {"format": PR_FORMAT_VERSION, "curve_names": list(CURVE_NAMES), "iou_types": {}}
    index.update(extra or {})
    for iou_type, evaluation in evaluations.items():
        arrays = evaluation["pr_data"]
        path = output_dir / pr_data_file(iou_type)
        atomic_write(path, lambda f: np.savez_compressed(f, **arrays), mode="wb")
        index["iou_types"][iou_type] = {
            "file": path.name,
            # NaN (metric undefined) as null: strict json for any reader.
            "metrics": {k: None if np.isnan(v) else v for k, v in evaluation["metrics"].items()},
            "precision_shape": list(arrays["precision"].shape),
            "category_ids": arrays["category_ids"].tolist(),
            "category_names": arrays["category_names"].tolist(),
        }
    path = output_dir / PR_INDEX
    write_json_atomic(path, index)
    return path


def load_pr_data(directory: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Read what `save_pr_data` wrote in `directory`.

    Returns:
        {"index": the parsed pr_data.json, iou_type: {name: ndarray, ...}, ...}
    """
    directory = Path(directory)
    index_path = directory / PR_INDEX
    if not index_path.is_file():
        raise FileNotFoundError(f"{index_path}: precision/recall index not found")
    with open(index_path) as f:
        try:
            index = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{index_path}: not valid json ({e})") from e
    if not isinstance(index.get("iou_types"), dict):
        raise ValueError(f"{index_path}: missing key 'iou_types'")
    data: Dict[str, Any] = {"index": index}
    for iou_type, entry in index["iou_types"].items():
        path = directory / entry.get("file", pr_data_file(iou_type))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: listed in {index_path} for {iou_type!r}, not found")
        with np.load(path, allow_pickle=False) as npz:
            data[iou_type] = {key: npz[key] for key in npz.files}
        for key in ("precision", "recall_thresholds", "mean_precision", "mean_ap"):
            if key not in data[iou_type]:
                raise ValueError(f"{path}: missing array {key!r}")
    return data


def _current_iteration() -> Optional[int]:
    """Training iteration when called inside a trainer, else None."""
    try:
        return int(get_event_storage().iter)
    except AssertionError:  # no EventStorage: evaluation outside training
        return None


class CleanMaskEvaluator(DatasetEvaluator):
    """Mask AP and boundary AP against the clean annotations `MetadataCatalog.get(name).json_file`.

    Like detectron2's COCOEvaluator: predictions become COCO json with `instances_to_coco_json`,
    are gathered on the main process, written to `output_dir/coco_instances_results.json`, and
    `evaluate()` returns {"bbox": {...}, "segm": {...}, "boundary": {...}} on the 0-100 scale
    (other processes return {}). The precision/recall data of each evaluation is written to
    `output_dir` (see `save_pr_data`).
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        distributed: bool = True,
        *,
        iou_types: Optional[Sequence[str]] = None,
        boundary_dilation_ratio: float = 0.02,
        workers: Optional[int] = None,
    ):
        """
        Args:
            dataset_name: a registered dataset whose metadata has `json_file`.
            output_dir: where results json and precision/recall data go; None writes nothing.
            distributed: gather predictions of all processes and evaluate on the main one.
            iou_types: subset of IOU_TYPES; None: "bbox", plus "segm" and "boundary" unless the
                predictions have boxes only.
            boundary_dilation_ratio, workers: see `evaluate_coco_json`.
        """
        if iou_types is not None and (not iou_types or set(iou_types) - set(IOU_TYPES)):
            raise ValueError(f"iou_types {list(iou_types)}: each must be one of {list(IOU_TYPES)}")
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._iou_types = tuple(iou_types) if iou_types is not None else None
        self._dilation = boundary_dilation_ratio
        self._workers = workers
        self._cpu_device = torch.device("cpu")
        metadata = MetadataCatalog.get(dataset_name)
        json_file = metadata.get("json_file")
        if json_file is None:
            raise ValueError(f"dataset {dataset_name!r}: metadata has no 'json_file' (clean masks)")
        self._json_file = json_file
        self._gt = load_coco_gt(json_file)
        gt_ids = sorted(cat["id"] for cat in self._gt["categories"])
        # Contiguous class index -> dataset category id; load_coco_json numbers sorted ids 0..K-1.
        id_map = metadata.get("thing_dataset_id_to_contiguous_id") or {
            c: i for i, c in enumerate(gt_ids)
        }
        if sorted(id_map) != gt_ids or sorted(id_map.values()) != list(range(len(id_map))):
            raise ValueError(
                f"dataset {dataset_name!r}: thing_dataset_id_to_contiguous_id {id_map} does not map"
                f" the categories {gt_ids} of {json_file} onto 0..{len(gt_ids) - 1}"
            )
        self._contiguous_to_dataset_id = {v: k for k, v in id_map.items()}

    def reset(self) -> None:
        self._predictions: List[Dict[str, Any]] = []

    def process(self, inputs, outputs) -> None:
        """inputs: list of dicts with "image_id"; outputs: list of dicts with "instances"."""
        for inp, out in zip(inputs, outputs):
            if "instances" in out:
                instances = out["instances"].to(self._cpu_device)
                self._predictions.append(
                    {
                        "image_id": inp["image_id"],
                        "instances": instances_to_coco_json(instances, inp["image_id"]),
                    }
                )

    def evaluate(self) -> "OrderedDict[str, Dict[str, float]]":
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return OrderedDict()
        else:
            predictions = self._predictions
        if not predictions:
            logger.warning("[CleanMaskEvaluator] Did not receive valid predictions.")
            return OrderedDict()

        results = [dict(r) for r in itertools.chain(*[p["instances"] for p in predictions])]
        num_classes = len(self._contiguous_to_dataset_id)
        for r in results:
            if not 0 <= r["category_id"] < num_classes:
                raise ValueError(
                    f"image {r['image_id']}: predicted class {r['category_id']} is outside"
                    f" [0, {num_classes - 1}] of dataset {self._dataset_name!r}"
                )
            r["category_id"] = self._contiguous_to_dataset_id[r["category_id"]]

        if self._output_dir:
            path = Path(self._output_dir) / DETECTIONS_FILE
            logger.info(f"Saving results to {path}")
            atomic_write(path, lambda f: json.dump(results, f))

        iou_types = self._iou_types
        if iou_types is None:
            has_masks = not results or any("segmentation" in r for r in results)
            iou_types = ("bbox", "segm", "boundary") if has_masks else ("bbox",)
        evaluations = evaluate_coco_json(
            self._gt,
            results,
            iou_types,
            boundary_dilation_ratio=self._dilation,
            workers=self._workers,
        )
        if self._output_dir:
            extra = {
                "dataset": self._dataset_name,
                "json_file": str(self._json_file),
                "iteration": _current_iteration(),
                "boundary_dilation_ratio": self._dilation,
            }
            save_pr_data(self._output_dir, evaluations, extra)
        return OrderedDict((t, e["metrics"]) for t, e in evaluations.items())
