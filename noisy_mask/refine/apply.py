"""A corrected copy of an audited COCO file, and the report of every change.

`refine_file` reads the file and its audit (`refine.audited`), and writes OUT.json and
OUT.refine_report.json, each atomically (`utils.atomic`), never touching the input:

- masks: the suspicious annotations, those the audit matched with a mask IoU in
  [min_iou, max_iou), get the mask of the source chosen (`refine.choose`; `refine.sources`), and a
  bbox and area recomputed from it. A polygon annotation gets the traced outer outline of the new
  mask (`noise.models.mask_to_polygons`, which pycocotools rasterizes back to that mask; holes are
  filled, as COCO polygons have none), an RLE one an RLE of the same kind. Below min_iou the model
  and the annotation disagree on the object itself rather than its outline: a person should look.
- classes (with fix_classes): an annotation whose class the model disputes (class_agrees false)
  takes the other class when its score is at least class_score (the audit's other_class_score).
  With a reference the corrections are judged first on its annotations (`class_evidence`) and
  made only where they fix more of its classes than they break, beyond chance (a one-sided sign
  test at CLASS_TEST_LEVEL).
- missing instances (with add_missing): the audit's possibly missing predictions of score at
  least missing_score become annotations, ids from the file's largest id + 1 in the audit's
  order, polygons when every annotation of the file is one, else RLE.

Every other annotation is written as it was read. With `clean` (the clean file a noisy copy was
made from, paired by annotation id), the report also scores every source against the truth.
"""

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from pycocotools import mask as mask_utils

from ..coco.io import coco_name, read_coco
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
from ..utils.atomic import write_json_atomic
from ..utils.text import plural
from . import MAX_IOU, MIN_IOU, iou_range
from .audited import AuditedFile, read_audited
from .candidates import candidate_masks, suspicious
from .choose import AGREEMENT, GRABCUT, NONE, PREDICTION, SOURCES, Choice, ChoiceOptions
from .choose import choose_label_free, choose_with_reference, pair_reference
from .sources import BAND_RATIO
from .truth import score_sources

AUTO = "auto"
CHOICES = (AUTO, NONE, *SOURCES)
NEEDS = {NONE: (), PREDICTION: (PREDICTION,), GRABCUT: (GRABCUT,),
         AGREEMENT: (PREDICTION, GRABCUT, AGREEMENT), AUTO: SOURCES}  # fmt: skip
DIGITS = 6
# The class corrections are made when the reference shows them fixing more than breaking at
# this level (`sign_test`), the usual one-sided 5 %.
CLASS_TEST_LEVEL = 0.05
UNUSED_KEYS = ("bbox", "area")  # recomputed for what changes, copied for the rest


@dataclass(frozen=True)
class RefineOptions:
    """source: one of CHOICES; max_iou, min_iou: the suspicious annotations' audited mask IoU
    range [min_iou, max_iou); fix_classes and class_score: take the model's class when it
    disputes the annotation's with at least that score; add_missing and missing_score: add the
    possibly missing predictions of at least that score; band_ratio: GrabCut's band."""

    source: str = AUTO
    max_iou: float = MAX_IOU
    min_iou: float = MIN_IOU
    fix_classes: bool = False
    class_score: float = 0.7
    add_missing: bool = False
    missing_score: float = 0.7
    band_ratio: float = BAND_RATIO
    choice: ChoiceOptions = field(default_factory=ChoiceOptions)

    def iou_range(self) -> str:
        """The audited mask IoU of the annotations in reach: '[0.5, 0.8)' (`refine.iou_range`)."""
        return iou_range(self.min_iou, self.max_iou)

    def check(self) -> "RefineOptions":
        if self.source not in CHOICES:
            raise ValueError(f"source must be one of {', '.join(CHOICES)}, got {self.source!r}")
        for name in ("max_iou", "min_iou", "class_score", "missing_score"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.min_iou >= self.max_iou:
            raise ValueError(f"min_iou {self.min_iou} must be below max_iou {self.max_iou}")
        if not 0.0 < self.band_ratio <= 1.0:
            raise ValueError(f"band_ratio must be in (0, 1], got {self.band_ratio}")
        self.choice.check()
        return self


def report_path(output: os.PathLike) -> Path:
    """OUT.json -> OUT.refine_report.json (any other name gets `.refine_report.json` appended)."""
    output = Path(output)
    if output.suffix == ".json":
        return output.with_suffix(".refine_report.json")
    return output.with_name(output.name + ".refine_report.json")


# ---------------------------------------------------------------------------------------------
# Writing masks back as segmentations.


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


# ---------------------------------------------------------------------------------------------
# The whole file.


def refine_file(
    annotations: os.PathLike,
    image_dir: os.PathLike,
    audit_dir: os.PathLike,
    output: os.PathLike,
    *,
    detections: Optional[os.PathLike] = None,
    reference: Optional[os.PathLike] = None,
    clean: Optional[os.PathLike] = None,
    options: RefineOptions = RefineOptions(),
) -> Dict[str, Any]:
    """Write the corrected copy OUT = `output` of `annotations` (images under `image_dir`) from
    its audit in `audit_dir`, and OUT.refine_report.json; return {"report", "line", "paths"}.
    `detections`: the predictions, when the audit's are not where it left them; `reference`: a
    COCO file of a few carefully annotated images of the same file, which decides the source;
    `clean`: the clean file of a noisy copy, to score every source against the truth.
    Errors (AnnotationError, FileNotFoundError, ValueError) name the file and the annotation, and
    nothing is written then."""
    options.check()
    output, annotations = Path(output), Path(annotations)
    report_file = report_path(output)
    for path in (output, report_file):
        if path.resolve() == annotations.resolve():
            raise ValueError(f"{path}: writing it would overwrite the input {annotations}")
    if not output.parent.is_dir():
        raise ValueError(f"{output}: the output folder does not exist")

    audited = read_audited(annotations, audit_dir, detections)
    ids = suspicious(audited, options.min_iou, options.max_iou)
    needed = NEEDS[options.source]
    if reference is not None and options.source in (NONE, PREDICTION, GRABCUT):
        needed = SOURCES  # the evidence of every source, reported beside the one given
    if clean is not None:
        needed = SOURCES
    candidates = candidate_masks(audited, ids, image_dir, needed, options.band_ratio)

    paired, reference_counts, reference_classes = {}, None, None
    if reference is not None:
        ref_name = coco_name(reference, "reference")
        ref = read_coco(reference, ref_name, UNUSED_KEYS)
        paired, reference_counts, reference_classes = pair_reference(
            audited.gt, ref, audited.name, ref_name)
        reference_counts["file"] = ref_name
        reference_counts["suspicious"] = sum(i in paired for i in ids)
    choice = _choose(candidates, paired, reference is not None, options)
    choice.reference = reference_counts
    classes = None
    if options.fix_classes:
        classes = (class_evidence(audited, reference_classes, options)
                   if reference_classes is not None else
                   {"fix": True, "reason": "--fix-classes without a reference: not checked"})

    fix_classes = bool(classes and classes["fix"])
    new_gt, changes, kept = _apply(audited, candidates, choice.source, paired, options,
                                   fix_classes)
    counts = {
        "annotations": len(audited.gt["annotations"]),
        "suspicious": len(ids),
        "masks": sum("segmentation" in c["changed"] for c in changes),
        "classes": sum("category_id" in c["changed"] for c in changes),
        "added": sum(c["changed"] == ["added"] for c in changes),
    }
    report: Dict[str, Any] = {
        "input": os.fspath(annotations),
        "audit": audited.audit_name,
        "predictions": os.fspath(audited.predictions),
        "cross_fitted": audited.cross_fitted,
        "output": os.fspath(output),
        "options": _options_row(options),
        "choice": choice.row(),
        "counts": counts,
    }
    if classes is not None:
        report["classes"] = classes
    if clean is not None:
        report["truth"] = score_sources(audited, candidates, clean, choice.source)
    report["changes"] = changes
    report["kept"] = kept
    line = summary_line(counts, choice, options, classes)
    write_json_atomic(output, new_gt, indent=None, separators=(",", ":"))
    write_json_atomic(report_file, report, indent=1)
    return {"report": report, "line": line, "paths": {"output": output, "report": report_file}}


def _options_row(options: RefineOptions) -> Dict[str, Any]:
    row = asdict(options)
    row.update(row.pop("choice"))
    return row


def _choose(candidates, paired, with_reference: bool, options: RefineOptions) -> Choice:
    if options.source == AUTO:
        if with_reference:
            return choose_with_reference(candidates, paired, SOURCES, options.choice)
        return choose_label_free(candidates, SOURCES, options.choice)
    choice = Choice(options.source, "given", f"--source {options.source}")
    if with_reference:
        judged = choose_with_reference(candidates, paired, SOURCES, options.choice)
        choice.evidence = judged.evidence
    return choice


def disputes(score, options: RefineOptions) -> bool:
    """Whether the model disputes an annotation's class with at least options.class_score."""
    return score.class_agrees is False and score.other_class_score >= options.class_score


def sign_test(fixed: int, broken: int) -> float:
    """P(X >= fixed) for X ~ Binomial(fixed + broken, 1/2): the chance of fixing at least that
    many of the decided classes if a correction were as likely to break a class as to fix it
    (1.0 when nothing was decided)."""
    n = fixed + broken
    return sum(math.comb(n, k) for k in range(fixed, n + 1)) / 2**n


def class_evidence(audited: AuditedFile, reference_classes: Mapping[int, int],
                   options: RefineOptions) -> Dict[str, Any]:
    """The class corrections judged on the reference: among the annotations the reference pairs
    (`reference_classes`, id -> the reference's category_id) and the model disputes
    (`disputes`), those the reference gives the model's class (fixed), the annotation's (broken)
    or another one; corrections are made ("fix") only when the sign test of fixed against broken
    gives p <= CLASS_TEST_LEVEL: a fix must be shown, not guessed from one or two classes
    (5 fixed and 0 broken are the fewest that pass; 1 and 0 do not)."""
    categories = {a["id"]: a["category_id"] for a in audited.gt["annotations"]}
    fixed = broken = other = 0
    for ann_id, reference_class in reference_classes.items():
        score = audited.scores.get(ann_id)
        if score is None or not disputes(score, options):
            continue
        if reference_class == score.other_category_id:
            fixed += 1
        elif reference_class == categories[ann_id]:
            broken += 1
        else:
            other += 1
    disputed = fixed + broken + other
    p_value = sign_test(fixed, broken)
    outcome = (f"on the reference the model disputes {disputed} of {len(reference_classes)} "
               f"classes at >= {options.class_score:g}: its class would fix {fixed}, break "
               f"{broken} (sign test p = {p_value:.2g})")
    fix = p_value <= CLASS_TEST_LEVEL
    reason = outcome + ("" if fix else ": classes kept")
    return {"fix": fix, "reason": reason, "paired": len(reference_classes),
            "disputed": disputed, "fixed": fixed, "broken": broken, "other": other,
            "p_value": round(p_value, 6)}


def _apply(audited: AuditedFile, candidates, source: str, paired, options: RefineOptions,
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


def summary_line(counts: Mapping[str, Any], choice: Choice, options: RefineOptions,
                 classes: Optional[Mapping[str, Any]] = None) -> str:
    """'588 annotations, 57 suspicious (audited mask IoU in [0.5, 0.8)): 57 masks from grabcut
    (label-free: ...); 3 classes corrected, 0 added'; with `classes` (class_evidence's) judged
    on a reference, why they were corrected or kept follows in parentheses."""
    masks = (
        f"{plural(counts['masks'], 'mask')} from {choice.source}"
        if choice.source != NONE else "no mask changed"
    )  # fmt: skip
    added = f", {counts['added']} added" if options.add_missing else ""
    judged = f" ({classes['reason']})" if classes and "disputed" in classes else ""
    return (
        f"{counts['annotations']:,} annotations, {counts['suspicious']:,} suspicious (audited "
        f"mask IoU in {options.iou_range()}): {masks} ({choice.how}: "
        f"{choice.reason}); {counts['classes']} class{'' if counts['classes'] == 1 else 'es'} "
        f"corrected{judged}{added}"
    )
