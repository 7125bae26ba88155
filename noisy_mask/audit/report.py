"""The audit's tables: rows with names and rounded numbers, audit.json, audit.csv and the one-line
summary."""

import csv
import io
import math
import os
from pathlib import Path
from statistics import median
from typing import Any, Dict, List, Mapping, Optional

from ..utils.atomic import write_json_atomic, write_text_atomic
from ..utils.text import plural
from .scores import Audit

JSON_FILE, CSV_FILE = "audit.json", "audit.csv"
PREDICTIONS_FILE = "predictions.json"
# The model's class probabilities at each annotation's box (annotation id -> {category id: p}),
# kept so that the audit can be scored again exactly from the files (`refine.audited`).
CLASS_PROBS_FILE = "class_probabilities.json"
# Keys of the annotations the audit does not read: it compares masks, not boxes or areas.
UNUSED_KEYS = ("bbox", "area")
DIGITS = 6  # of the scores written
SUSPICION_FORMULA = (
    "suspicion = 1 - mask IoU x (1 - max(0, other_class_score - same_class_score)) for a matched "
    "annotation (best match's mask IoU >= match_iou), 1 otherwise; same_class_score and "
    "other_class_score: the probabilities of the annotated class and of the likeliest other class "
    "at the annotation's box (class_scores box_probabilities, when the audit runs the model), or "
    "the best scores of the annotated class and of another class among the predictions of the "
    "object (class_scores detections: mask IoU >= max(match_iou, 0.5 x the best match's))"
)
CSV_COLUMNS = (
    "kind", "rank", "id", "image_id", "file_name", "category_id", "category", "pred_category_id",
    "pred_category", "pred_score", "mask_iou", "boundary_iou", "class_agrees", "same_class_score",
    "other_class_score", "other_category_id", "matched", "suspicion", "max_iou", "bbox", "area",
    "fold",
)  # fmt: skip


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, DIGITS) if math.isfinite(value) else None
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _ordered(row: Dict[str, Any]) -> Dict[str, Any]:
    """The keys of a row in the order of CSV_COLUMNS."""
    return {k: row[k] for k in CSV_COLUMNS if k in row}


def audit_rows(audit: Audit, gt: Mapping[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
    """{"annotations": [...], "missing": [...]}: each ranked row with the image's file name and
    the category names beside the ids, numbers rounded to 6 decimals."""
    names = {c["id"]: str(c["name"]) for c in gt["categories"]}
    files = {image["id"]: image.get("file_name") for image in gt["images"]}
    annotations = []
    for score in audit.annotations:
        row = {k: _rounded(v) for k, v in score.row().items()}
        row["file_name"] = files[score.image_id]
        row["category"] = names.get(score.category_id)
        row["pred_category"] = names.get(score.pred_category_id)
        annotations.append(_ordered(row))
    missing = []
    for prediction in audit.missing:
        row = {k: _rounded(v) for k, v in prediction.row().items()}
        row["file_name"] = files[prediction.image_id]
        row["pred_category"] = names.get(prediction.pred_category_id)
        missing.append(_ordered(row))
    return {"annotations": annotations, "missing": missing}


def summary(audit: Audit) -> Dict[str, Any]:
    """Counts: annotations, unmatched, other_class (matched, the model prefers another class),
    missing, crowd; median_mask_iou over the matched annotations (None without any)."""
    matched = [s for s in audit.annotations if s.matched]
    return {
        "annotations": len(audit.annotations),
        "unmatched": len(audit.annotations) - len(matched),
        "other_class": sum(s.class_agrees is False for s in matched),
        "median_mask_iou": round(median(s.mask_iou for s in matched), DIGITS) if matched else None,
        "missing": len(audit.missing),
        "crowd": audit.crowd,
    }


def summary_line(counts: Mapping[str, Any]) -> str:
    """'1,234 annotations: 87 with no matching prediction, 41 with another class, median mask IoU
    0.81; 23 confident predictions without annotation'."""
    iou = counts["median_mask_iou"]
    median_text = f"median mask IoU {iou:.2f}" if iou is not None else "no mask IoU (no match)"
    n = counts["annotations"]
    line = (
        f"{n:,} annotation{'' if n == 1 else 's'}: {counts['unmatched']:,} with no matching "
        f"prediction, {counts['other_class']:,} with another class, {median_text}; "
        f"{plural(counts['missing'], 'confident prediction')} without annotation"
    )
    if counts["crowd"]:
        line += f" ({plural(counts['crowd'], 'crowd region')} not audited)"
    return line


def write_json(path: os.PathLike, audit: Audit, gt: Mapping[str, Any], meta: Mapping) -> Path:
    """audit.json: `meta` (the inputs, how the predictions were made), the options, the formula,
    the summary, then the ranked annotation rows and possibly missing instances."""
    document = {
        **meta,
        "options": audit.options_dict(),
        "suspicion": SUSPICION_FORMULA,
        "class_scores": audit.class_scores,
        "summary": summary(audit),
        **audit_rows(audit, gt),
    }
    write_json_atomic(path, document, indent=1)
    return Path(path)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return value


def write_csv(path: os.PathLike, audit: Audit, gt: Mapping[str, Any]) -> Path:
    """audit.csv: one row per annotation (kind "annotation", by rank), then one per possibly
    missing instance (kind "missing", by score); a column that does not apply is empty."""
    rows = audit_rows(audit, gt)
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for kind, key in (("annotation", "annotations"), ("missing", "missing")):
        for row in rows[key]:
            writer.writerow({"kind": kind, **{k: _csv_value(v) for k, v in row.items()}})
    write_text_atomic(path, out.getvalue())
    return Path(path)


def describe_source(
    detections: Optional[str] = None,
    weights: Optional[str] = None,
    config: Optional[str] = None,
    folds: Optional[List[Dict[str, Any]]] = None,
) -> Dict[str, Any]:
    """The "predictions" entry of audit.json: where the predictions came from."""
    if folds is not None:
        return {"source": "folds", "config": config, "folds": len(folds)}
    if weights is not None:
        return {"source": "weights", "weights": weights, "config": config}
    return {"source": "detections", "detections": detections}
