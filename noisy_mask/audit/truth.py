"""How well an audit finds the noise, when the truth is known: for a noisy copy made by
`python -m noisy_mask.noise`, its noise report's `per_instance` records (what the noise did to
each annotation), or the clean file paired with the noisy one by annotation id
(`noise.matching`); then

- flip AUROC: the probability that a class-flipped annotation has a higher suspicion than one that
  kept its class (ties count one half; the Mann-Whitney statistic); the class AUROC: the same for
  the class margin other_class_score - same_class_score alone, the class evidence without the
  outline's;
- IoU rank correlation: Spearman's correlation of the audited mask IoU with the true IoU of the
  noisy mask against the clean one; the same for -suspicion; and, as the baseline that needs no
  model, for the annotation's own mask area: noise that moves outlines by some pixels costs a
  small object more IoU than a large one, so size alone ranks the true IoU to some degree;
- with the clean file, the deleted instances among the possibly missing ones (`missing_found`).

Both need no scipy: ranks are averaged over ties, Spearman's rho is the Pearson correlation of the
ranks.
"""

import math
from typing import Any, Dict, List, Mapping, NamedTuple, Sequence

import numpy as np

from ..coco.io import annotation_rle
from ..coco.rle import Rle, mask_iou
from ..noise.matching import DELETED, FLIPPED, match_noise_dicts
from .scores import Audit

# A possibly missing prediction finds a deleted instance when their masks overlap this much.
FOUND_IOU = 0.5
# The deleted instances found are counted down the list as long as this share of it is right.
MISSING_PRECISION = 0.5


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks of `values`, ties sharing the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    for end in range(1, len(values) + 1):
        if end == len(values) or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of start+1 .. end
            start = end
    return ranks


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """P(score of a positive > score of a negative) + P(tie) / 2; NaN without both kinds."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return math.nan
    ranks = average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation; NaN for fewer than 2 pairs or a constant side."""
    if len(x) < 2:
        return math.nan
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / denominator) if denominator > 0 else math.nan


class Truth(NamedTuple):
    """What the noise did to one annotation: flipped its class or not; iou: its mask's IoU with
    the clean mask (NaN when unknown: an empty clean mask)."""

    flipped: bool
    iou: float


def truth_from_clean(
    clean: Mapping[str, Any],
    noisy: Mapping[str, Any],
    clean_name: str = "clean annotations",
    noisy_name: str = "annotations",
) -> Dict[int, Truth]:
    """The truth of every annotation of `noisy` by id, from the clean COCO dict it was made from
    (both read by `coco.io.read_coco`), paired by annotation id (`noise.matching`)."""
    matches = match_noise_dicts(clean, noisy, clean_name, noisy_name, None)
    return {m.ann_id: Truth(m.status == FLIPPED, m.iou) for m in matches if m.status != DELETED}


def truth_from_report(report: Any, name: str = "noise report") -> Dict[int, Truth]:
    """The truth of every annotation a noise report's `per_instance` keeps, by id (see
    `noise.apply`). ValueError naming `name` when the report has no such list."""
    records = report.get("per_instance") if isinstance(report, dict) else None
    if not isinstance(records, list):
        raise ValueError(
            f"{name}: no 'per_instance' list (a report of an older noisy_mask.noise?); score "
            "against the clean annotations instead"
        )
    truth = {}
    for record in records:
        if record["action"] == DELETED:
            continue
        iou = record["mask_iou"]
        truth[record["id"]] = Truth(record["action"] == FLIPPED, math.nan if iou is None else iou)
    return truth


def score_against_truth(audit: Audit, truth: Mapping[int, Truth]) -> Dict[str, Any]:
    """Counts, flip_auroc, class_auroc, iou_spearman (audited mask IoU vs true IoU),
    suspicion_spearman (-suspicion vs true IoU) and area_spearman (the annotation's mask area vs
    true IoU; over the annotations whose true IoU is known), over the audited annotations that
    `truth` knows."""
    audited = [s for s in audit.annotations if s.id in truth]
    flipped = [truth[s.id].flipped for s in audited]
    with_iou = [s for s in audited if not math.isnan(truth[s.id].iou)]
    true_iou = [truth[s.id].iou for s in with_iou]

    def rounded(value: float) -> Any:
        return None if math.isnan(value) else round(value, 4)

    return {
        "annotations": len(audited),
        "flipped": int(sum(flipped)),
        "flip_auroc": rounded(auroc([s.suspicion for s in audited], flipped)),
        "class_auroc": rounded(
            auroc([s.other_class_score - s.same_class_score for s in audited], flipped)
        ),
        "iou_spearman": rounded(spearman([s.mask_iou for s in with_iou], true_iou)),
        "suspicion_spearman": rounded(spearman([-s.suspicion for s in with_iou], true_iou)),
        "area_spearman": rounded(spearman([s.area for s in with_iou], true_iou)),
        "median_true_iou": rounded(float(np.median(true_iou))) if true_iou else None,
    }


def truth_line(scores: Mapping[str, Any]) -> str:
    """'Against the truth: flipped classes AUROC 0.97 (41 of 1,200; class margin alone 0.98);
    rank correlation with the true IoU: audited mask IoU 0.62, suspicion 0.58 (object size alone
    0.40)'."""

    def show(value: Any) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    line = (
        f"Against the truth: flipped classes AUROC {show(scores['flip_auroc'])} "
        f"({scores['flipped']:,} of {scores['annotations']:,}; class margin alone "
        f"{show(scores.get('class_auroc'))}); rank correlation with the true "
        f"IoU: audited mask IoU {show(scores['iou_spearman'])}, suspicion "
        f"{show(scores['suspicion_spearman'])} (object size alone "
        f"{show(scores.get('area_spearman'))})"
    )
    missing = scores.get("missing")
    if missing and missing["deleted"]:
        line += (
            f"; deleted instances: {missing['found']} of {missing['deleted']} among the "
            f"{missing['reported']:,} possibly missing, "
            f"{100 * missing['recall_at_precision']:.0f}% at "
            f"{100 * missing['precision']:.0f}% precision"
        )
    return line


def deleted_instances(
    clean: Mapping[str, Any], noisy: Mapping[str, Any], clean_name: str = "clean annotations"
) -> Dict[int, List[Rle]]:
    """The masks of the clean annotations that the noisy copy no longer has (the noise keeps the
    ids of the others), by image id; crowd annotations left out."""
    kept = {ann["id"] for ann in noisy["annotations"]}
    images = {image["id"]: image for image in clean["images"]}
    deleted: Dict[int, List[Rle]] = {}
    for ann in clean["annotations"]:
        if ann["id"] not in kept and not ann.get("iscrowd", 0):
            rle = annotation_rle(ann, images[ann["image_id"]], clean_name)
            deleted.setdefault(ann["image_id"], []).append(rle)
    return deleted


def missing_found(
    audit: Audit, deleted: Mapping[int, Sequence[Rle]], found_iou: float = FOUND_IOU,
    precision: float = MISSING_PRECISION,
) -> Dict[str, Any]:
    """How the possibly missing instances find the deleted ones. Down the missing list from the
    highest score, a prediction finds a deleted instance of its image that no higher one found
    when their mask IoU is at least `found_iou`. Returns the counts (deleted, reported, found) and
    recall_at_precision: the largest share of the deleted instances found by a top k of the list
    of which at least `precision` found one (0 if no top k is that precise; None if nothing was
    deleted)."""
    total = sum(len(masks) for masks in deleted.values())
    unfound = {image_id: list(masks) for image_id, masks in deleted.items()}
    found, best_recall = 0, 0.0
    ranked = sorted(audit.missing, key=lambda m: -m.pred_score)
    for k, item in enumerate(ranked, start=1):
        candidates = unfound.get(item.image_id, [])
        ious = [mask_iou(item.rle, mask) for mask in candidates]
        best = int(np.nanargmax(ious)) if ious and not np.all(np.isnan(ious)) else None
        if best is not None and ious[best] >= found_iou:
            candidates.pop(best)
            found += 1
        if total and found / k >= precision:
            best_recall = max(best_recall, found / total)
    return {"deleted": total, "reported": len(ranked), "found": found,
            "precision": precision, "found_iou": found_iou,
            "recall_at_precision": round(best_recall, 4) if total else None}
