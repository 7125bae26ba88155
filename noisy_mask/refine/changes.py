"""The corrected annotations of a refinement and the record of every change: the new masks
written back as segmentations of the kind they replace (`segmentation_like`), with a bbox and area
recomputed from them; the classes the model disputes corrected; the possibly missing predictions
added. `refine.apply` chooses what changes and writes the copy."""

import math
from typing import Any, Dict, List, Optional

from pycocotools import mask as mask_utils

from ..coco.rle import (
    Rle,
    decode_window,
    encode_window,
    mask_iou,
    to_rle,
    window_around,
    window_runs,
)
from ..noise.models import mask_to_polygons
from .audited import AuditedFile
from .choose import NONE, PREDICTION
from .classes import disputes
from .options import RefineOptions

DIGITS = 6


def segmentation_like(original: Any, rle: Rle) -> Any:
    """The mask of `rle` as a COCO segmentation of the kind of `original`: polygons (the traced
    outer outlines), an RLE with string counts, or one with list counts. Made from the window
    around the mask, so that an object of a large image costs its own size."""
    height, width = (int(v) for v in rle["size"])
    around = window_around([rle], 1)  # a background pixel on each side: whole outlines
    top, left, bottom, right = around if around is not None else (0, 0, 0, 0)
    mask = decode_window(rle, top, left, bottom, right)
    if isinstance(original, list):
        outlines = mask_to_polygons(mask) if mask.size else []
        return [(p + [left, top]).reshape(-1).tolist() for p in outlines]
    if isinstance(original.get("counts"), list):
        return {"size": [height, width], "counts": window_runs(mask, top, left, height, width)}
    encoded = encode_window(mask, top, left, height, width)
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}


def _box_and_area(segmentation: Any, height: int, width: int):
    """The rasterized segmentation's RLE, its [x, y, w, h] and its area."""
    rle = to_rle(segmentation, height, width)
    return rle, [float(v) for v in mask_utils.toBbox(rle)], float(mask_utils.area(rle))


def _rounded(value: Optional[float]) -> Optional[float]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), DIGITS)


def apply_changes(audited: AuditedFile, candidates, source: str, paired, options: RefineOptions,
                  fix_classes: bool):
    """(the new COCO dict, the change records, the suspicious annotations kept and why)."""
    images = {image["id"]: image for image in audited.gt["images"]}
    changes: List[Dict[str, Any]] = []
    kept: List[Dict[str, Any]] = []
    annotations = []
    for ann in audited.gt["annotations"]:
        score = audited.scores.get(ann["id"])
        if score is None:  # a crowd region: not audited
            annotations.append(ann)
            continue
        new = dict(ann)
        record: Dict[str, Any] = {"id": ann["id"], "image_id": ann["image_id"], "changed": []}
        if ann["id"] in candidates and source != NONE:
            mask_rle = candidates[ann["id"]].get(source)
            if mask_rle is None:
                kept.append({"id": ann["id"], "reason": f"{source} gives no mask"})
            elif mask_iou(mask_rle, score.ann_rle) == 1.0:
                kept.append({"id": ann["id"], "reason": f"{source} gives the same mask"})
            else:
                _replace_mask(new, record, score, mask_rle, source, images, paired)
        if fix_classes and disputes(score, options):
            new["category_id"] = score.other_category_id
            record["changed"].append("category_id")
            record["category_id"] = {
                "old": ann["category_id"], "new": score.other_category_id,
                "old_score": _rounded(score.same_class_score),
                "new_score": _rounded(score.other_class_score), "source": "audit",
            }  # fmt: skip
        if record["changed"]:
            changes.append(record)
            annotations.append(new)
        else:
            annotations.append(ann)
    if options.add_missing:
        annotations += _added(audited, images, options, changes)
    out = dict(audited.gt)
    out["annotations"] = annotations
    return out, changes, kept


def _replace_mask(new, record, score, mask_rle, source, images, paired) -> None:
    image = images[new["image_id"]]
    height, width = image["height"], image["width"]
    new["segmentation"] = segmentation_like(new["segmentation"], mask_rle)
    written, new["bbox"], new["area"] = _box_and_area(new["segmentation"], height, width)
    record["changed"] += ["segmentation", "bbox", "area"]
    record["source"] = source
    record["mask"] = {
        "iou_with_prediction": {"old": _rounded(score.mask_iou),
                                "new": _rounded(mask_iou(written, score.pred_rle))},
        "iou_old_new": _rounded(mask_iou(score.ann_rle, written)),
    }  # fmt: skip
    if new["id"] in paired:
        r = paired[new["id"]]
        record["mask"]["iou_with_reference"] = {
            "old": _rounded(mask_iou(score.ann_rle, r)), "new": _rounded(mask_iou(written, r)),
        }  # fmt: skip
    record["bbox"] = {"old": score_bbox(score.ann_rle), "new": new["bbox"]}
    record["area"] = {"old": float(mask_utils.area(score.ann_rle)), "new": new["area"]}


def score_bbox(rle: Rle) -> List[float]:
    return [float(v) for v in mask_utils.toBbox(rle)]


def _added(audited: AuditedFile, images, options: RefineOptions, changes) -> List[Dict[str, Any]]:
    polygons = bool(audited.gt["annotations"]) and all(
        isinstance(a["segmentation"], list) for a in audited.gt["annotations"]
    )
    next_id = max((a["id"] for a in audited.gt["annotations"]), default=0) + 1
    added = []
    for prediction in audited.missing:
        if prediction.pred_score < options.missing_score:
            continue
        image = images[prediction.image_id]
        segmentation = segmentation_like([] if polygons else {"counts": ""}, prediction.rle)
        _, bbox, area = _box_and_area(segmentation, image["height"], image["width"])
        if area == 0:
            continue
        ann = {"id": next_id, "image_id": prediction.image_id,
               "category_id": prediction.pred_category_id, "segmentation": segmentation,
               "area": area, "bbox": bbox, "iscrowd": 0}  # fmt: skip
        added.append(ann)
        changes.append({
            "id": next_id, "image_id": prediction.image_id, "changed": ["added"],
            "source": PREDICTION, "category_id": prediction.pred_category_id,
            "score": _rounded(prediction.pred_score), "bbox": bbox, "area": area,
            "missing_rank": prediction.rank,
        })  # fmt: skip
        next_id += 1
    return added
