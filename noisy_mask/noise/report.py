"""The noise report: its counts and statistics, its one-line summary, and its file next to the
noisy json (OUT.noise_report.json, one `per_instance` record a line).

The report holds the seed and options, the counts (instances, deleted, flipped, kept_original,
dilated, eroded, capped; see `noise.apply` for how they are drawn), the mask IoU's mean and
percentiles, the sizes the noise took once scaled, and `per_instance`, one record per instance in
id order, for scoring an annotation audit against the truth:
    {"id": 17, "image_id": 4, "category_id": 2, "action": "flipped", "new_category_id": 3,
     "mask_iou": 0.8123, "kept_original": false}
action: "kept", "deleted" (absent from the output) or "flipped" (given new_category_id; its mask
is noisy all the same); mask_iou: IoU of the written vs the clean mask (6 decimals; null when
deleted or when the clean mask is empty); kept_original: the noise would have emptied the mask,
so the clean one was written (mask_iou 1).
"""

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..coco.io import PathArg
from .params import NoiseParams

PERCENTILES = (5, 25, 50, 75, 95)


def _summary(values: Sequence[float]) -> Dict[str, float]:
    if not values:
        return {"min": 0.0, "mean": 0.0, "max": 0.0}
    array = np.asarray(values, dtype=np.float64)
    return {
        "min": round(float(array.min()), 4),
        "mean": round(float(array.mean()), 4),
        "max": round(float(array.max()), 4),
    }


def instance_record(
    ann: Dict[str, Any],
    action: str,
    new_category_id: Optional[int],
    iou: Optional[float],
    kept_original: bool,
) -> Dict[str, Any]:
    """One entry of the report's `per_instance` (see the module docstring)."""
    return {
        "id": ann["id"],
        "image_id": ann["image_id"],
        "category_id": ann["category_id"],
        "action": action,
        "new_category_id": new_category_id,
        "mask_iou": None if iou is None or math.isnan(iou) else round(float(iou), 6),
        "kept_original": bool(kept_original),
    }


def build_report(
    params: NoiseParams,
    seed: int,
    n: int,
    deleted: List[int],
    flips: Dict[int, List[int]],
    stats: List[Dict[str, Any]],
) -> Dict[str, Any]:
    """The report of `n` instances (crowd regions left out): the counts, the mask IoU percentiles
    and the sizes the noise took, from `stats`, one dict per instance kept (noise_instance's)."""
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
    skipped = report.get("flips_skipped")
    flipped = f"{report['flipped']} flipped" + (f" (flips skipped: {skipped})" if skipped else "")
    crowd = f" (and {report['crowd']} crowd regions, as they are)" if report.get("crowd") else ""
    return (
        f"{report['instances']} instances{crowd}: {report['deleted']} deleted, {flipped}, "
        f"{report['kept_original']} kept original (noise would empty them); {iou_text}; "
        f"seed {report['seed']}"
    )


def report_path(output_path: PathArg) -> Path:
    """OUT.json -> OUT.noise_report.json (any other name gets `.noise_report.json` appended)."""
    output_path = Path(output_path)
    if output_path.suffix == ".json":
        return output_path.with_suffix(".noise_report.json")
    return output_path.with_name(output_path.name + ".noise_report.json")


def report_text(report: Dict[str, Any]) -> str:
    """The report as json indented by 2, but each `per_instance` record on one line (one line per
    instance, not nine: the report of a COCO-sized file stays readable and small)."""
    head = {k: v for k, v in report.items() if k != "per_instance"}
    text = json.dumps(head, indent=2)[: -len("\n}")]
    records = ",\n".join("    " + json.dumps(r) for r in report.get("per_instance", []))
    body = f"[\n{records}\n  ]" if records else "[]"
    return f'{text},\n  "per_instance": {body}\n}}\n'
