"""Pictures of the masks: what the noise did to the annotations, and what each run predicts.

    python -m noisy_mask.visualize noise --clean CLEAN.json --noisy NOISY.json --images DIR
        --output OUT.png [--num 6] [--seed 0] [--image-ids ID ...] [--columns 3]
    python -m noisy_mask.visualize predictions RUN_DIR [RUN_DIR ...] --images DIR
        --annotations GT.json --output OUT.png [--labels NAME ...] [--num 4] [--image-ids ID ...]
        [--score-threshold 0.5] [--dataset D]

`noise` draws sample images with the clean outline (blue) and the noisy outline (vermillion) of
each instance, numbers the instances and lists under each image the mask IoU of clean vs noisy,
with deleted instances (hatched, with a dashed clean outline) and class flips marked. Half of the
grid (at most) goes to images with a deleted or flipped instance, so that these show up; the rest
is drawn at random among the other images, from the seed.

`predictions` draws validation images in rows and runs in columns: the predicted masks with a
score at or above the threshold, filled with the colour of their class, over the image with the
ground-truth outline in black, and the run's mask AP (eval_results.json) in the column title. The
detections are read from the COCO results json written by train_net.py's evaluation
(coco_instances_results.json in the run folder, in inference/ or in inference/<dataset>/); no
model is run. Unless --image-ids is given, the images are those where the runs differ most: the
largest spread (max - min over runs) of the per-image mean best-match mask IoU

    m(image, run) = mean over ground-truth instances g of  max over detections d of the same
                    category (score >= threshold) of  |d & g| / |d | g|   (0 without detection),

ties (one run: every spread is 0) going to the lower mean of m over runs, then the lower id.

Both pictures are PNG files written atomically; the same inputs give the same bytes. Colours are
Okabe & Ito's colour-blind safe palette. Masks are drawn with numpy at the displayed size, text
with matplotlib (Agg).
"""

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from matplotlib import style as mpl_style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import IdentityTransform
from pycocotools import mask as mask_utils

from .evaluation import RESULTS_FILE
from .noise import AnnotationError, load_coco
from .plot import DPI, OKABE_ITO, default_labels, save_figure
from .validate import FATAL, check_segmentation

EVAL_RESULTS_FILE = "eval_results.json"  # train_net.py's final metrics
EXIT_ERROR = 1

Colour = Tuple[int, int, int]
CocoArg = Union[str, os.PathLike, Mapping[str, Any]]


CLEAN_COLOUR, NOISY_COLOUR = OKABE_ITO[0], OKABE_ITO[1]  # blue, vermillion
GT_COLOUR = "#000000"
# Prediction fills by category; black is the ground truth's, so it is left out.
CATEGORY_COLOURS = tuple(c for c in OKABE_ITO if c != GT_COLOUR)

# Drawing, in pixels of the saved PNG.
NOISE_CELL, PREDICTION_CELL = 360, 288  # longer image side as displayed
CLEAN_THICKNESS, NOISY_THICKNESS = 3, 2  # the noisy outline is drawn over the clean one
GT_THICKNESS, PREDICTION_THICKNESS = 2, 1
DASH = 5  # dash length of a deleted instance's outline
HATCH_PERIOD, HATCH_WIDTH = 6, 2  # diagonal lines across a deleted instance
FADE = 0.45  # the image is blended this far towards white so that the outlines stand out
FILL_ALPHA = 0.55
MAX_LINES = 8  # instance lines under a noise image; the rest are summed up in the last one

MARGIN, GAP_X, GAP_Y = 16, 16, 18
TITLE_H, NOTE_H, COLUMN_TITLE_H, HEADING_H, LINE_H = 30, 18, 24, 20, 16
LEGEND_SIZE = 10.5
TEXT_STYLES = {  # matplotlib text properties of each kind of text
    "title": {"fontsize": 13, "fontweight": "bold", "ha": "center", "va": "top"},
    "note": {"fontsize": 9.5, "color": "0.25", "ha": "center", "va": "top"},
    "column": {"fontsize": 11, "fontweight": "bold", "ha": "center", "va": "top"},
    "heading": {"fontsize": 10, "ha": "center", "va": "top"},
    "line": {"fontsize": 9.5, "ha": "left", "va": "top"},
    "tag": {
        "fontsize": 8,
        "fontweight": "bold",
        "ha": "center",
        "va": "center",
        "bbox": {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "0.3", "lw": 0.6},
    },
}


# ---------------------------------------------------------------------------------------------
# Pixels: pure numpy functions of image arrays ((H, W, 3) uint8 RGB) and masks ((H, W) bool).


def hex_to_rgb(colour: str) -> Colour:
    """'#D55E00' -> (213, 94, 0)."""
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def erode(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    """Binary erosion by a (2r + 1) x (2r + 1) square, outside the image counting as background:
    e(y, x) = AND over |dy|, |dx| <= r of mask(y + dy, x + dx)."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    height, width = mask.shape
    padded = np.pad(mask, radius, constant_values=False)
    out = np.ones_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out &= padded[dy : dy + height, dx : dx + width]
    return out


def outline(mask: np.ndarray, thickness: int = 1, dash: int = 0) -> np.ndarray:
    """The inner outline of `mask`, t = `thickness` pixels wide: the mask minus its erosion by a
    (2t + 1) x (2t + 1) square, i.e. the mask pixels within Chebyshev distance t of a background
    pixel (or of the image border).

    dash > 0 keeps only the pixels with (y // dash + x // dash) even: a checkerboard of dash x dash
    blocks, which cuts a line of any direction into dashes.
    """
    mask = np.asarray(mask, dtype=bool)
    line = mask & ~erode(mask, thickness)
    if dash > 0:
        ys, xs = np.indices(mask.shape)
        line &= (ys // dash + xs // dash) % 2 == 0
    return line


def hatch(mask: np.ndarray, period: int = HATCH_PERIOD, width: int = HATCH_WIDTH) -> np.ndarray:
    """Diagonal lines across the mask: the mask pixels with (x + y) mod period < width."""
    mask = np.asarray(mask, dtype=bool)
    ys, xs = np.indices(mask.shape)
    return mask & ((xs + ys) % period < width)


def draw_outline(
    image: np.ndarray, mask: np.ndarray, colour, thickness: int = 1, dash: int = 0
) -> np.ndarray:
    """A copy of `image` with `outline(mask, thickness, dash)` painted in `colour` (RGB or hex)."""
    out = np.array(image, dtype=np.uint8, copy=True)
    out[outline(mask, thickness, dash)] = _rgb(colour)
    return out


def fill_mask(image: np.ndarray, mask: np.ndarray, colour, alpha: float) -> np.ndarray:
    """A copy of `image` blended with `colour` on the mask: round((1 - alpha) p + alpha c)."""
    out = np.array(image, dtype=np.uint8, copy=True)
    mask = np.asarray(mask, dtype=bool)
    blend = (1.0 - alpha) * out[mask].astype(np.float64) + alpha * np.array(_rgb(colour), float)
    out[mask] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return out


def fade(image: np.ndarray, amount: float = FADE) -> np.ndarray:
    """The image blended towards white: round((1 - amount) p + amount 255)."""
    return fill_mask(image, np.ones(image.shape[:2], dtype=bool), (255, 255, 255), amount)


def grey(image: np.ndarray) -> np.ndarray:
    """The image in grey levels, as RGB: round(0.299 R + 0.587 G + 0.114 B) in each channel."""
    luma = np.asarray(image, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def label_point(mask: np.ndarray) -> Optional[Tuple[int, int]]:
    """(x, y) of the mask pixel farthest (L2 distance transform) from the background and the image
    border, the first in row order on ties; None for an empty mask. Unlike the centroid, it lies
    inside the mask whatever its shape."""
    mask = np.asarray(mask, dtype=np.uint8)
    if not mask.any():
        return None
    padded = np.pad(mask, 1)  # the image border counts as background
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y)


def display_size(height: int, width: int, cell: int) -> Tuple[int, int]:
    """(height, width) scaled so that the longer side is `cell` pixels."""
    scale = cell / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Image to (height, width): bilinear when enlarging, pixel area when shrinking."""
    height, width = size
    shrink = height < image.shape[0]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resize_mask(mask: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Mask to (height, width), nearest pixel."""
    height, width = size
    small = np.asarray(mask, dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def _rgb(colour) -> Colour:
    return hex_to_rgb(colour) if isinstance(colour, str) else tuple(int(c) for c in colour)


# ---------------------------------------------------------------------------------------------
# Annotations and detections.


def read_coco(coco: CocoArg, name: Optional[str] = None) -> Dict[str, Any]:
    """A COCO instances dict (read from a path, or given) checked for what drawing needs: the
    lists images (id, height, width, file_name), annotations (id, image_id, category_id,
    segmentation) and categories (id, name). Errors name the file, the id and the key."""
    if isinstance(coco, (str, os.PathLike)):
        name = name or os.fspath(coco)
        coco = load_coco(coco)
    name = name or "annotations"
    if not isinstance(coco, Mapping):
        raise AnnotationError(f"{name}: the top level is not a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise AnnotationError(f"{name}: missing list {key!r}")
    required = {
        "images": ("id", "height", "width", "file_name"),
        "annotations": ("id", "image_id", "category_id", "segmentation"),
        "categories": ("id", "name"),
    }
    for section, keys in required.items():
        for k, entry in enumerate(coco[section]):
            for key in keys:
                if not isinstance(entry, dict) or key not in entry:
                    what = section[:-1] if section != "categories" else "category"
                    ident = entry.get("id", f"#{k}") if isinstance(entry, dict) else f"#{k}"
                    raise AnnotationError(f"{name}: {what} {ident} has no {key!r}")
    for image in coco["images"]:
        for key in ("height", "width"):
            value = image[key]
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise AnnotationError(
                    f"{name}: image {image['id']}: {key!r} {value!r} is not a positive integer"
                )
    for section, what in (("images", "image"), ("annotations", "annotation")):
        seen = set()
        for entry in coco[section]:
            if entry["id"] in seen:
                raise AnnotationError(f"{name}: {what} {entry['id']}: 'id' appears twice")
            seen.add(entry["id"])
    image_ids = {image["id"] for image in coco["images"]}
    category_ids = {category["id"] for category in coco["categories"]}
    for ann in coco["annotations"]:
        if ann["image_id"] not in image_ids:
            raise AnnotationError(
                f"{name}: annotation {ann['id']}: 'image_id' {ann['image_id']!r} is unknown"
            )
        if ann["category_id"] not in category_ids:
            raise AnnotationError(
                f"{name}: annotation {ann['id']}: 'category_id' {ann['category_id']!r} is unknown"
            )
    return dict(coco)


def segmentation_rle(segmentation: Any, height: int, width: int, where: str) -> Optional[dict]:
    """pycocotools RLE of a COCO segmentation (polygons, or RLE with string or list counts);
    None when it is empty or degenerate (nothing to draw); ValueError naming `where` when it is
    malformed (pycocotools would crash or misread it)."""
    issues = check_segmentation(segmentation, (height, width))
    fatal = [message for message, severity in issues if severity == FATAL]
    if fatal:
        raise ValueError(f"{where}: {fatal[0]}")
    if issues:
        return None
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return {"size": [height, width], "counts": segmentation["counts"].encode("ascii")}


def decode(rle: Optional[dict], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of an RLE; all False for None."""
    if rle is None:
        return np.zeros((height, width), dtype=bool)
    return mask_utils.decode(rle).astype(bool)


def rle_iou(a: Optional[dict], b: Optional[dict]) -> float:
    """|a & b| / |a | b|, with |a | b| = |a| + |b| - |a & b|; NaN when both are empty."""
    area_a = float(mask_utils.area(a)) if a is not None else 0.0
    area_b = float(mask_utils.area(b)) if b is not None else 0.0
    inter = 0.0
    if a is not None and b is not None:
        inter = float(mask_utils.area(mask_utils.merge([a, b], intersect=True)))
    union = area_a + area_b - inter
    return inter / union if union > 0 else math.nan


def _annotation_rle(ann: Mapping[str, Any], image: Mapping[str, Any], name: str) -> Optional[dict]:
    where = f"{name}: annotation {ann['id']} (image {ann['image_id']}): 'segmentation'"
    return segmentation_rle(ann["segmentation"], image["height"], image["width"], where)


KEPT, DELETED, FLIPPED = "kept", "deleted", "flipped"


class InstanceNoise(NamedTuple):
    """What the noise did to one clean instance. status: KEPT, DELETED or FLIPPED; iou: mask IoU
    of clean vs noisy (None when deleted, NaN when both masks are empty); new_category_id: the
    noisy file's category (None when deleted)."""

    ann_id: int
    iou: Optional[float]
    status: str
    image_id: int
    category_id: int
    new_category_id: Optional[int]


def match_noise(
    clean: CocoArg, noisy: CocoArg, image_ids: Optional[Sequence[int]] = None
) -> List[InstanceNoise]:
    """Pair the instances of the clean and noisy files by annotation id, in clean id order (of the
    images `image_ids`, or all). An annotation absent from the noisy file is DELETED, one with
    another category_id FLIPPED (its IoU measured all the same), any other KEPT. A noisy
    annotation that is not in the clean file, or that moved to another image, is an error."""
    clean_name, noisy_name = _name(clean, "clean annotations"), _name(noisy, "noisy annotations")
    clean, noisy = read_coco(clean, clean_name), read_coco(noisy, noisy_name)
    return _match_noise(clean, noisy, clean_name, noisy_name, image_ids)


def _match_noise(
    clean: Dict[str, Any],
    noisy: Dict[str, Any],
    clean_name: str,
    noisy_name: str,
    image_ids: Optional[Sequence[int]],
) -> List[InstanceNoise]:
    clean_by_id = {ann["id"]: ann for ann in clean["annotations"]}
    noisy_by_id = {}
    for ann in noisy["annotations"]:
        original = clean_by_id.get(ann["id"])
        if original is None:
            raise AnnotationError(f"{noisy_name}: annotation {ann['id']} is not in {clean_name}")
        if original["image_id"] != ann["image_id"]:
            raise AnnotationError(
                f"{noisy_name}: annotation {ann['id']} has 'image_id' {ann['image_id']}, but"
                f" {original['image_id']} in {clean_name}"
            )
        noisy_by_id[ann["id"]] = ann
    images = {image["id"]: image for image in clean["images"]}
    wanted = set(images if image_ids is None else image_ids)
    matches = []
    for ann_id in sorted(clean_by_id):
        ann = clean_by_id[ann_id]
        if ann["image_id"] not in wanted:
            continue
        new = noisy_by_id.get(ann_id)
        if new is None:
            matches.append(
                InstanceNoise(ann_id, None, DELETED, ann["image_id"], ann["category_id"], None)
            )
            continue
        image = images[ann["image_id"]]
        iou = rle_iou(
            _annotation_rle(ann, image, clean_name), _annotation_rle(new, image, noisy_name)
        )
        status = FLIPPED if new["category_id"] != ann["category_id"] else KEPT
        matches.append(
            InstanceNoise(
                ann_id, iou, status, ann["image_id"], ann["category_id"], new["category_id"]
            )
        )
    return matches


def choose_noise_images(matches: Sequence[InstanceNoise], num: int, seed: int = 0) -> List[int]:
    """`num` image ids (sorted) among those with an instance: up to num // 2 drawn from the images
    with a deleted or flipped instance, the rest from all the others, with default_rng(seed)."""
    rng = np.random.default_rng(seed)
    all_ids = sorted({m.image_id for m in matches})
    marked = sorted({m.image_id for m in matches if m.status != KEPT})
    take = min(len(marked), num // 2)
    chosen = [int(i) for i in rng.choice(marked, size=take, replace=False)] if take else []
    rest = [i for i in all_ids if i not in set(chosen)]
    more = min(len(rest), num - take)
    chosen += [int(i) for i in rng.choice(rest, size=more, replace=False)] if more else []
    return sorted(chosen)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _name(coco: CocoArg, default: str) -> str:
    return os.fspath(coco) if isinstance(coco, (str, os.PathLike)) else default


def read_image(image_dir: Union[str, os.PathLike], image: Mapping[str, Any]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a COCO image entry, checked against its height and width."""
    path = Path(image_dir) / image["file_name"]
    if not path.is_file():
        raise FileNotFoundError(f"image {image['id']}: file {path} not found")
    pixels = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f"image {image['id']}: {path} is not a readable image")
    if pixels.shape[:2] != (image["height"], image["width"]):
        raise ValueError(
            f"image {image['id']}: {path} is {pixels.shape[1]}x{pixels.shape[0]}, the annotations"
            f" say {image['width']}x{image['height']}"
        )
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------------------------
# Layout: a grid of cells, each an image with a heading above and lines of text below, under a
# title, a legend and a note. Positions are in pixels of the PNG, from the top left.


@dataclass
class Cell:
    """One image of a grid. tags: (x, y, text) drawn in a small box at that pixel of `image`."""

    image: np.ndarray
    heading: str = ""
    lines: List[str] = field(default_factory=list)
    tags: List[Tuple[int, int, str]] = field(default_factory=list)


def render_grid(
    rows: Sequence[Sequence[Cell]],
    cell: int,
    title: str,
    legend: Sequence[Any],
    note: str = "",
    column_titles: Sequence[str] = (),
) -> Figure:
    """A figure of `rows` of cells, each column `cell` pixels wide, under a title, a legend
    (matplotlib handles with labels, in as many rows as needed), a note (wrapped) and column
    titles. Text too wide for its place is cut short with an ellipsis."""
    ncols = max(len(row) for row in rows)
    width = 2 * MARGIN + ncols * cell + (ncols - 1) * GAP_X
    fig = Figure(figsize=(width / DPI, 1.0), dpi=DPI)
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    legend_artist, legend_h = _add_legend(fig, renderer, legend, width - 2 * MARGIN)
    note_lines = _wrap(fig, renderer, note, width - 2 * MARGIN, "note") if note else []

    top = MARGIN + TITLE_H + legend_h + (len(note_lines) * NOTE_H + 4 if note_lines else 0)
    top += COLUMN_TITLE_H if column_titles else 0
    row_tops, y = [], top
    for row in rows:
        heading_h = HEADING_H if any(c.heading for c in row) else 0
        image_h = max(c.image.shape[0] for c in row)
        lines_h = max(len(c.lines) for c in row) * LINE_H
        row_tops.append((y, heading_h, image_h))
        y += heading_h + image_h + (lines_h + 4 if lines_h else 0) + GAP_Y
    height = y - GAP_Y + MARGIN
    fig.set_size_inches(width / DPI, height / DPI)

    def text(x, y_top, s, max_width, style):
        artist = fig.text(x, height - y_top, s, transform=IdentityTransform(), **TEXT_STYLES[style])
        _fit(artist, s, max_width, renderer)

    text(width / 2, MARGIN, title, width - 2 * MARGIN, "title")
    if legend_artist is not None:
        anchor = (width / 2, height - MARGIN - TITLE_H)
        legend_artist.set_bbox_to_anchor(anchor, IdentityTransform())
    for k, line in enumerate(note_lines):
        text(width / 2, MARGIN + TITLE_H + legend_h + k * NOTE_H, line, width - 2 * MARGIN, "note")
    column_x = [MARGIN + c * (cell + GAP_X) for c in range(ncols)]
    for x, column_title in zip(column_x, column_titles):
        text(x + cell / 2, top - COLUMN_TITLE_H, column_title, cell, "column")

    for row, (y, heading_h, image_h) in zip(rows, row_tops):
        for x, c in zip(column_x, row):
            h, w = c.image.shape[:2]
            x_image = x + (cell - w) // 2
            if c.heading:
                text(x + cell / 2, y, c.heading, cell, "heading")
            y_image = y + heading_h
            fig.figimage(c.image, xo=x_image, yo=height - y_image - h, origin="upper")
            _draw_tags(fig, renderer, c.tags, x_image, y_image, height)
            for k, line in enumerate(c.lines):
                text(x, y_image + image_h + 4 + k * LINE_H, line, cell, "line")
    return fig


def _add_legend(fig, renderer, handles: Sequence[Any], max_width: float):
    """A legend of `handles` in as many columns as fit in `max_width` px; (artist, height in px),
    (None, 0) without handles. Placed later, once the figure's height is known."""
    handles = list(handles)
    for ncol in range(len(handles), 0, -1):
        artist = fig.legend(
            handles=handles,
            loc="upper center",
            ncol=ncol,
            frameon=False,
            fontsize=LEGEND_SIZE,
            handlelength=2.6,
            columnspacing=1.6,
        )
        box = artist.get_window_extent(renderer)
        if box.width <= max_width or ncol == 1:
            return artist, math.ceil(box.height) + 4
        artist.remove()
    return None, 0


def _wrap(fig, renderer, s: str, max_width: float, style: str) -> List[str]:
    """`s` cut into lines of whole words at most `max_width` px wide (as drawn in `style`)."""
    probe = fig.text(0, 0, "", **TEXT_STYLES[style])
    lines: List[str] = []
    for word in s.split():
        probe.set_text(f"{lines[-1]} {word}" if lines else word)
        if lines and probe.get_window_extent(renderer).width <= max_width:
            lines[-1] = probe.get_text()
        else:
            lines.append(word)
    probe.remove()
    return lines


def _fit(artist, s: str, max_width: float, renderer) -> None:
    """Shorten the text of `artist` with an ellipsis until it is at most `max_width` px wide."""
    keep = len(s)
    while artist.get_window_extent(renderer).width > max_width and keep > 1:
        keep -= 1
        artist.set_text(s[:keep].rstrip() + "\u2026")


def _draw_tags(fig, renderer, tags, x0: int, y0: int, height: int) -> None:
    """Small boxed labels centred on image pixels (x, y); one that would overlap an earlier one
    moves down until it does not."""
    placed = []
    for x, y, s in tags:
        y_top = y0 + y + 0.5  # the pixel's centre
        artist = fig.text(
            x0 + x + 0.5, height - y_top, s, transform=IdentityTransform(), **TEXT_STYLES["tag"]
        )
        for _ in range(20):
            artist.update_bbox_position_size(renderer)
            box = artist.get_bbox_patch().get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            y_top += box.height + 1
            artist.set_position((x0 + x + 0.5, height - y_top))
        placed.append(box)


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
    clean_masks = [resize_mask(decode(c, height, width), size) for _, c, _ in instances]
    noisy_masks = [resize_mask(decode(n, height, width), size) for _, _, n in instances]
    for (match, _, _), mask in zip(instances, clean_masks):
        dash = DASH if match.status == DELETED else 0
        canvas = draw_outline(canvas, mask, CLEAN_COLOUR, CLEAN_THICKNESS, dash)
        if match.status == DELETED:
            canvas[hatch(mask)] = _rgb(CLEAN_COLOUR)
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
    clean_name, noisy_name = _name(clean, "clean annotations"), _name(noisy, "noisy annotations")
    clean, noisy = read_coco(clean, clean_name), read_coco(noisy, noisy_name)
    images = {image["id"]: image for image in clean["images"]}
    if image_ids is not None:
        unknown = [i for i in image_ids if i not in images]
        if unknown:
            raise ValueError(f"{clean_name}: no image with id {unknown[0]}")
    matches = _match_noise(clean, noisy, clean_name, noisy_name, image_ids)
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
            clean_rle = _annotation_rle(clean_by_id[match.ann_id], image, clean_name)
            new = noisy_by_id.get(match.ann_id)
            noisy_rle = _annotation_rle(new, image, noisy_name) if new is not None else None
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
        f"{_count(len(shown), 'instance')} shown: {mean}{deleted} deleted, "
        f"{_count(flipped, 'class flip')}. "
        "IoU = clean vs noisy mask; numbers in the image index the lines below it."
    )
    title = f"Mask noise: {Path(noisy_name).name} against {Path(clean_name).name}"
    with mpl_style.context("default"):  # the same picture whatever the user's matplotlibrc
        return save_figure(render_grid(rows, cell, title, legend, note), output_path)


# ---------------------------------------------------------------------------------------------
# The predictions picture.


class Detection(NamedTuple):
    category_id: int
    score: float
    rle: dict


def find_results_file(run_dir: Union[str, os.PathLike], dataset: Optional[str] = None) -> Path:
    """coco_instances_results.json of `run_dir`: in the folder itself, inference/, or
    inference/<dataset>/ (train_net's evaluation folder; `dataset` picks one of several)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist")
    found = sorted(p.parent for p in run_dir.glob(f"inference/*/{RESULTS_FILE}"))
    if dataset is not None:
        found = [p for p in found if p.name == dataset]
    elif not found:
        found = [f for f in (run_dir, run_dir / "inference") if (f / RESULTS_FILE).is_file()][:1]
    if len(found) == 1:
        return found[0] / RESULTS_FILE
    if len(found) > 1:
        raise ValueError(
            f"run folder {str(run_dir)!r} has detections for several datasets"
            f" ({', '.join(p.name for p in found)}); choose one with --dataset"
        )
    where = f"inference/{dataset}" if dataset else "inference/<dataset>"
    raise FileNotFoundError(
        f"run folder {str(run_dir)!r} has no detections: missing {RESULTS_FILE} (looked in"
        f" {'' if dataset else 'the folder, inference/ and '}{where}/); evaluate the run with"
        " train_net.py first"
    )


def read_mask_ap(
    run_dir: Union[str, os.PathLike], dataset: Optional[str] = None
) -> Optional[float]:
    """segm AP of RUN_DIR/eval_results.json: {"segm": {"AP": ...}}, or {dataset: {"segm": ...}}
    when the run was tested on several datasets (`dataset` picks one; without it, the only one).
    None when the file or the value is missing."""
    path = Path(run_dir) / EVAL_RESULTS_FILE
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if isinstance(results, dict) and "segm" not in results:
        tables = [v for k, v in sorted(results.items()) if dataset in (None, k)]
        results = tables[0] if len(tables) == 1 else None
    try:
        return float(results["segm"]["AP"])
    except (TypeError, KeyError, ValueError):
        return None


def read_detections(
    path: Union[str, os.PathLike], gt: Mapping[str, Any], score_threshold: float
) -> Dict[int, List[Detection]]:
    """Detections of a COCO results json with score >= `score_threshold`, by image id (only the
    images of `gt`), in the file's order. Errors name the file, the result and the key."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except ValueError as e:
        raise ValueError(f"{path}: not valid json ({e})") from None
    if not isinstance(results, list):
        raise ValueError(f"{path}: expected a list of results, got {type(results).__name__}")
    images = {image["id"]: image for image in gt["images"]}
    category_ids = {category["id"] for category in gt["categories"]}
    by_image: Dict[int, List[Detection]] = {}
    for k, result in enumerate(results):
        for key in ("image_id", "category_id", "score", "segmentation"):
            if not isinstance(result, dict) or key not in result:
                raise ValueError(f"{path}: result #{k} has no {key!r}")
        image = images.get(result["image_id"])
        if image is None:
            raise ValueError(
                f"{path}: result #{k}: 'image_id' {result['image_id']!r} is not in the annotations"
            )
        if result["category_id"] not in category_ids:
            raise ValueError(
                f"{path}: result #{k} (image {image['id']}): 'category_id'"
                f" {result['category_id']!r} is not among the categories {sorted(category_ids)}"
            )
        score = result["score"]
        if not isinstance(score, (int, float)) or not math.isfinite(score):
            raise ValueError(f"{path}: result #{k} (image {image['id']}): 'score' {score!r}")
        if score < score_threshold:
            continue
        where = f"{path}: result #{k} (image {image['id']}): 'segmentation'"
        rle = segmentation_rle(result["segmentation"], image["height"], image["width"], where)
        if rle is not None:
            by_image.setdefault(image["id"], []).append(
                Detection(result["category_id"], float(score), rle)
            )
    return by_image


def mean_best_iou(
    gt_rles: Sequence[dict],
    gt_categories: Sequence[int],
    detections: Sequence[Detection],
) -> float:
    """Mean over ground-truth masks g of max over detections d of g's category of IoU(d, g)
    (0 when there is none); NaN without ground truth."""
    if not gt_rles:
        return math.nan
    if not detections:
        return 0.0
    ious = np.asarray(
        mask_utils.iou([d.rle for d in detections], list(gt_rles), [0] * len(gt_rles)),
        dtype=np.float64,
    ).reshape(len(detections), len(gt_rles))
    same = np.array([[d.category_id == c for c in gt_categories] for d in detections])
    return float(np.where(same, ious, 0.0).max(axis=0).mean())


def choose_by_spread(per_run: Mapping[int, Sequence[float]], num: int) -> List[int]:
    """The `num` image ids with the largest spread max - min of their per-run values; ties go to
    the lower mean, then the lower id. Images with a NaN value are left out."""
    keyed = []
    for image_id, values in per_run.items():
        values = np.asarray(values, dtype=np.float64)
        if values.size and np.all(np.isfinite(values)):
            keyed.append((-(values.max() - values.min()), values.mean(), image_id))
    return [image_id for _, _, image_id in sorted(keyed)[:num]]


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


GtMasks = Dict[int, List[Tuple[int, dict]]]  # image id -> (category id, RLE) per instance


def ground_truth_rles(gt: Mapping[str, Any], name: str = "ground truth") -> GtMasks:
    """The non-crowd instances of `gt` that have a mask, by image id, in the file's order."""
    images = {image["id"]: image for image in gt["images"]}
    by_image: GtMasks = {}
    for ann in gt["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        rle = _annotation_rle(ann, images[ann["image_id"]], name)
        if rle is not None:
            by_image.setdefault(ann["image_id"], []).append((ann["category_id"], rle))
    return by_image


def image_ious(
    gt_rles: GtMasks, runs: Sequence[Mapping[int, Sequence[Detection]]]
) -> Dict[int, List[float]]:
    """`mean_best_iou` of each run (detections by image id) on each image with ground truth."""
    out = {}
    for image_id in sorted(gt_rles):
        categories, rles = zip(*gt_rles[image_id])
        out[image_id] = [mean_best_iou(rles, categories, run.get(image_id, [])) for run in runs]
    return out


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
    gt_masks = [resize_mask(decode(rle, height, width), size) for _, rle in gts]
    line = _count(len(gts), "ground-truth mask")
    if gts and len(ious) > 1:
        line += f", IoU spread {np.nanmax(ious) - np.nanmin(ious):.2f}"
    heading = f"image {image_entry['id']} ({image_entry['file_name']})"
    row = [Cell(prediction_canvas(pixels, gt_masks, [], colours, in_grey=False), heading, [line])]
    for detections, value in zip(runs, ious):
        masks = [
            (d.category_id, resize_mask(decode(d.rle, height, width), size)) for d in detections
        ]
        iou = "n/a" if math.isnan(value) else f"{value:.2f}"
        line = f"mean best IoU {iou}, {_count(len(detections), 'mask')}"
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
    gt_name = _name(annotations, "ground truth")
    gt = read_coco(annotations, gt_name)
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
    with mpl_style.context("default"):
        fig = render_grid(rows, cell, title, legend, note, column_titles)
        return save_figure(fig, output_path)


# ---------------------------------------------------------------------------------------------
# Command line.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m noisy_mask.visualize", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    noise = commands.add_parser("noise", help="clean vs noisy outlines of sample images")
    noise.add_argument("--clean", required=True, metavar="CLEAN.json")
    noise.add_argument("--noisy", required=True, metavar="NOISY.json")
    noise.add_argument("--images", required=True, metavar="DIR", help="the images' folder")
    noise.add_argument("--output", required=True, metavar="OUT.png")
    noise.add_argument("--num", type=int, default=6, help="images to draw (6)")
    noise.add_argument("--seed", type=int, default=0, help="for the choice of images (0)")
    noise.add_argument("--image-ids", type=int, nargs="+", metavar="ID", help="draw these images")
    noise.add_argument("--columns", type=int, default=3, help="images per row (3)")

    pred = commands.add_parser("predictions", help="each run's predicted masks, side by side")
    pred.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training output folders")
    pred.add_argument("--images", required=True, metavar="DIR", help="the images' folder")
    pred.add_argument("--annotations", required=True, metavar="GT.json", help="clean masks")
    pred.add_argument("--output", required=True, metavar="OUT.png")
    pred.add_argument("--labels", nargs="+", metavar="NAME", help="one per run (folder names)")
    pred.add_argument("--num", type=int, default=4, help="images to draw (4)")
    pred.add_argument("--image-ids", type=int, nargs="+", metavar="ID", help="draw these images")
    pred.add_argument("--score-threshold", type=float, default=0.5, help="lowest score (0.5)")
    pred.add_argument("--dataset", help="the test dataset when inference/ holds several")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"--num must be >= 1, got {args.num}")
    try:
        if args.command == "noise":
            if args.columns < 1:
                parser.error(f"--columns must be >= 1, got {args.columns}")
            path = draw_noise_grid(
                args.clean,
                args.noisy,
                args.images,
                args.output,
                args.num,
                args.seed,
                args.image_ids,
                args.columns,
            )
        else:
            if args.labels is not None and len(args.labels) != len(args.runs):
                parser.error(
                    f"--labels has {len(args.labels)} names for {len(args.runs)} run folders"
                )
            path = draw_predictions_grid(
                args.runs,
                args.images,
                args.annotations,
                args.output,
                args.labels,
                args.num,
                args.image_ids,
                args.score_threshold,
                args.dataset,
            )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
