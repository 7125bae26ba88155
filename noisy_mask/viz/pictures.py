"""Pictures of the masks: what the noise did to the annotations, and what each run predicts.

`draw_noise_grid` draws sample images with the clean outline (blue) and the noisy outline
(vermillion) of each instance, numbers the instances and lists under each image the mask IoU of
clean vs noisy, with deleted instances (hatched, with a dashed clean outline) and class flips
marked. Half of the grid (at most) goes to images with a deleted or flipped instance, so that these
show up; the rest is drawn at random among the other images, from the seed.

`draw_predictions_grid` draws validation images in rows and runs in columns: the predicted masks
with a score at or above the threshold, filled with the colour of their class, over the image with
the ground-truth outline in black, and the run's mask AP (eval_results.json) in the column title.
The detections are read from the COCO results json written by train_net.py's evaluation
(coco_instances_results.json in the run folder, in inference/ or in inference/<dataset>/); no
model is run. Unless image ids are given, the images are those where the runs differ most: the
largest spread (max - min over runs) of the per-image mean best-match mask IoU

    m(image, run) = mean over ground-truth instances g of  max over detections d of the same
                    category (score >= threshold) of  |d & g| / |d | g|   (0 without detection),

ties (one run: every spread is 0) going to the lower mean of m over runs, then the lower id.

Both pictures are PNG files written atomically; the same inputs give the same bytes. Colours are
Okabe & Ito's colour-blind safe palette. Masks are drawn with numpy at the displayed size, text
with matplotlib (Agg). `python -m noisy_mask.visualize` is the command.
"""

import math
import os
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..coco.io import CocoArg, annotation_rle, coco_name, read_coco, read_image
from ..coco.rle import Rle, decode_window, window_around
from ..evaluation.detections import (
    Detection,
    choose_by_spread,
    find_results_file,
    ground_truth_rles,
    image_ious,
    read_detections,
    read_mask_ap,
)
from ..noise.matching import (
    DELETED,
    FLIPPED,
    UNUSED_KEYS,
    InstanceNoise,
    choose_noise_images,
    match_noise_dicts,
)
from ..utils.run_folders import default_labels
from ..utils.text import plural
from .drawing import (
    FADE,
    display_size,
    draw_outline,
    fade,
    fill_mask,
    grey,
    hatch,
    label_point,
    nearest_indices,
    resize_image,
    to_rgb,
)
from .layout import Cell, render_grid
from .style import OKABE_ITO, default_style, save_figure

CLEAN_COLOUR, NOISY_COLOUR = OKABE_ITO[0], OKABE_ITO[1]  # blue, vermillion
GT_COLOUR = "#000000"
# Prediction fills by category; black is the ground truth's, so it is left out.
CATEGORY_COLOURS = tuple(c for c in OKABE_ITO if c != GT_COLOUR)

# Drawing, in pixels of the saved PNG.
NOISE_CELL, PREDICTION_CELL = 360, 288  # longer image side as displayed
CLEAN_THICKNESS, NOISY_THICKNESS = 3, 2  # the noisy outline is drawn over the clean one
GT_THICKNESS, PREDICTION_THICKNESS = 2, 1
DASH = 5  # dash length of a deleted instance's outline
FILL_ALPHA = 0.55
MAX_LINES = 8  # instance lines under a noise image; the rest are summed up in the last one
# Keys of the ground truth the predictions picture does not read (it compares masks).
GT_UNUSED_KEYS = ("area", "bbox")


def mask_at_size(rle: Optional[Rle], height: int, width: int, size: Tuple[int, int]) -> np.ndarray:
    """The mask of `rle` (None: empty) of a height x width image at the displayed `size`,
    nearest pixel: `drawing.resize_mask` of the decoded mask, made from the mask's box alone, so
    that a picture of a large image costs its objects' size."""
    out = np.zeros(size, dtype=bool)
    window = None if rle is None else window_around([rle], 0)
    if window is None:
        return out
    top, left, bottom, right = window
    rows, cols = nearest_indices(size[0], height), nearest_indices(size[1], width)
    row_in, col_in = (rows >= top) & (rows < bottom), (cols >= left) & (cols < right)
    box = decode_window(rle, top, left, bottom, right)
    out[np.ix_(row_in, col_in)] = box[np.ix_(rows[row_in] - top, cols[col_in] - left)]
    return out


# ---------------------------------------------------------------------------------------------
# The noise picture.


def noise_cell(
    image: np.ndarray,
    image_entry: Mapping[str, Any],
    instances: Sequence[Tuple[InstanceNoise, Optional[dict], Optional[dict]]],
    category_names: Mapping[int, str],
    cell: int = NOISE_CELL,
) -> Cell:
    """One image with, per instance (match, clean RLE, noisy RLE), its clean outline (dashed, and
    the mask hatched, when deleted), its noisy outline over it, a number tag and a line of text."""
    size = display_size(image_entry["height"], image_entry["width"], cell)
    canvas = fade(resize_image(image, size))
    height, width = image_entry["height"], image_entry["width"]
    clean_masks = [mask_at_size(c, height, width, size) for _, c, _ in instances]
    noisy_masks = [mask_at_size(n, height, width, size) for _, _, n in instances]
    for (match, _, _), mask in zip(instances, clean_masks):
        dash = DASH if match.status == DELETED else 0
        canvas = draw_outline(canvas, mask, CLEAN_COLOUR, CLEAN_THICKNESS, dash)
        if match.status == DELETED:
            canvas[hatch(mask)] = to_rgb(CLEAN_COLOUR)
    for mask in noisy_masks:
        canvas = draw_outline(canvas, mask, NOISY_COLOUR, NOISY_THICKNESS)

    tags, lines = [], []
    for number, ((match, _, _), mask) in enumerate(zip(instances, clean_masks), start=1):
        point = label_point(mask)
        if point is not None:
            tags.append((point[0], point[1], str(number)))
        lines.append(f"{number}. {instance_text(match, category_names)}")
    if len(lines) > MAX_LINES:
        rest = [m for m, _, _ in instances[MAX_LINES - 1 :]]
        counts = ", ".join(f"{sum(m.status == s for m in rest)} {s}" for s in (DELETED, FLIPPED))
        lines = lines[: MAX_LINES - 1] + [f"\u2026 {len(rest)} more ({counts})"]
    ious = [m.iou for m, _, _ in instances if m.iou is not None and not math.isnan(m.iou)]
    mean = f", mean IoU {np.mean(ious):.2f}" if ious else ""
    heading = f"image {image_entry['id']} ({image_entry['file_name']}){mean}"
    return Cell(canvas, heading, lines, tags)


def instance_text(match: InstanceNoise, category_names: Mapping[int, str]) -> str:
    """'circle  IoU 0.82', 'star  deleted' or 'flip: star\u2192circle  IoU 0.77'."""
    old = category_names.get(match.category_id, str(match.category_id))
    if match.status == DELETED:
        return f"{old}  deleted"
    iou = "IoU n/a" if match.iou is None or math.isnan(match.iou) else f"IoU {match.iou:.2f}"
    if match.status == FLIPPED:
        new = category_names.get(match.new_category_id, str(match.new_category_id))
        return f"flip: {old}\u2192{new}  {iou}"
    return f"{old}  {iou}"


def draw_noise_grid(
    clean: CocoArg,
    noisy: CocoArg,
    image_dir: Union[str, os.PathLike],
    output_path: Union[str, os.PathLike],
    num: int = 6,
    seed: int = 0,
    image_ids: Optional[Sequence[int]] = None,
    columns: int = 3,
    cell: int = NOISE_CELL,
) -> Path:
    """Draw the clean and noisy outlines of `num` images (chosen by `choose_noise_images` with
    `seed`, or `image_ids`) as a grid of `columns` to the PNG `output_path`; return the path."""
    if num < 1 or columns < 1:
        raise ValueError(f"num and columns must be >= 1, got {num} and {columns}")
    clean_name = coco_name(clean, "clean annotations")
    noisy_name = coco_name(noisy, "noisy annotations")
    clean = read_coco(clean, clean_name, UNUSED_KEYS)
    noisy = read_coco(noisy, noisy_name, UNUSED_KEYS)
    images = {image["id"]: image for image in clean["images"]}
    if image_ids is not None:
        unknown = [i for i in image_ids if i not in images]
        if unknown:
            raise ValueError(f"{clean_name}: no image with id {unknown[0]}")
    matches = match_noise_dicts(clean, noisy, clean_name, noisy_name, image_ids)
    if image_ids is None:
        image_ids = choose_noise_images(matches, num, seed)
    if not image_ids:
        raise ValueError(f"{clean_name}: no image has an annotation to draw")

    category_names = {c["id"]: str(c["name"]) for c in clean["categories"]}
    clean_by_id = {ann["id"]: ann for ann in clean["annotations"]}
    noisy_by_id = {ann["id"]: ann for ann in noisy["annotations"]}
    cells = []
    for image_id in image_ids:
        image = images[image_id]
        instances = []
        for match in (m for m in matches if m.image_id == image_id):
            clean_rle = annotation_rle(clean_by_id[match.ann_id], image, clean_name)
            new = noisy_by_id.get(match.ann_id)
            noisy_rle = annotation_rle(new, image, noisy_name) if new is not None else None
            instances.append((match, clean_rle, noisy_rle))
        cells.append(
            noise_cell(read_image(image_dir, image), image, instances, category_names, cell)
        )
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]

    shown = [m for m in matches if m.image_id in set(image_ids)]
    ious = [m.iou for m in shown if m.iou is not None and not math.isnan(m.iou)]
    deleted = sum(m.status == DELETED for m in shown)
    flipped = sum(m.status == FLIPPED for m in shown)
    mean = f"mean IoU {np.mean(ious):.2f}, " if ious else ""
    legend = [
        Line2D([], [], color=CLEAN_COLOUR, linewidth=3, label="clean mask outline"),
        Line2D([], [], color=NOISY_COLOUR, linewidth=2.5, label="noisy mask outline"),
        Patch(
            facecolor="none",
            edgecolor=CLEAN_COLOUR,
            hatch="///",
            linestyle=(0, (3, 2)),
            linewidth=2,
            label="deleted instance (clean mask)",
        ),
    ]
    note = (
        f"{plural(len(shown), 'instance')} shown: {mean}{deleted} deleted, "
        f"{plural(flipped, 'class flip')}. "
        "IoU = clean vs noisy mask; numbers in the image index the lines below it."
    )
    title = f"Mask noise: {Path(noisy_name).name} against {Path(clean_name).name}"
    with default_style():
        return save_figure(render_grid(rows, cell, title, legend, note), output_path)


# ---------------------------------------------------------------------------------------------
# The predictions picture.


def prediction_canvas(
    image: np.ndarray,
    gt_masks: Sequence[np.ndarray],
    detections: Sequence[Tuple[int, np.ndarray]],
    category_colours: Mapping[int, str],
    in_grey: bool = True,
) -> np.ndarray:
    """The image faded, `in_grey` levels (so that a fill reads as the colour of its class), the
    detections (category id, mask at display size) filled in their class's colour with their own
    outline, and the ground-truth outlines on top."""
    canvas = fade(grey(image)) if in_grey else fade(image, FADE / 2)
    for category_id, mask in detections:
        colour = category_colours[category_id]
        canvas = fill_mask(canvas, mask, colour, FILL_ALPHA)
        canvas = draw_outline(canvas, mask, colour, PREDICTION_THICKNESS)
    for mask in gt_masks:
        canvas = draw_outline(canvas, mask, GT_COLOUR, GT_THICKNESS)
    return canvas


def predictions_row(
    image: np.ndarray,
    image_entry: Mapping[str, Any],
    gts: Sequence[Tuple[int, dict]],
    runs: Sequence[Sequence[Detection]],
    ious: Sequence[float],
    colours: Mapping[int, str],
    cell: int = PREDICTION_CELL,
) -> List[Cell]:
    """Cells of one image: the image with its ground-truth outlines, then one per run with the
    run's detections (`runs`, this image's) and its mean best-match IoU (`ious`)."""
    height, width = image_entry["height"], image_entry["width"]
    size = display_size(height, width, cell)
    pixels = resize_image(image, size)
    gt_masks = [mask_at_size(rle, height, width, size) for _, rle in gts]
    line = plural(len(gts), "ground-truth mask")
    if gts and len(ious) > 1:
        line += f", IoU spread {np.nanmax(ious) - np.nanmin(ious):.2f}"
    heading = f"image {image_entry['id']} ({image_entry['file_name']})"
    row = [Cell(prediction_canvas(pixels, gt_masks, [], colours, in_grey=False), heading, [line])]
    for detections, value in zip(runs, ious):
        masks = [(d.category_id, mask_at_size(d.rle, height, width, size)) for d in detections]
        iou = "n/a" if math.isnan(value) else f"{value:.2f}"
        line = f"mean best IoU {iou}, {plural(len(detections), 'mask')}"
        row.append(Cell(prediction_canvas(pixels, gt_masks, masks, colours), "", [line]))
    return row


def draw_predictions_grid(
    run_dirs: Sequence[Union[str, os.PathLike]],
    image_dir: Union[str, os.PathLike],
    annotations: CocoArg,
    output_path: Union[str, os.PathLike],
    labels: Optional[Sequence[str]] = None,
    num: int = 4,
    image_ids: Optional[Sequence[int]] = None,
    score_threshold: float = 0.5,
    dataset: Optional[str] = None,
    cell: int = PREDICTION_CELL,
) -> Path:
    """Draw each run's detections (score >= `score_threshold`) on `num` images chosen by
    `choose_by_spread` of `image_ious` (or on `image_ids`): one row per image, a first column
    with the ground truth alone, then one column per run. Write the PNG `output_path`."""
    if not run_dirs:
        raise ValueError("no run folder given")
    if labels is not None and len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} run folders")
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    labels = list(labels) if labels is not None else default_labels(run_dirs)
    result_files = [find_results_file(d, dataset) for d in run_dirs]  # all checked before reading
    gt_name = coco_name(annotations, "ground truth")
    gt = read_coco(annotations, gt_name, GT_UNUSED_KEYS)
    images = {image["id"]: image for image in gt["images"]}
    unknown = [i for i in image_ids or () if i not in images]
    if unknown:
        raise ValueError(f"{gt_name}: no image with id {unknown[0]}")
    runs = [read_detections(f, gt, score_threshold) for f in result_files]
    # eval_results.json holds one table per dataset when a run was tested on several
    aps = [read_mask_ap(d, dataset or f.parent.name) for d, f in zip(run_dirs, result_files)]
    gt_rles = ground_truth_rles(gt, gt_name)
    ious = image_ious(gt_rles, runs)
    if image_ids is None:
        image_ids = choose_by_spread(ious, num)
        if not image_ids:
            raise ValueError(f"{gt_name}: no image has a ground-truth mask to compare with")
        measure = "per-image mean best-match mask IoU (same class) with the ground truth"
        if len(runs) > 1:
            note = (
                f"Images where the runs differ most: largest spread across runs of the {measure}."
            )
        else:
            note = f"Images with the lowest {measure}."
    else:
        note = "Images chosen by id."

    category_ids = sorted(c["id"] for c in gt["categories"])
    colours = {c: CATEGORY_COLOURS[k % len(CATEGORY_COLOURS)] for k, c in enumerate(category_ids)}
    rows = [
        predictions_row(
            read_image(image_dir, images[i]),
            images[i],
            gt_rles.get(i, []),
            [run.get(i, []) for run in runs],
            ious.get(i, [math.nan] * len(runs)),
            colours,
            cell,
        )
        for i in image_ids
    ]
    shown = {d.category_id for run in runs for i in image_ids for d in run.get(i, [])}
    names = {c["id"]: str(c["name"]) for c in gt["categories"]}
    legend = [Line2D([], [], color=GT_COLOUR, linewidth=2, label="ground-truth outline")] + [
        Patch(facecolor=colours[c], edgecolor=colours[c], alpha=0.75, label=names[c])
        for c in category_ids
        if c in shown
    ]
    column_titles = ["image + ground truth"] + [
        f"{label}: mask AP {'n/a' if ap is None else f'{ap:.1f}'}" for label, ap in zip(labels, aps)
    ]
    title = f"Predicted masks (score \u2265 {score_threshold:.2f}), filled by predicted class"
    with default_style():
        fig = render_grid(rows, cell, title, legend, note, column_titles)
        return save_figure(fig, output_path)
