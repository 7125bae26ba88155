"""`CleanMaskEvaluator`: detectron2's evaluator interface over `coco_eval`, against the clean masks
of a registered dataset. The only module of `evaluation` that imports detectron2 (and torch).
"""

import itertools
import json
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

import detectron2.utils.comm as comm
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils.events import get_event_storage

from ..utils.atomic import atomic_write
from ..utils.run_folders import DETECTIONS_FILE
from .boundary import DILATION_RATIO
from .coco_eval import IOU_TYPES, evaluate_coco_json, load_coco_gt
from .pr_data import save_pr_data

logger = logging.getLogger(__name__)


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
    (other processes return {}); the "boundary" table also holds the "dilation_ratio" it was
    computed with (train_net: TEST.BOUNDARY_DILATION_RATIO), so that eval_results.json and
    metrics.json record it. The precision/recall data of each evaluation is written to
    `output_dir` (see `save_pr_data`), with the ratio and how the band compares with the
    instances' thickness (`evaluation.boundary`).
    """

    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        distributed: bool = True,
        *,
        iou_types: Optional[Sequence[str]] = None,
        boundary_dilation_ratio: float = DILATION_RATIO,
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
            name=str(self._json_file),
        )
        if self._output_dir:
            extra = {
                "dataset": self._dataset_name,
                "json_file": str(self._json_file),
                "iteration": _current_iteration(),
                "boundary_dilation_ratio": self._dilation,
            }
            if "boundary" in evaluations:
                extra["boundary_band"] = evaluations["boundary"]["band"]
            save_pr_data(self._output_dir, evaluations, extra)
        tables = OrderedDict((t, dict(e["metrics"])) for t, e in evaluations.items())
        if "boundary" in tables:
            tables["boundary"]["dilation_ratio"] = self._dilation
        return tables
