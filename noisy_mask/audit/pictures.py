"""Pictures of the suspects: each annotation on a crop of its image, its outline solid vermillion
and its best match's dashed blue (so that colour never carries the distinction alone); a possibly
missing instance dashed blue among the annotations' outlines. `draw_suspects_grid` draws the most
suspicious annotations as one PNG with the project's layout (`viz.layout`); the page's thumbnails
are the same crops, smaller (`audit.html`)."""

import os
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from matplotlib.lines import Line2D

from ..coco.io import read_image
from ..coco.rle import Rle, decode_window, masks_box
from ..viz.drawing import display_size, draw_outline, fade, resize_image, resize_mask
from ..viz.layout import Cell, render_grid
from ..viz.style import OKABE_ITO, default_style, save_figure
from .scores import Audit, AnnotationScore

ANNOTATION_COLOUR, PREDICTION_COLOUR = OKABE_ITO[1], OKABE_ITO[0]  # vermillion, blue
THICKNESS, DASH = 2, 4  # px at the displayed size
CROP_MARGIN = 0.3  # of the longer side of the box around the masks, on each side
MIN_MARGIN = 6  # px of the image
CROP_FADE = 0.3  # the crop is blended this far towards white so that the outlines stand out
GRID_CELL, GRID_COLUMNS = 200, 4
PICTURE_FILE = "audit_suspects.png"


class Crop(NamedTuple):
    """What to draw on one crop: the annotation's mask (solid), the prediction's (dashed), and
    the image's other annotations (solid, thin) around a possibly missing instance."""

    image_id: int
    annotation: Optional[Rle]
    prediction: Optional[Rle]
    context: Sequence[Rle] = ()


def crop_box(rles: Sequence[Optional[Rle]], height: int, width: int) -> Tuple[int, int, int, int]:
    """(top, left, bottom, right), exclusive, of the box around the masks plus a margin of
    CROP_MARGIN x its longer side (at least MIN_MARGIN px), inside the image; the whole image
    when every mask is empty."""
    box = masks_box(rles)
    if box is None:
        return 0, 0, height, width
    x0, y0, x1, y1 = box
    margin = max(MIN_MARGIN, CROP_MARGIN * max(x1 - x0, y1 - y0))
    top, left = max(0, int(y0 - margin)), max(0, int(x0 - margin))
    bottom, right = min(height, int(np.ceil(y1 + margin))), min(width, int(np.ceil(x1 + margin)))
    return top, left, max(bottom, top + 1), max(right, left + 1)


def draw_crop(image: np.ndarray, crop: Crop, cell: int) -> np.ndarray:
    """(h, w, 3) uint8 RGB, the longer side `cell` px: the crop of an image around the masks of
    `crop`, faded (CROP_FADE), with their outlines. Only the crop's pixels are faded and
    decoded, so that a crop of a large image costs the crop's size."""
    height, width = image.shape[:2]
    top, left, bottom, right = crop_box([crop.annotation, crop.prediction], height, width)
    size = display_size(bottom - top, right - left, cell)
    canvas = resize_image(fade(image[top:bottom, left:right], CROP_FADE), size)

    def mask(rle: Rle) -> np.ndarray:
        return resize_mask(decode_window(rle, top, left, bottom, right), size)

    for rle in crop.context:
        canvas = draw_outline(canvas, mask(rle), ANNOTATION_COLOUR, 1)
    if crop.annotation is not None:
        canvas = draw_outline(canvas, mask(crop.annotation), ANNOTATION_COLOUR, THICKNESS)
    if crop.prediction is not None:
        canvas = draw_outline(canvas, mask(crop.prediction), PREDICTION_COLOUR, THICKNESS, DASH)
    return canvas


def draw_crops(
    gt: Mapping[str, Any], image_dir: os.PathLike, crops: Sequence[Crop], cell: int
) -> Iterator[Tuple[int, np.ndarray]]:
    """(index in `crops`, picture) of every crop, grouped by image: each image is read once."""
    images = {image["id"]: image for image in gt["images"]}
    order = sorted(range(len(crops)), key=lambda k: (crops[k].image_id, k))
    image, current = None, None
    for k in order:
        if crops[k].image_id != current:
            current = crops[k].image_id
            image = read_image(image_dir, images[current])
        yield k, draw_crop(image, crops[k], cell)


def annotation_crop(score: AnnotationScore) -> Crop:
    return Crop(score.image_id, score.ann_rle, score.pred_rle)


def missing_crops(audit: Audit) -> List[Crop]:
    """A crop per possibly missing instance, with the annotations of its image as context."""
    by_image: Dict[int, List[Rle]] = {}
    for score in audit.annotations:
        if score.ann_rle is not None:
            by_image.setdefault(score.image_id, []).append(score.ann_rle)
    return [Crop(m.image_id, None, m.rle, by_image.get(m.image_id, [])) for m in audit.missing]


def score_lines(score: AnnotationScore, names: Mapping[int, str]) -> List[str]:
    """The lines under an annotation's picture: image, classes, IoUs, suspicion."""
    category = names.get(score.category_id, str(score.category_id))
    if score.pred_category_id is None:
        match = "no prediction overlaps"
    else:
        predicted = names.get(score.pred_category_id, str(score.pred_category_id))
        match = f"match: {predicted} {score.pred_score:.2f}"
    lines = [f"image {score.image_id}: {category}", match]
    if score.pred_category_id is not None:
        lines.append(f"mask IoU {score.mask_iou:.2f}, boundary {score.boundary_iou:.2f}")
    if score.class_agrees is False:
        other = names.get(score.other_category_id, str(score.other_category_id))
        lines.append(f"model: {other} {score.other_class_score:.2f} > {score.same_class_score:.2f}")
    lines.append(f"suspicion {score.suspicion:.2f}")
    return lines


def draw_suspects_grid(
    audit: Audit,
    gt: Mapping[str, Any],
    image_dir: os.PathLike,
    output_path: os.PathLike,
    num: int = 12,
    columns: int = GRID_COLUMNS,
    title: str = "Most suspicious annotations",
) -> Optional[Path]:
    """The `num` most suspicious annotations as a grid of `columns` (PNG, atomically); None when
    there is no annotation."""
    top = audit.annotations[:num]
    if not top:
        return None
    names = {c["id"]: str(c["name"]) for c in gt["categories"]}
    pictures = dict(draw_crops(gt, image_dir, [annotation_crop(s) for s in top], GRID_CELL))
    cells = [
        Cell(pictures[k], f"#{s.rank}: annotation {s.id}", score_lines(s, names))
        for k, s in enumerate(top)
    ]
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    legend = [
        Line2D([], [], color=ANNOTATION_COLOUR, linewidth=2.5, label="annotation outline"),
        Line2D([], [], color=PREDICTION_COLOUR, linewidth=2.5, linestyle="--",
               label="best-matching prediction"),
    ]  # fmt: skip
    note = (
        "Ranked by suspicion = 1 - mask IoU x (1 - class doubt), 1 without a match; class doubt = "
        "how much more confident the model is in another class than in the annotated one."
    )
    with default_style():
        return save_figure(render_grid(rows, GRID_CELL, title, legend, note), output_path)
