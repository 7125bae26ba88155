"""How a refinement would do against the truth, for a noisy copy made from a clean file (by
`python -m noisy_mask.noise`, which keeps the annotation ids): each source's mean mask IoU with the
clean masks, over the suspicious annotations and over the whole file, against the annotations as
they are ("none"), and how many annotations each makes better and worse."""

import os
from typing import Any, Dict, Mapping

import numpy as np

from ..coco.io import annotation_rle, coco_name, read_coco
from ..coco.rle import mask_iou
from .audited import AuditedFile
from .candidates import Candidates
from .choose import NONE, SOURCES, reference_gains

DIGITS = 6
UNUSED_KEYS = ("bbox", "area")


def _rounded(value: float):
    return None if np.isnan(value) else round(float(value), DIGITS)


def score_sources(
    audited: AuditedFile,
    candidates: Candidates,
    clean: os.PathLike,
    chosen: str,
) -> Dict[str, Any]:
    """Each source's mean mask IoU with the clean file (paired by annotation id): over the
    suspicious annotations, and over every annotation the clean file has (the others as they
    are); "none" is the annotations as they are."""
    clean_name = coco_name(clean, "clean annotations")
    truth = read_coco(clean, clean_name, UNUSED_KEYS)
    images = {image["id"]: image for image in truth["images"]}
    clean_rles = {}
    for ann in truth["annotations"]:
        if not ann.get("iscrowd", 0):
            clean_rles[ann["id"]] = annotation_rle(ann, images[ann["image_id"]], clean_name)
    both = [s for s in audited.scores.values() if s.id in clean_rles]
    base = {s.id: mask_iou(s.ann_rle, clean_rles[s.id]) for s in both}
    out: Dict[str, Any] = {"clean": clean_name, "annotations": len(both),
                           "suspicious": sum(i in clean_rles for i in candidates)}  # fmt: skip
    for source in (NONE, *SOURCES):
        ious = dict(base)
        for ann_id, masks in candidates.items():
            if source != NONE and ann_id in clean_rles and masks.get(source) is not None:
                ious[ann_id] = mask_iou(masks[source], clean_rles[ann_id])
        changed = [ious[i] for i in candidates if i in clean_rles]
        gains = reference_gains(candidates, clean_rles, source) if source != NONE else None
        out[source] = {
            "mean_iou": _rounded(np.nanmean(list(ious.values()))) if ious else None,
            "mean_iou_suspicious": _rounded(np.nanmean(changed)) if changed else None,
            "better": int((gains > 0).sum()) if gains is not None else None,
            "worse": int((gains < 0).sum()) if gains is not None else None,
        }
    out["chosen"] = chosen
    return out


def truth_line(truth: Mapping[str, Any]) -> str:
    """'Against the clean masks: mean IoU none 0.830, prediction 0.812, ... (suspicious: ...)'."""

    def show(key: str) -> str:
        return ", ".join(
            f"{s} {truth[s][key]:.3f}" if truth[s][key] is not None else f"{s} n/a"
            for s in (NONE, *SOURCES)
        )

    return (
        f"Against the clean masks, mean IoU over {truth['annotations']:,} annotations: "
        f"{show('mean_iou')}; over the {truth['suspicious']:,} suspicious: "
        f"{show('mean_iou_suspicious')}"
    )
