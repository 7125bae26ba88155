"""Losses as practitioners set them, before a loss is called a failure: the robustness grid's
negatives (Dice alone, focal) against the schedules, class weights and loss weights people use.

A `Variant` is a loss, its config options and its fine-tuning length (a multiple of the grid's),
paired by seed with a reference variant trained as long (BCE). Its runs go into a robustness
grid's folder, `runs/<level>/seed<seed>/<variant>`, and share the grid's data, starting detector
and the runs of the grid's own losses (the variants `bce`, `dice`, `focal`, `bce+dice`).
Writes `loss_variants.md` and `loss_variants.json` next to the grid's results.

Besides the APs the table gives how much of its box a mask fills (detections scoring >= 0.5 on
the validation images, against the ground truth's): a loss that ranks pixels well but calibrates
them badly paints masks wider than the objects at detectron2's 0.5 threshold.
`evaluate_at_thresholds` evaluates a finished run again at other mask thresholds
(MODEL.ROI_MASK_HEAD.MASK_THRESHOLD) to tell the two apart.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Dict, List, Optional, Sequence, Tuple

from ..coco.io import annotation_rle, read_coco
from ..coco.rle import area, to_rle
from ..engine.launcher import Launch, Schedule, run_train_net
from ..engine.placement import Slot
from ..utils.atomic import write_json_atomic, write_text_atomic
from ..utils.run_folders import DETECTIONS_FILE, EVAL_RESULTS_FILE, find_run_file
from .levels import builtin_splits, level_data
from .loss_grid import train_runs
from .options import FINETUNE_CONFIG, GRID, PRETRAIN, Grid, StartingPoint
from .stats import format_mean_std, format_values, paired_gains, summarize


@dataclass(frozen=True)
class Variant:
    """A mask loss as it is trained: MODEL.ROI_MASK_HEAD.LOSS, its KEY VALUE options, how many
    times the grid's iterations it trains, and the variant it is compared with (same length)."""

    name: str
    loss: str
    options: Tuple[str, ...] = ()
    schedule_factor: int = 1
    reference: str = "bce"
    setting: str = ""  # in words, for the table

    def schedule(self, grid: Schedule) -> Schedule:
        return Schedule(grid.num_train, grid.num_val, grid.max_iter * self.schedule_factor)

    @property
    def folder(self) -> str:  # as the grid names a loss's run folder
        return self.name.replace("+", "_plus_")


VARIANTS: Dict[str, Variant] = {v.name: v for v in (
    Variant("bce", "bce", setting="the grid's reference"),
    Variant("dice", "dice", setting="the grid's Dice"),
    Variant("bce_3x", "bce", schedule_factor=3, setting="BCE, 3x the iterations"),
    Variant("dice_3x", "dice", schedule_factor=3, reference="bce_3x",
            setting="Dice, 3x the iterations"),
    Variant("focal", "focal", setting="the grid's focal: torchvision's alpha 0.25, gamma 2"),
    Variant("focal_alpha_0.5", "focal", ("MODEL.ROI_MASK_HEAD.FOCAL_ALPHA", "0.5"),
            setting="focal, alpha 0.5 (both classes weighted alike), gamma 2"),
    Variant("focal_no_alpha", "focal", ("MODEL.ROI_MASK_HEAD.FOCAL_ALPHA", "-1.0"),
            setting="focal without alpha, gamma 2"),
    Variant("bce+dice", "bce+dice", setting="the grid's sum, weights 1 and 1"),
    Variant("bce+dice_5_5", "bce+dice", ("MODEL.ROI_MASK_HEAD.LOSS_WEIGHTS", "[5.0, 5.0]"),
            setting="Mask2Former's weights, 5 and 5"),
)}
FILL_SCORE = 0.5  # detections counted in the fill: those detectron2's demo would draw


def with_references(names: Sequence[str]) -> List[str]:
    """`names` with each one's reference variant added before it, once each, in order."""
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}: choose from {list(VARIANTS)}")
    ordered: List[str] = []
    for name in names:
        for needed in (VARIANTS[name].reference, name):
            if needed not in ordered:
                ordered.append(needed)
    return ordered


def plan_variant_runs(output_dir: Path, names: Sequence[str], levels: Sequence[str],
                      seeds: Sequence[int], schedule: Schedule) -> List[Dict]:
    """One run per (seed, level, variant, its reference), in the grid's layout."""
    output_dir = Path(output_dir)
    splits = builtin_splits(output_dir, schedule)
    runs = []
    for seed in seeds:
        for level in levels:
            data = level_data(output_dir, splits, level, seed)
            for name in with_references(names):
                variant = VARIANTS[name]
                run_dir = output_dir / "runs" / level / f"seed{seed}" / variant.folder
                runs.append(dict(loss=variant.loss, variant=name, level=level, seed=seed,
                                 run_dir=str(run_dir), data=data, options=list(variant.options),
                                 schedule=variant.schedule(schedule)))
    return runs


def mask_box_fill(detections_json: Path, min_score: float = FILL_SCORE) -> Optional[float]:
    """Mean over the detections of a COCO results file scoring at least `min_score` of
    mask area / box area; None without such detections."""
    fills = [area(to_rle(d["segmentation"], *d["segmentation"]["size"]))
             / (d["bbox"][2] * d["bbox"][3])
             for d in json.loads(Path(detections_json).read_text())
             if d["score"] >= min_score and d["bbox"][2] * d["bbox"][3] > 0]
    return mean(fills) if fills else None


def annotation_box_fill(coco_json: Path) -> float:
    """Mean over the annotations of a COCO file of mask area / box area."""
    coco = read_coco(coco_json)
    images = {image["id"]: image for image in coco["images"]}
    fills = [area(annotation_rle(ann, images[ann["image_id"]], str(coco_json)))
             / (ann["bbox"][2] * ann["bbox"][3])
             for ann in coco["annotations"] if ann["bbox"][2] * ann["bbox"][3] > 0]
    return mean(fills)


def variants_table(records: Sequence[Dict], names: Sequence[str], levels: Sequence[str],
                   ground_truth_fill: float) -> List[str]:
    """Markdown rows: per level and variant its APs over seeds, its paired gains over its
    reference and its masks' fill of their boxes (percent)."""
    by_variant = [dict(r, loss=r["variant"]) for r in records]
    summary = summarize(by_variant)
    lines = [
        "| level | variant | setting | iterations | box AP | mask AP | boundary AP "
        "| mask AP vs reference | boundary AP vs reference | mask fills its box | seeds |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in levels:
        for name in with_references(names):
            variant, cell = VARIANTS[name], summary.get(level, {}).get(name)
            if not cell:
                continue
            runs = [r for r in records if r["level"] == level and r["variant"] == name]
            aps = {k: format_mean_std(cell.get(k)) for k in ("bbox/AP", "segm/AP", "boundary/AP")}
            gains = {k: paired_gains(by_variant, level, name, k, variant.reference)
                     for k in ("segm/AP", "boundary/AP")}
            versus = {k: (f"{format_values(g, '+')} vs {variant.reference}"
                          if g and name != variant.reference else "") for k, g in gains.items()}
            fills = [r["mask_box_fill"] for r in runs if r["mask_box_fill"] is not None]
            fill = f"{100 * mean(fills):.0f} %" if fills else "n/a"
            lines.append(
                f"| {level} | {name} | {variant.setting} | {runs[0]['max_iter']} "
                f"| {aps['bbox/AP']} | {aps['segm/AP']} | {aps['boundary/AP']} "
                f"| {versus['segm/AP']} | {versus['boundary/AP']} | {fill} | {len(runs)} |")
    lines += ["", f"Ground truth: the validation masks fill {100 * ground_truth_fill:.0f} % of "
              "their boxes. A gain is mean ± standard deviation over seeds of the per-seed "
              "difference with the reference variant (same iterations)."]
    return lines


def run_variants(output_dir: Path, names: Sequence[str], levels: Sequence[str],
                 seeds: Sequence[int], launch: Launch, schedule: Schedule = GRID,
                 start: Optional[StartingPoint] = None, command: str = "") -> str:
    """Train the variants (and their references) not trained yet in the grid folder
    `output_dir`, where `launch` says, and write loss_variants.md / .json there; returns the
    table's text."""
    output_dir = Path(output_dir)
    start = start or StartingPoint(pretrain=PRETRAIN)
    runs = plan_variant_runs(output_dir, names, levels, seeds, schedule)
    max_iters = [run["schedule"].max_iter for run in runs]
    grid = Grid(output_dir, builtin_splits(output_dir, schedule), names, levels, seeds, schedule,
                start, FINETUNE_CONFIG, launch=launch)
    records = train_runs(grid, runs)
    for record, max_iter in zip(records, max_iters):
        detections = find_run_file(record["run_dir"], DETECTIONS_FILE, "detections")
        record.update(max_iter=max_iter, mask_box_fill=mask_box_fill(detections))
    lines = [f"Command: `{command}`  ", f"Every run {start.describe()}; {schedule.num_train} "
             f"training images, evaluation on {schedule.num_val} clean validation images.", "",
             *variants_table(records, names, levels, annotation_box_fill(Path(grid.splits.val_json)))]
    text = "\n".join(lines) + "\n"
    write_text_atomic(output_dir / "loss_variants.md", text)
    write_json_atomic(output_dir / "loss_variants.json", {"records": records, "command": command})
    return text


def evaluate_at_thresholds(run_dir: Path, thresholds: Sequence[float],
                           slot: Optional[Slot] = None) -> List[Dict]:
    """Evaluate a finished run's model_final.pth again with its config.yaml at each mask
    threshold (MODEL.ROI_MASK_HEAD.MASK_THRESHOLD), into run_dir/mask_threshold_<t>/ (kept:
    evaluated once); one dict per threshold: threshold, results, mask_box_fill."""
    run_dir = Path(run_dir)
    rows = []
    for threshold in thresholds:
        out = run_dir / f"mask_threshold_{threshold:g}"
        if not (out / EVAL_RESULTS_FILE).exists():
            run_train_net(out, ["MODEL.WEIGHTS", str(run_dir / "model_final.pth"),
                                "MODEL.ROI_MASK_HEAD.MASK_THRESHOLD", str(float(threshold))],
                          f"{run_dir} at mask threshold {threshold:g}", run_dir / "config.yaml",
                          slot, eval_only=True)
        detections = find_run_file(out, DETECTIONS_FILE, "detections")
        rows.append(dict(threshold=threshold,
                         results=json.loads((out / EVAL_RESULTS_FILE).read_text()),
                         mask_box_fill=mask_box_fill(detections)))
    return rows


def thresholds_table(rows_by_run: Dict[str, List[Dict]]) -> List[str]:
    """Markdown rows: per run and mask threshold, box, mask and boundary AP and the fill."""
    lines = ["| run | mask threshold | box AP | mask AP | boundary AP | mask fills its box |",
             "|---|---:|---:|---:|---:|---:|"]
    for run, rows in rows_by_run.items():
        for row in rows:
            aps = [format_values([row["results"].get(task, {}).get("AP")])
                   for task in ("bbox", "segm", "boundary")]
            fill = row["mask_box_fill"]
            lines.append(f"| {run} | {row['threshold']:g} | {' | '.join(aps)} | "
                         f"{'n/a' if fill is None else f'{100 * fill:.0f} %'} |")
    return lines
