"""An audit folder read back with the masks it was made from.

audit.json keeps every annotation's scores and the possibly missing predictions, not the
predictions' masks. Those are in the predictions the audit scored against: OUTPUT/predictions.json
with --weights or --folds, the --detections file otherwise (its path as audit.json records it,
tried as given, then beside audit.json; or given again). The audit is made again from them with
its own options (`audit.scores.audit_annotations`, pure and deterministic; with the model's class
probabilities, class_probabilities.json, when the audit read the classes from the model), which
gives back each annotation's best match and each possibly missing prediction with its mask; every
row is checked against audit.json (ids, classes, mask IoU to 6 decimals), so that the annotations
read now are the ones that were audited.
"""

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from ..audit.report import CLASS_PROBS_FILE, JSON_FILE, PREDICTIONS_FILE, UNUSED_KEYS
from ..audit.scores import AnnotationScore, AuditOptions, MissingPrediction, audit_annotations
from ..coco.io import AnnotationError, load_json, read_coco
from ..evaluation.detections import read_detections

IOU_TOLERANCE = 2e-6  # audit.json rounds the IoUs to 6 decimals


@dataclass
class AuditedFile:
    """A COCO file with its audit: `gt` the annotations as read (checked, not copied deeply);
    `scores` each audited annotation's scores and best match by id; `missing` the possibly
    missing predictions in audit.json's order, each with its mask; `audit` audit.json itself;
    `predictions` the predictions file the masks come from; `cross_fitted`: whether each image
    was predicted by a model that never saw it (--folds)."""

    gt: Dict[str, Any]
    name: str
    scores: Dict[int, AnnotationScore]
    missing: List[MissingPrediction]
    audit: Dict[str, Any]
    audit_name: str
    predictions: Path
    cross_fitted: bool


def predictions_path(audit_dir: Path, audit: Mapping[str, Any], name: str) -> Path:
    """The predictions file an audit scored against (module docstring). FileNotFoundError naming
    audit.json and the paths tried."""
    source = audit.get("predictions") or {}
    if source.get("source") in ("weights", "folds"):
        tried = [audit_dir / PREDICTIONS_FILE]
    elif source.get("source") == "detections" and source.get("detections"):
        given = Path(source["detections"])
        tried = [given]
        if not given.is_absolute():
            tried += [audit_dir / given, audit_dir / given.name]
    else:
        raise AnnotationError(f"'predictions' {source!r} says nothing of the predictions", name)
    for path in tried:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{name}: the predictions the audit scored against are not at "
        f"{' nor '.join(os.fspath(p) for p in tried)}; pass them with --detections"
    )


def read_class_probs(
    audit_dir: Path, audit: Mapping[str, Any]
) -> Optional[Dict[int, Dict[int, float]]]:
    """The class probabilities an audit scored the classes with (class_scores
    box_probabilities), by annotation id; None when it took them from the detections.
    FileNotFoundError naming the file when audit.json says they exist and they do not."""
    if audit.get("class_scores") != "box_probabilities":
        return None
    path = audit_dir / CLASS_PROBS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{os.fspath(audit_dir / JSON_FILE)}: its class scores are the model's probabilities "
            f"at the boxes, kept in {os.fspath(path)}, which is missing: audit the file again"
        )
    return {int(ann_id): {int(k): float(p) for k, p in probs.items()}
            for ann_id, probs in load_json(path).items()}  # fmt: skip


def read_audited(
    annotations: os.PathLike,
    audit_dir: os.PathLike,
    detections: Optional[os.PathLike] = None,
) -> AuditedFile:
    """The COCO file `annotations` and its audit in `audit_dir`, with the predictions' masks
    (from `detections` when given, else where the audit found them). Errors name the file and
    the annotation: an annotation the audit does not know, or whose class or mask IoU differ from
    audit.json's (the file changed since, or it is another file)."""
    name = os.fspath(annotations)
    gt = read_coco(annotations, name, UNUSED_KEYS)
    audit_dir = Path(audit_dir)
    audit_path = audit_dir / JSON_FILE
    audit_name = os.fspath(audit_path)
    if not audit_path.is_file():
        raise FileNotFoundError(f"{audit_name}: no such file (is {audit_dir} an audit folder?)")
    audit = load_json(audit_path)
    for key in ("options", "annotations", "missing", "predictions"):
        if not isinstance(audit, dict) or key not in audit:
            raise AnnotationError(f"no {key!r}: not an audit.json of noisy_mask.audit", audit_name)
    try:
        options = AuditOptions(**audit["options"]).check()
    except (TypeError, ValueError) as e:
        raise AnnotationError(f"'options': {e}", audit_name) from None
    if detections is not None:
        path = Path(detections)
    else:
        path = predictions_path(audit_dir, audit, audit_name)
    by_image = read_detections(path, gt, options.min_score)
    again = audit_annotations(gt, by_image, options, name, read_class_probs(audit_dir, audit))
    scores = {score.id: score for score in again.annotations}
    _check_rows(audit["annotations"], scores, gt, name, audit_name)
    missing = again.missing
    rows = audit["missing"]
    if [(r["image_id"], r["pred_category_id"]) for r in rows] != [
        (m.image_id, m.pred_category_id) for m in missing
    ]:
        raise AnnotationError(
            f"its {len(rows)} possibly missing predictions are not the {len(missing)} that "
            f"{os.fspath(path)} gives: the predictions changed since the audit",
            audit_name,
        )
    for row, prediction in zip(rows, missing):
        prediction.rank, prediction.fold = row["rank"], row.get("fold")
    cross_fitted = audit["predictions"].get("source") == "folds"
    return AuditedFile(gt, name, scores, missing, audit, audit_name, path, cross_fitted)


def _check_rows(
    rows: List[Mapping[str, Any]],
    scores: Mapping[int, AnnotationScore],
    gt: Mapping[str, Any],
    name: str,
    audit_name: str,
) -> None:
    seen = set()
    for row in rows:
        ann_id = row["id"]
        seen.add(ann_id)
        score = scores.get(ann_id)
        where = f"annotation {ann_id} (image {row['image_id']})"
        if score is None:
            raise AnnotationError(
                f"{where} of {audit_name} is not in the file: audit the file again", name
            )
        if score.category_id != row["category_id"]:
            raise AnnotationError(
                f"{where}: 'category_id' {score.category_id}, but {row['category_id']} in "
                f"{audit_name}: the file changed since the audit",
                name,
            )
        audited = row["mask_iou"]
        if audited is None or not math.isclose(score.mask_iou, audited, abs_tol=IOU_TOLERANCE):
            raise AnnotationError(
                f"{where}: mask IoU with its best match {score.mask_iou:.6f}, but {audited} in "
                f"{audit_name}: the mask or the predictions changed since the audit",
                name,
            )
        score.fold = row.get("fold")
    for ann in gt["annotations"]:
        if not ann.get("iscrowd", 0) and ann["id"] not in seen:
            raise AnnotationError(
                f"annotation {ann['id']} (image {ann['image_id']}) is not in {audit_name}: audit "
                "the file again",
                name,
            )
