"""The checks of one annotation's box and segmentation (a list of polygons or an RLE), which the
validator and the tools that read a single segmentation call.

Each returns the `Issue`s of its value, without the file or the ids (the caller places them).
"""

import math
from typing import Any, List, Optional, Tuple

import numpy as np

from .problems import SKIPPABLE, Issue
from .rle import decode_rle_counts
from .values import bad, is_int, is_number, show

# a box may overhang the image by this much: exporters round coordinates to whole pixels
BOX_TOLERANCE_PX = 1.0
# a polygon whose fan of triangles from its first point adds up to less than this is a line or point
ZERO_AREA_PX2 = 1e-6


def check_bbox(bbox: Any, size: Optional[Tuple[int, int]]) -> List[Issue]:
    """Problems with a COCO box [x, y, width, height] in an image of `size` (height, width).

    The box must lie in [-t, W + t] x [-t, H + t], t = BOX_TOLERANCE_PX; `size` None skips that.
    """
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
        return [Issue(f"'bbox' is {show(bbox)}, expected 4 numbers [x, y, width, height]")]
    if not all(math.isfinite(v) for v in bbox):
        return [Issue(f"'bbox' {show(bbox, typed=False)} has a non-finite value")]
    x, y, w, h = bbox
    issues = []
    if w <= 0 or h <= 0:
        message = f"box {show(bbox, typed=False)} has non-positive width or height"
        issues.append(Issue(message, SKIPPABLE))
    if size is not None:
        height, width = size
        t = BOX_TOLERANCE_PX
        outside = [
            f"{label} = {_num(value)} {op} {_num(limit)}"
            for label, value, op, limit, bad in (
                ("x", x, "<", 0, x < -t),
                ("y", y, "<", 0, y < -t),
                ("x + width", x + w, ">", width, x + w > width + t),
                ("y + height", y + h, ">", height, y + h > height + t),
            )
            if bad
        ]
        if outside:
            message = (
                f"box {show(bbox, typed=False)} lies outside the {width}x{height} image by more "
                f"than the {_num(t)} px tolerance: {', '.join(outside)}"
            )
            issues.append(Issue(message))
    return issues


def check_segmentation(segmentation: Any, size: Optional[Tuple[int, int]]) -> List[Issue]:
    """Problems with a COCO segmentation (a list of polygons, or an RLE object) in an image of
    `size` (height, width); `size` None skips the comparison with the RLE's size. Each message
    names the key: 'segmentation' ... or segmentation is empty."""
    if isinstance(segmentation, list):
        if not segmentation:
            return [Issue("segmentation is empty", SKIPPABLE)]
        issues = [i for k, polygon in enumerate(segmentation) for i in check_polygon(k, polygon)]
    elif isinstance(segmentation, dict):
        issues = check_rle(segmentation, size)
    else:
        expected = "expected a list of polygons or an RLE object"
        return [Issue(f"'segmentation' is {show(segmentation)}, {expected}")]
    return [issue._replace(message=f"'segmentation' {issue.message}") for issue in issues]


def check_polygon(index: int, polygon: Any) -> List[Issue]:
    """Problems with polygon `index`, a flat list [x0, y0, x1, y1, ...].

    Zero area is tested with the fan of triangles from the first point,
    A = sum_i |(p_i - p_0) x (p_{i+1} - p_0)| / 2, which is 0 exactly when the polygon is a point
    or traces a line (and, unlike the signed shoelace area, not for a figure eight).
    """
    name = f"polygon {index}"
    if not isinstance(polygon, list):
        return [Issue(f"{name} is {show(polygon)}, expected a list of coordinates")]
    for position, value in enumerate(polygon):
        if not is_number(value):
            return [
                Issue(
                    f"{name} has non-numeric coordinates, the first at position {position}: "
                    f"{show(value)}"
                )
            ]
    issues = []
    non_finite = [i for i, value in enumerate(polygon) if not math.isfinite(value)]
    if non_finite:
        message = (
            f"{name} has NaN or infinite coordinates ({len(non_finite)}, the first at position "
            f"{non_finite[0]}: {show(polygon[non_finite[0]], typed=False)})"
        )
        issues.append(Issue(message))
    if len(polygon) % 2:
        issues.append(Issue(f"{name} has {len(polygon)} coordinates (odd count)"))
    if issues:
        return issues
    if len(polygon) < 6:
        message = f"{name} has {len(polygon) // 2} points; a polygon needs at least 3"
        return [Issue(message, SKIPPABLE)]
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    edges = points[1:] - points[0]
    crosses = edges[:-1, 0] * edges[1:, 1] - edges[:-1, 1] * edges[1:, 0]
    fan_area = np.abs(crosses).sum() / 2
    if fan_area < ZERO_AREA_PX2:
        return [Issue(f"{name} has zero area (its points lie on one line)", SKIPPABLE, True)]
    return []


def check_rle(rle: dict, size: Optional[Tuple[int, int]]) -> List[Issue]:
    """Problems with an RLE {"size": [height, width], "counts": str or list of run lengths}.

    The runs alternate background and foreground, column by column, and must add up to
    height * width; a mask with no foreground run is empty.
    """
    issues = []
    rle_size = rle.get("size")
    if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(is_int(v) for v in rle_size)):
        issues.append(Issue(f"RLE {bad('size', rle, '[height, width]')}"))
        rle_size = None
    elif size is not None and tuple(rle_size) != tuple(size):
        message = f"RLE 'size' {rle_size} does not match the image's [height, width] {list(size)}"
        issues.append(Issue(message))

    counts = rle.get("counts")
    if isinstance(counts, str):
        try:
            runs = decode_rle_counts(counts)
        except ValueError as e:
            return issues + [Issue(f"RLE 'counts' string is malformed: {e}")]
    elif isinstance(counts, list) and all(is_int(v) for v in counts):
        runs = np.asarray(counts, dtype=np.int64)
    else:
        return issues + [Issue(f"RLE {bad('counts', rle, 'a string or a list of ints')}")]

    negative = np.flatnonzero(runs < 0)
    if negative.size:
        message = f"RLE 'counts' have a negative run at position {negative[0]}: {runs[negative[0]]}"
        return issues + [Issue(message)]
    if rle_size is not None and int(runs.sum()) != rle_size[0] * rle_size[1]:
        message = (
            f"RLE 'counts' sum to {int(runs.sum())} pixels, but size {rle_size} has "
            f"{rle_size[0] * rle_size[1]}"
        )
        return issues + [Issue(message)]
    if not runs[1::2].any():
        issues.append(Issue("RLE mask is empty", SKIPPABLE, True))
    return issues


def _num(value: float) -> str:
    return f"{value:.6g}"
