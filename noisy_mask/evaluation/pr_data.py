"""The precision/recall data of an evaluation on disk, as train_net's evaluation leaves it in a run
folder: pr_data_<iou type>.npz (the arrays of `coco_eval.pr_data_from_eval`) and the index
pr_data.json (iou types, files, metrics, shapes and what the caller adds), each written atomically.
"""

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from ..utils.atomic import atomic_write, write_json_atomic

# Derived curves: precision at IoU 0.50, at 0.75, and averaged over the ten thresholds 0.50:0.95.
CURVE_NAMES = ("0.50", "0.75", "0.50:0.95")
PR_INDEX = "pr_data.json"
PR_FORMAT_VERSION = 1


def pr_data_file(iou_type: str) -> str:
    """Name of the file that holds the precision/recall arrays of `iou_type`."""
    return f"pr_data_{iou_type}.npz"


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
