"""COCO masks as run-length encodings: a segmentation to pycocotools' RLE, masks decoded and
encoded (whole, or a window around the objects of a large image), the run lengths of a compressed
counts string, and the IoU of two masks.

COCO's RLE runs alternate background and foreground pixels in column-major order, starting with
background. pycocotools keeps them as {"size": [height, width], "counts": bytes}; a COCO file
holds the same string decoded (compressed) or the run lengths as a list (uncompressed).
"""

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from pycocotools import mask as mask_utils

Rle = Dict[str, Any]  # pycocotools' {"size": [height, width], "counts": bytes}
# (top, left, bottom, right) px of an image, bottom and right exclusive
Window = Tuple[int, int, int, int]

# pycocotools writes a 32-bit run (a signed 33-bit difference) in at most 7 five-bit characters
_MAX_CHARS_PER_RUN = 7


def to_rle(segmentation: Any, height: int, width: int) -> Rle:
    """pycocotools RLE of a well-formed COCO segmentation (one without a fatal problem, see
    `coco.annotation_checks.check_segmentation`) of a height x width image: the union of a list of
    polygons (each of at least 3 points), or an RLE with string or list counts."""
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return {"size": [height, width], "counts": segmentation["counts"].encode("ascii")}


def decode(rle: Optional[Rle], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of an RLE; all False for None (no mask)."""
    if rle is None:
        return np.zeros((height, width), dtype=bool)
    return mask_utils.decode(rle).astype(bool)


def masks_box(rles: Sequence[Optional[Rle]]) -> Optional[Tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) px, exclusive: the box around the non-empty masks of `rles`; None when
    every mask is empty (or None)."""
    boxes = [mask_utils.toBbox(r) for r in rles if r is not None and mask_utils.area(r) > 0]
    if not boxes:
        return None
    return (
        float(min(b[0] for b in boxes)), float(min(b[1] for b in boxes)),
        float(max(b[0] + b[2] for b in boxes)), float(max(b[1] + b[3] for b in boxes)),
    )  # fmt: skip


def window_around(rles: Sequence[Optional[Rle]], pad: int) -> Optional[Window]:
    """The window of the box around the non-empty masks of `rles` (of one image) grown by `pad`
    px on every side, inside the image; None when every mask is empty."""
    box = masks_box(rles)
    if box is None:
        return None
    height, width = (int(v) for v in next(r for r in rles if r is not None)["size"])
    x0, y0, x1, y1 = box
    return (
        max(0, int(y0) - pad), max(0, int(x0) - pad),
        min(height, int(math.ceil(y1)) + pad), min(width, int(math.ceil(x1)) + pad),
    )  # fmt: skip


def runs_of(rle: Rle) -> np.ndarray:
    """The run lengths of an RLE with string, bytes or list counts."""
    counts = rle["counts"]
    if isinstance(counts, (bytes, str)):
        return decode_rle_counts(counts.decode("ascii") if isinstance(counts, bytes) else counts)
    return np.asarray(counts, dtype=np.int64)


def decode_window(rle: Rle, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """(bottom - top, right - left) bool: the window [top, bottom) x [left, right) of an RLE's
    mask, equal to `decode(rle, ...)[top:bottom, left:right]`. Only the window's columns are
    made (the runs are column-major), so a small object of a large image costs its own size, not
    the image's: a 4000 x 3000 px mask is 12 MB decoded."""
    height, width = (int(v) for v in rle["size"])
    if not (0 <= top <= bottom <= height and 0 <= left <= right <= width):
        raise ValueError(f"window {(top, left, bottom, right)} is outside {height} x {width}")
    runs = runs_of(rle)
    ends = np.cumsum(runs)
    # the foreground runs (the odd ones) clipped to the window's columns, in flat positions
    first, last = left * height, right * height
    starts = np.clip(ends[1::2] - runs[1::2], first, last)
    stops = np.clip(ends[1::2], first, last)
    starts, stops = starts[stops > starts], stops[stops > starts]
    # each run cut into one piece per column it crosses: (column, first row, end row)
    first_column, last_column = starts // height, (stops - 1) // height
    pieces = last_column - first_column + 1
    run = np.repeat(np.arange(len(starts)), pieces)
    column = first_column[run] + np.arange(len(run)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    row_start = np.where(column == first_column[run], starts[run] - column * height, 0)
    row_stop = np.where(column == last_column[run], stops[run] - column * height, height)
    row_start, row_stop = np.clip(row_start, top, bottom), np.clip(row_stop, top, bottom)
    inside = row_stop > row_start
    steps = np.zeros((right - left, bottom - top + 1), dtype=np.int32)
    np.add.at(steps, (column[inside] - left, row_start[inside] - top), 1)
    np.add.at(steps, (column[inside] - left, row_stop[inside] - top), -1)
    return np.ascontiguousarray(np.cumsum(steps[:, :-1], axis=1).astype(bool).T)


def window_runs(window: np.ndarray, top: int, left: int, height: int, width: int) -> List[int]:
    """COCO uncompressed RLE counts of the height x width mask that is `window` at [top, top + h)
    x [left, left + w) and background elsewhere: `uncompressed_counts` of that mask, made from
    the window alone (the inverse of `decode_window`)."""
    h, w = window.shape
    if not (0 <= top and top + h <= height and 0 <= left and left + w <= width):
        raise ValueError(f"a {h} x {w} window at ({top}, {left}) is outside {height} x {width}")
    # a background row above and below each column, so that no run crosses a column of the window
    padded = np.zeros((h + 2, w), dtype=np.int8)
    padded[1:-1] = np.asarray(window, dtype=bool)
    changes = np.flatnonzero(np.diff(padded.ravel(order="F"))) + 1
    column, row = np.divmod(changes, h + 2)
    edges = (left + column) * height + top + row - 1  # where runs start and stop in the image
    starts, stops = edges[0::2], edges[1::2]
    # a run that stops where the next starts (the window spans whole columns) is one run
    joined = np.flatnonzero(stops[:-1] == starts[1:])
    starts, stops = np.delete(starts, joined + 1), np.delete(stops, joined)
    bounds = np.concatenate([[0], np.stack([starts, stops], axis=1).ravel(), [height * width]])
    counts = np.diff(bounds).tolist()
    return counts[:-1] if len(counts) > 1 and counts[-1] == 0 else counts  # no empty last run


def encode_window(window: np.ndarray, top: int, left: int, height: int, width: int) -> Rle:
    """pycocotools RLE (bytes counts) of the mask `window_runs` describes: equal to
    `mask_utils.encode` of the whole mask, which is never made."""
    counts = window_runs(window, top, left, height, width)
    return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)


def area(rle: Optional[Rle]) -> float:
    """Foreground pixels of an RLE; 0 for None."""
    return float(mask_utils.area(rle)) if rle is not None else 0.0


def mask_iou(a: Optional[Rle], b: Optional[Rle]) -> float:
    """|a & b| / |a | b| of two RLEs, |a | b| = |a| + |b| - |a & b|; None is an empty mask.

    Two empty masks give NaN: 0 / 0 says nothing about how well one mask matches the other, so
    it is neither a perfect match (1) nor a miss (0). Callers that average IoUs leave NaN out;
    one empty mask against a non-empty one gives 0.
    """
    inter = 0.0
    if a is not None and b is not None:
        inter = float(mask_utils.area(mask_utils.merge([a, b], intersect=True)))
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else math.nan


def uncompressed_counts(mask: np.ndarray) -> List[int]:
    """COCO uncompressed RLE counts of an (H, W) mask: run lengths in column-major order,
    starting with background (a first run of 0 when the first pixel is foreground)."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(edges).tolist()
    return counts if flat.size == 0 or flat[0] == 0 else [0] + counts


def decode_rle_counts(counts: str) -> np.ndarray:
    """The run lengths in a compressed COCO RLE string (pycocotools' `rleFrString`), unchecked:
    a run may come out negative (pycocotools would write out of bounds; the checks report it).

    Each character is 48 + a 5-bit group plus flags: 0x20 means another group follows, 0x10 in the
    last group is the sign. Groups are little-endian: x = sum_k (c_k & 0x1f) << 5k, minus
    2^(5K) if negative (K groups). Run m >= 3 stores the difference to run m - 2, so the runs are
    x_0, then cumulative sums over odd indices from 1 and over even indices from 2.

    Raises:
        ValueError: a character outside '0'..'o', a string ending inside a run, a run too long.
    """
    if not counts.isascii():
        position = next(i for i, ch in enumerate(counts) if not ch.isascii())
        raise ValueError(f"character {counts[position]!r} at position {position} is not ASCII")
    codes = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    bad = np.flatnonzero((codes < 0) | (codes > 63))
    if bad.size:
        position = int(bad[0])
        raise ValueError(
            f"character {counts[position]!r} at position {position} is outside '0'..'o'"
        )
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    last = (codes & 0x20) == 0
    if not last[-1]:
        raise ValueError("the string ends in the middle of a run")
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    lengths = np.diff(np.concatenate([starts, [codes.size]]))
    if lengths.max() > _MAX_CHARS_PER_RUN:
        run = int(np.argmax(lengths > _MAX_CHARS_PER_RUN))
        raise ValueError(
            f"run {run} at position {starts[run]} has {lengths[run]} characters "
            f"(at most {_MAX_CHARS_PER_RUN})"
        )
    shift = 5 * (np.arange(codes.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((codes & 0x1F) << shift, starts)
    negative = (codes[last] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * lengths[negative])
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs
