"""The refinement arm of the robustness grid: at a noise level and seed, the noisy training
annotations audited by cross-fitted models (`noisy_mask.audit --folds`) and refined from that
audit (`noisy_mask.refine`); the copy is the training data of the level `<level>_refined`.

The cross-fitted models start where the grid's runs start and train the grid's schedule, each on
the images of the other folds. The refinement chooses its source as `python -m noisy_mask.refine`
does: by a reference (a few carefully annotated training images) when there is one, else by
label-free evidence, leaving the masks as they are when nothing shows a gain. Both steps are
scored against the reference training annotations (the clean masks, or a user's as they are),
whose annotation ids the noisy copies keep.
"""

import json
from pathlib import Path
from statistics import mean
from typing import Dict, List, Optional, Sequence

from ..audit.report import JSON_FILE
from ..audit.predict import Predictions
from ..audit.run import run_audit
from ..engine.progress import RunProgress
from ..refine.apply import refine_file, report_path
from ..utils.atomic import write_json_atomic
from .levels import level_data, refine_folder, refined_json
from .options import Grid, RefineArm

AUDIT_DIR = "audit"
REFERENCE_FILE = "reference.json"
# The refine options an arm sets, checked against a refined copy made earlier in the folder.
ARM_OPTIONS = ("source", "max_iou", "add_missing", "fix_classes")


class RefinedCopyMismatchError(ValueError):
    """A refined copy already in a grid's folder was made with other refine options."""


def write_reference(clean_json: str, num_images: int, output: Path) -> Path:
    """The clean annotations of the first `num_images` images (by id) of `clean_json`: the few
    carefully annotated images a user would give the refine tool."""
    coco = json.loads(Path(clean_json).read_text())
    keep = {image["id"] for image in sorted(coco["images"], key=lambda i: i["id"])[:num_images]}
    coco["images"] = [image for image in coco["images"] if image["id"] in keep]
    coco["annotations"] = [ann for ann in coco["annotations"] if ann["image_id"] in keep]
    write_json_atomic(output, coco, indent=None)
    return output


def refine_level(grid: Grid, level: str, seed: int, opts: Sequence[str],
                 progress: Optional[RunProgress] = None) -> Path:
    """Audit and refine the noisy training annotations of `level` and `seed` with the grid's
    refinement arm (made once, under `levels.refine_folder`); returns the refined file. The
    cross-fitted runs train the grid's schedule with its config and `opts` (KEY VALUE, the
    starting weights included), as the grid's runs do, and report to `progress`."""
    arm = grid.refine
    refined = refined_json(grid.output_dir, level, seed)
    if refined.exists() and report_path(refined).exists():  # made as asked: check_refined_copies
        return refined
    folder = refine_folder(grid.output_dir, level, seed)
    data = level_data(grid.output_dir, grid.splits, level, seed)
    predictions = Predictions(folds=arm.folds, config=grid.config, opts=opts,
                              max_iter=grid.schedule.max_iter, seed=seed, launch=grid.launch)
    audit = run_audit(data["train_json"], data["train_images"], folder / AUDIT_DIR, predictions,
                      clean=grid.splits.train_json, noise_report=data["noise_report"],
                      progress=progress)
    reference = arm.reference
    if reference is None and arm.reference_images:
        reference = write_reference(grid.splits.train_json, arm.reference_images,
                                    folder / REFERENCE_FILE)
    result = refine_file(data["train_json"], data["train_images"], folder / AUDIT_DIR, refined,
                         reference=reference, clean=grid.splits.train_json,
                         options=arm.options())
    for line in (audit["line"], result["line"]):
        (progress.write if progress is not None else print)(f"{level} seed {seed}: {line}")
    return refined


def check_refined_copies(output_dir: Path, levels: Sequence[str], seeds: Sequence[int],
                         arm: RefineArm) -> None:
    """`check_made_as_asked` for every refined copy of `levels` and `seeds` already in
    `output_dir`: before a grid trains anything, not after its runs."""
    for level in levels:
        for seed in seeds:
            report = report_path(refined_json(output_dir, level, seed))
            if report.exists():
                check_made_as_asked(report, arm)


def check_made_as_asked(report: Path, arm: RefineArm) -> None:
    """A refined copy made earlier in this folder is used again only if the refine options it was
    made with (its report's) are the arm's: else RefinedCopyMismatchError naming the report and
    the options."""
    made = json.loads(report.read_text())["options"]
    asked = arm.options()
    differ = [f"{key} {made.get(key)!r} (asked {getattr(asked, key)!r})"
              for key in ARM_OPTIONS if made.get(key) != getattr(asked, key)]
    if differ:
        raise RefinedCopyMismatchError(
            f"{report}: this refined copy was made with {', '.join(differ)}: give another "
            f"--output, or delete {report.parent} to refine again")


def refinement_records(output_dir: Path, levels: Sequence[str], seeds: Sequence[int]) -> List[Dict]:
    """Per noise level and seed refined: what the audit found against the truth and what the
    refinement changed, with the mean IoU of the noisy and of the refined training masks with
    the reference ones."""
    records = []
    for level in levels:
        for seed in seeds:
            refined = refined_json(output_dir, level, seed)
            if not report_path(refined).exists():
                continue
            report = json.loads(report_path(refined).read_text())
            audit = json.loads((refine_folder(output_dir, level, seed) / AUDIT_DIR / JSON_FILE)
                               .read_text())
            truth, source = report["truth"], report["choice"]["source"]
            records.append(dict(
                level=level, seed=seed, source=source, how=report["choice"]["how"],
                counts=report["counts"], noisy_iou=truth["none"]["mean_iou"],
                refined_iou=truth[source]["mean_iou"], audit=audit.get("truth"),
            ))  # fmt: skip
    return records


def refinement_table(records: Sequence[Dict]) -> List[str]:
    """Markdown: per level, the mean over seeds of the audit's scores against the truth and of
    the refined versus noisy training masks."""
    lines = ["| noise | seeds | flip AUROC | audited vs true IoU (Spearman; object size "
             "alone) | deleted found at 50% precision | source chosen | masks / classes / added "
             "| mean IoU with the reference masks: noisy | refined |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    def avg(values, digits: int = 2) -> str:
        values = [v for v in values if v is not None]
        return f"{mean(values):.{digits}f}" if values else "n/a"

    for level in dict.fromkeys(r["level"] for r in records):
        rows = [r for r in records if r["level"] == level]
        audits = [r["audit"] or {} for r in rows]
        sources = ", ".join(f"{r['source']} ({r['how']})" for r in rows)
        counts = "; ".join(f"{r['counts']['masks']} / {r['counts']['classes']} / "
                           f"{r['counts']['added']}" for r in rows)
        lines.append(
            f"| {level} | {len(rows)} | {avg(a.get('flip_auroc') for a in audits)} | "
            f"{avg(a.get('iou_spearman') for a in audits)} "
            f"({avg(a.get('area_spearman') for a in audits)}) | "
            f"{avg((a.get('missing') or {}).get('recall_at_precision') for a in audits)} | "
            f"{sources} | {counts} | {avg((r['noisy_iou'] for r in rows), 3)} | "
            f"{avg((r['refined_iou'] for r in rows), 3)} |"
        )
    return lines
