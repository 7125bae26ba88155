"""The layout of a picture, rendered with matplotlib: a grid of cells, each an image with a
heading above and lines of text below, under a title, a legend and a note. Text too wide for its
place is cut short with an ellipsis; number tags are drawn on the images without overlapping.
Positions are in pixels of the PNG, from the top left."""

import math
from dataclasses import dataclass, field
from typing import Any, List, Sequence, Tuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import IdentityTransform

from .style import DPI

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
