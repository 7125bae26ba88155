"""The geometry of a scene: shape outlines, the visible regions that occlusion leaves, and their
COCO polygon, rasterization (pycocotools, as COCO tools do) and box."""

from typing import List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient
from shapely.ops import unary_union

from .params import CIRCLE_VERTICES, MIN_VISIBLE_FRACTION, SHAPE_CLASSES


def shape_outline(
    kind: str, size: float, angle: float, aspect: float = 1.0, inner_ratio: float = 0.5
) -> np.ndarray:
    """(K, 2) vertices (x, y) of a shape centred on the origin, `size` its circumscribed diameter.

    circle: regular 48-gon of radius size/2; triangle: equilateral, circumradius size/2;
    rectangle: sides w = aspect * h, h = size / sqrt(1 + aspect^2) (diagonal = size);
    star: 10 vertices alternating between radii size/2 and inner_ratio * size/2.
    All are rotated by `angle` (radians).
    """
    radius = size / 2.0
    if kind == "circle":
        theta = np.arange(CIRCLE_VERTICES) * (2 * np.pi / CIRCLE_VERTICES)
        points = radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    elif kind == "triangle":
        theta = np.arange(3) * (2 * np.pi / 3) - np.pi / 2
        points = radius * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    elif kind == "rectangle":
        half_h = radius / np.sqrt(1.0 + aspect**2)
        half_w = aspect * half_h
        points = np.array(
            [[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]]
        )
    elif kind == "star":
        theta = np.arange(10) * (np.pi / 5) - np.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, radius, inner_ratio * radius)
        points = np.stack([radii * np.cos(theta), radii * np.sin(theta)], axis=1)
    else:
        raise ValueError(f"unknown shape kind {kind!r}; valid: {', '.join(SHAPE_CLASSES)}")
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return points @ rotation.T


def visible_regions(polygons: Sequence[Polygon]):
    """V_i = P_i minus the union of P_j for j > i (later shapes occlude earlier ones)."""
    regions = [None] * len(polygons)
    later = Polygon()
    for i in range(len(polygons) - 1, -1, -1):
        regions[i] = polygons[i] if later.is_empty else polygons[i].difference(later)
        later = polygons[i] if later.is_empty else unary_union([later, polygons[i]])
    return regions


def visible_region_problem(full: Polygon, visible, min_area: float) -> Optional[str]:
    """Why `visible` (the visible part of `full`) cannot be one exact COCO polygon, or None."""
    if visible.is_empty:
        return "it is hidden"
    if not isinstance(visible, Polygon):
        return f"it is split into a {visible.geom_type}"
    if len(visible.interiors) > 0:
        return "it has a hole"
    if visible.area < MIN_VISIBLE_FRACTION * full.area:
        return f"{visible.area / full.area:.0%} of it is visible (< {MIN_VISIBLE_FRACTION:.0%})"
    if visible.area < min_area:
        return f"its visible area {visible.area:.1f} px^2 is < {min_area:.1f}"
    return None


def annotatable(polygons: Sequence[Polygon], min_area: float) -> bool:
    """True if every visible region of `polygons` (drawn in order) is one exact COCO polygon."""
    regions = visible_regions(polygons)
    return all(
        visible_region_problem(full, region, min_area) is None
        for full, region in zip(polygons, regions)
    )


def coco_polygon(region: Polygon) -> List[float]:
    """The exterior ring as [x1, y1, x2, y2, ...], rounded to 0.01 px, without repeated points."""
    ring = np.round(np.asarray(orient(region, 1.0).exterior.coords)[:-1], 2)
    keep = np.any(ring != np.roll(ring, 1, axis=0), axis=1)
    return [float(v) for v in ring[keep].reshape(-1)]


def rasterize(polygon: List[float], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a COCO polygon, rasterized by pycocotools as COCO tools do."""
    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
    return mask_utils.decode(rle).astype(bool)


def polygon_bbox(polygon: List[float]) -> List[float]:
    """[x_min, y_min, x_max - x_min, y_max - y_min] of a flat COCO polygon."""
    xs, ys = polygon[0::2], polygon[1::2]
    return [min(xs), min(ys), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)]
