"""What both variants draw with: a scene's shapes, their painting and annotation (exact or refused),
its sub-pixel shifts, random outlines placed in the image, and smooth random fields."""

from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence, Tuple

import numpy as np
import shapely
from shapely.affinity import translate
from shapely.geometry import Polygon
from shapely.ops import unary_union

from .geometry import coco_polygon, polygon_bbox, rasterize, shape_outline, visible_region_problem
from .geometry import visible_regions
from .params import (
    BORDER,
    GAP_MARGIN,
    JITTER_TRIES,
    MIN_VISIBLE_AREA,
    RECTANGLE_ASPECT,
    REFERENCE_SIZE,
    SHAPE_CLASSES,
    SIZE_RANGE,
    STAR_INNER_RATIO,
)


class SceneError(ValueError):
    """A scene whose visible regions cannot be annotated exactly."""


@dataclass(frozen=True)
class SceneShape:
    """One shape to draw: `category_id` in 1..len(SHAPE_CLASSES), full outline, RGB fill.

    `texture`, when given, is an (H, W, 3) uint8 RGB image of the whole frame; the shape shows it
    through its visible region instead of the flat `colour`.
    """

    category_id: int
    polygon: Polygon
    colour: Tuple[int, int, int]
    texture: Optional[np.ndarray] = field(default=None, compare=False)


def draw_scene(
    shapes: Sequence[SceneShape], background: np.ndarray, min_area: float = MIN_VISIBLE_AREA
) -> Tuple[np.ndarray, List[dict]]:
    """Paint `shapes` in order over `background` ((H, W, 3) uint8 RGB) and annotate them.

    Returns the image ((H, W, 3) uint8 RGB) and, per shape, a dict with category_id,
    segmentation ([polygon]), area (pixels of the rasterized polygon), bbox and iscrowd.
    Raises SceneError when a visible region is not one polygon without holes, is too small, or
    when rasterized visible regions overlap (the annotations could not all be exact).
    """
    height, width = background.shape[:2]
    image = background.copy()
    owner = np.zeros((height, width), dtype=np.int32)  # 1 + index of the shape painted there
    instances = []
    regions = visible_regions([shape.polygon for shape in shapes])
    for index, (shape, region) in enumerate(zip(shapes, regions)):
        problem = visible_region_problem(shape.polygon, region, min_area)
        if problem is not None:
            name = SHAPE_CLASSES[shape.category_id - 1]
            raise SceneError(f"shape {index} ({name}) cannot be annotated: {problem}")
        polygon = coco_polygon(region)
        mask = rasterize(polygon, height, width)
        if np.any(owner[mask] > 0):
            raise SceneError(f"rasterized visible region of shape {index} overlaps another one")
        owner[mask] = index + 1
        image[mask] = shape.colour if shape.texture is None else shape.texture[mask]
        instances.append(
            {
                "category_id": shape.category_id,
                "segmentation": [polygon],
                "area": int(mask.sum()),
                "bbox": polygon_bbox(polygon),
                "iscrowd": 0,
            }
        )
    return image, instances


def draw_jittered(
    rng: np.random.Generator,
    shapes: Sequence[SceneShape],
    background: np.ndarray,
    min_area: float,
    gapless: bool = False,
) -> Optional[Tuple[np.ndarray, List[dict], List[SceneShape]]]:
    """draw_scene, retried with the whole scene shifted; also returns the shapes as drawn.

    Two regions sharing an edge can both claim a pixel there (or, `gapless`, neither), as
    pycocotools rounds each edge to a 0.2 px grid from its own end points. Shifting all shapes by
    the same sub-pixel amount (less than BORDER) keeps the scene and moves those roundings.
    None when JITTER_TRIES shifts all fail.
    """
    shift = np.zeros(2)
    for _ in range(JITTER_TRIES):
        moved = [replace(shape, polygon=translate(shape.polygon, *shift)) for shape in shapes]
        try:
            image, instances = draw_scene(moved, background, min_area)
            if gapless and gap_pixels(moved, instances, background.shape[0]) > 0:
                raise SceneError("touching regions leave unpainted pixels between them")
            return image, instances, moved
        except SceneError:
            shift = rng.uniform(-0.5, 0.5, size=2)
    return None


def gap_pixels(shapes: Sequence[SceneShape], instances: Sequence[dict], size: int) -> int:
    """Pixels painted by no shape whose centres lie GAP_MARGIN inside the union of the outlines.

    These are gaps between touching regions; the outer outline is GAP_MARGIN away.
    """
    inner = unary_union([shape.polygon for shape in shapes]).buffer(-GAP_MARGIN)
    if inner.is_empty:
        return 0
    centres = np.arange(size) + 0.5  # pycocotools takes a pixel when its centre is inside
    inside = shapely.contains_xy(inner, centres[None, :], centres[:, None])
    painted = np.zeros((size, size), dtype=bool)
    for instance in instances:
        painted |= rasterize(instance["segmentation"][0], size, size)
    return int(np.count_nonzero(inside & ~painted))


def sample_polygon(rng: np.random.Generator, kind: str, image_size: int) -> Polygon:
    """A random outline of `kind`, size in SIZE_RANGE (scaled), placed wholly inside the image."""
    scale = image_size / REFERENCE_SIZE
    size = rng.uniform(SIZE_RANGE[0] * scale, SIZE_RANGE[1] * scale)
    angle = rng.uniform(0.0, 2 * np.pi)
    aspect = rng.uniform(*RECTANGLE_ASPECT)
    inner_ratio = rng.uniform(*STAR_INNER_RATIO)
    points = shape_outline(kind, size, angle, aspect, inner_ratio)
    low = BORDER - points.min(axis=0)
    high = image_size - BORDER - points.max(axis=0)
    return Polygon(points + rng.uniform(low, high))


def upsample_grid(grid: np.ndarray, size: int) -> np.ndarray:
    """(size, size, C) float64: the (G, G, C) `grid` bilinearly upsampled, corners on corners."""
    cells = grid.shape[0]
    position = np.linspace(0.0, cells - 1.0, size)
    low = np.minimum(position.astype(np.int64), cells - 2)
    frac = position - low
    # separable and elementwise (no matrix product): the same bytes whatever BLAS and threads
    fy = frac[:, None, None]
    rows = (1 - fy) * grid[low] + fy * grid[low + 1]  # (size, G, C)
    fx = frac[None, :, None]
    return (1 - fx) * rows[:, low] + fx * rows[:, low + 1]  # (size, size, C)
