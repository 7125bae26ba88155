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

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from ..coco.io import coco_name, read_coco
from ..utils.atomic import write_json_atomic
from ..utils.text import plural
from .audited import read_audited
from .candidates import candidate_masks, suspicious
from .changes import apply_changes
from .choose import AGREEMENT, GRABCUT, NONE, PREDICTION, SOURCES, Choice
from .choose import choose_label_free, choose_with_reference, pair_reference
from .classes import class_evidence
from .options import AUTO, RefineOptions
from .truth import score_sources

NEEDS = {NONE: (), PREDICTION: (PREDICTION,), GRABCUT: (GRABCUT,),
         AGREEMENT: (PREDICTION, GRABCUT, AGREEMENT), AUTO: SOURCES}  # fmt: skip
UNUSED_KEYS = ("bbox", "area")  # recomputed for what changes, copied for the rest


def report_path(output: os.PathLike) -> Path:
    """OUT.json -> OUT.refine_report.json (any other name gets `.refine_report.json` appended)."""
    output = Path(output)
    if output.suffix == ".json":
        return output.with_suffix(".refine_report.json")
    return output.with_name(output.name + ".refine_report.json")


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
    new_gt, changes, kept = apply_changes(audited, candidates, choice.source, paired, options,
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
