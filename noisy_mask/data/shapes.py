"""A synthetic COCO instance-segmentation dataset of filled shapes, made from a seed.

Each image shows 1 to 5 shapes (circle, triangle, rectangle, 5-point star) on a plain or mildly
textured background. The class is the outline; the fill colour is random, with contrast to the
background and to the other shapes. Shapes are drawn in order, later ones occluding earlier ones.

Masks are exact. The segmentation of instance i is the polygon of its visible region,

    V_i = P_i minus (P_{i+1} union ... union P_{n-1}),

computed with shapely from the full outlines P_j; placements that leave some V_i with a hole, in
several pieces, smaller than half of P_i or smaller than MIN_VISIBLE_AREA are redrawn. The image is
painted from the pycocotools rasterization of exactly the polygons written to the json (the
rasterizer of Detectron2's PolygonMasks and of COCO evaluation), and the rasterized V_i must not
overlap, so the pixels of instance i are exactly the rasterization of its polygon. `area` is that
pixel count (pycocotools `area` of the rasterized polygon), `bbox` the [x, y, w, h] of the polygon.

In that "plain" variant the image edges are exactly the outlines. The "hard" variant parts them,
with the same guarantees on the masks:
- textured shapes: a flat fill, stripes or patches of two colours, so edges run inside shapes;
- low contrast: 30% of the shapes are flat and only 6 to 16 (RGB distance) from the background
  under them;
- a background with edges of its own: a gradient, a smooth texture, stripes for some images,
  and clutter (lines, elongated ellipses) that is no instance;
- touching shapes: 2 to 5 per image, and a shape after the first is, with probability 0.6,
  pushed 1 to 3 px into an earlier one, which it cuts: the two share a boundary, and scenes
  whose rasterized regions leave a pixel unpainted between them are redrawn;
- the same sensor noise over the whole image.

Layout under DIR: annotations/instances_{train,val}.json, train/*.png, val/*.png and a manifest
(written last) holding the parameters and the variant, so that a complete dataset is not made
twice nor mistaken for one of another variant.

    python -m noisy_mask.data.shapes --output datasets/shapes --num-train 200 --num-val 50
    python -m noisy_mask.data.shapes --output datasets/shapes_hard --variant hard
"""

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import shapely
from pycocotools import mask as mask_utils
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient
from shapely.affinity import translate
from shapely.ops import unary_union

from ..utils.atomic import write_bytes_atomic

SHAPE_CLASSES: Tuple[str, ...] = ("circle", "triangle", "rectangle", "star")

# Bump when the output for a given seed changes, so that old datasets are made again.
GENERATOR_VERSION = 1
MANIFEST_NAME = "shapes_manifest.json"
SPLITS = ("train", "val")
VARIANTS = ("plain", "hard")  # see the module docstring
IMAGE_NAME = re.compile(r"^\d{6}\.png$")

MIN_IMAGE_SIZE = 64
REFERENCE_SIZE = 192  # sizes below are in pixels of a 192 x 192 image and scale with the image
SIZE_RANGE = (24.0, 90.0)  # diameter of the shape's circumscribed circle
MIN_VISIBLE_AREA = 150.0  # px^2, of the visible region
MIN_VISIBLE_FRACTION = 0.5  # of the shape's full area
MAX_OBJECTS = 5
CIRCLE_VERTICES = 48  # sagitta r (1 - cos(pi / 48)) < 0.1 px for r <= 45: below a pixel
RECTANGLE_ASPECT = (1.0, 1.6)
STAR_INNER_RATIO = (0.42, 0.55)
BORDER = 1.0  # px kept free at the image border: no shape is clipped by it

BACKGROUND_AMPLITUDE = 12.0  # max per-channel deviation of the background texture from its base
BACKGROUND_GRID = 6  # texture: a 6 x 6 grid of random values, bilinearly upsampled
# Euclidean RGB distances. A background pixel lies within 12 sqrt(3) + 1 < 22 of the base colour,
# so a fill colour 90 away never occurs in the background, and 70 keeps shapes apart.
MIN_BACKGROUND_CONTRAST = 90.0
MIN_SHAPE_CONTRAST = 70.0

PLACEMENT_TRIES = 50  # per shape; when all fail the image gets fewer shapes
SCENE_TRIES = 20
JITTER_TRIES = 10  # sub-pixel shifts of a scene whose rasterized regions overlap

# The hard variant. Sizes are in pixels of a 192 x 192 image, like those above.
HARD_OBJECTS = (2, 5)  # shapes per image, both ends included: touching takes two
TOUCH_PROBABILITY = 0.6  # a shape after the first is pressed against an earlier one
TOUCH_DEPTH = (1.0, 3.0)  # px it is pushed into that one, cutting it: a shared boundary
GAP_MARGIN = 1.0  # px; pixel centres this far inside the union of the outlines must be painted
LOW_CONTRAST_PROBABILITY = 0.3
# RGB distance of a low-contrast fill from the background under it; its grey step is at most
# |(0.299, 0.587, 0.114)| * 16 = 0.67 * 16 < 11 levels
LOW_CONTRAST = (6.0, 16.0)
MIN_HARD_BACKGROUND_CONTRAST = 50.0  # the same distance for every other fill (its mean colour)
MIN_HARD_SHAPE_CONTRAST = 30.0  # between the mean colours of one image's fills, when possible
COLOUR_TRIES = 20
TEXTURES = ("flat", "stripes", "patches")
TEXTURE_WEIGHTS = (0.2, 0.4, 0.4)  # of the fills that are not low-contrast (those are flat)
TEXTURE_CONTRAST = (50.0, 130.0)  # RGB distance between the two colours of stripes or patches
# They differ along grey + GREY_TILT * (a random direction): mostly in brightness, which is what
# grey-level edge detectors see, partly in hue.
GREY_TILT = 0.5
STRIPE_WIDTH = (5.0, 14.0)  # px, of one stripe
PATCH_GRID = 16  # patches: the sign of a 16 x 16 random grid, upsampled: nodes 192 / 15 = 13 px
GRADIENT_AMPLITUDE = 60.0  # max per-channel change of the background over one image side
BACKGROUND_STRIPES_PROBABILITY = 0.3
BACKGROUND_STRIPE_AMPLITUDE = (8.0, 20.0)  # per channel, between the two stripe shades
CLUTTER_LINES = (2, 6)  # lines across the background, both ends included
LINE_WIDTH = (1, 3)  # px, both ends included
CLUTTER_BLOBS = (1, 4)  # filled ellipses, elongated so that none reads as a circle
BLOB_AXIS = (6.0, 24.0)  # px, the long semi-axis
BLOB_ASPECT = (0.25, 0.6)  # short semi-axis / long one
# Max standard deviation of the noise on every pixel, shapes and background. The 3x3 Sobel
# response of such noise has a standard deviation of 4 sqrt(1 + 4 + 1 + 1 + 4 + 1) < 14 per axis,
# texture for the eye but no edge.
SENSOR_NOISE = 4.0


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


def sample_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB: a random base colour, plain or plus a smooth texture.

    The texture is a 6 x 6 grid g of values in [-1, 1], bilinearly upsampled,
    t(y, x) = sum_ij w_i(y) w_j(x) g_ij with w_i(p) = max(0, 1 - |p - i|), p in [0, 5],
    times an amplitude in [0, BACKGROUND_AMPLITUDE] (0 for half of the images).
    """
    base = rng.uniform(0.0, 255.0, size=3)
    grid = rng.uniform(-1.0, 1.0, size=(BACKGROUND_GRID, BACKGROUND_GRID, 3))
    amplitude = rng.uniform(0.0, BACKGROUND_AMPLITUDE) if rng.random() < 0.5 else 0.0
    texture = upsample_grid(grid, size)
    return np.clip(np.rint(base + amplitude * texture), 0, 255).astype(np.uint8)


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


def sample_colours(rng: np.random.Generator, background: np.ndarray, count: int) -> List[tuple]:
    """`count` RGB fill colours, each far from the background base and from one another."""
    base = background.reshape(-1, 3).astype(np.float64).mean(axis=0)
    colours: List[np.ndarray] = []
    while len(colours) < count:
        colour = rng.integers(0, 256, size=3).astype(np.float64)
        if np.linalg.norm(colour - base) < MIN_BACKGROUND_CONTRAST:
            continue
        if any(np.linalg.norm(colour - other) < MIN_SHAPE_CONTRAST for other in colours):
            continue
        colours.append(colour)
    return [tuple(int(c) for c in colour) for colour in colours]


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


def annotatable(polygons: Sequence[Polygon], min_area: float) -> bool:
    """True if every visible region of `polygons` (drawn in order) is one exact COCO polygon."""
    regions = visible_regions(polygons)
    return all(
        visible_region_problem(full, region, min_area) is None
        for full, region in zip(polygons, regions)
    )


def sample_scene(rng: np.random.Generator, image_size: int) -> Tuple[np.ndarray, List[dict]]:
    """A random image of the plain variant ((S, S, 3) uint8 RGB) and its instances (draw_scene)."""
    min_area = MIN_VISIBLE_AREA * (image_size / REFERENCE_SIZE) ** 2
    for _ in range(SCENE_TRIES):
        background = sample_background(rng, image_size)
        count = int(rng.integers(1, MAX_OBJECTS + 1))
        categories: List[int] = []
        polygons: List[Polygon] = []
        for _ in range(count):
            for _ in range(PLACEMENT_TRIES):
                category = int(rng.integers(len(SHAPE_CLASSES)))
                candidate = polygons + [sample_polygon(rng, SHAPE_CLASSES[category], image_size)]
                if annotatable(candidate, min_area):
                    categories.append(category + 1)
                    polygons = candidate
                    break
        colours = sample_colours(rng, background, len(polygons))
        shapes = [
            SceneShape(category, polygon, colour)
            for category, polygon, colour in zip(categories, polygons, colours)
        ]
        drawn = draw_jittered(rng, shapes, background, min_area)
        if drawn is not None:
            return drawn[:2]
    raise RuntimeError(f"no drawable scene in {SCENE_TRIES} tries (image_size={image_size})")


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


def stripe_pattern(size: int, width: float, angle: float, phase: float) -> np.ndarray:
    """(size, size) bool: alternate stripes `width` px wide, across direction `angle` (radians)."""
    centres = np.arange(size) + 0.5
    along = (centres[None, :] * math.cos(angle) + centres[:, None] * math.sin(angle)) / width
    return np.floor(along + phase).astype(np.int64) % 2 == 0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Rounded and clipped to 0..255."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def random_unit(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random direction in RGB space."""
    direction = rng.normal(size=3)
    return direction / max(np.linalg.norm(direction), 1e-9)


def sample_hard_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB with edges of its own: the hard variant's background.

    A base colour plus a linear gradient (up to GRADIENT_AMPLITUDE per channel over one side),
    the smooth texture of sample_background, stripes for some images, then clutter painted on
    top: anti-aliased lines and elongated filled ellipses in random colours.
    """
    scale = size / REFERENCE_SIZE
    base = rng.uniform(0.0, 255.0, size=3)
    angle = rng.uniform(0.0, 2 * np.pi)
    centres = (np.arange(size) + 0.5) / size - 0.5
    ramp = centres[None, :] * math.cos(angle) + centres[:, None] * math.sin(angle)
    gradient = rng.uniform(-GRADIENT_AMPLITUDE, GRADIENT_AMPLITUDE, size=3)
    grid = rng.uniform(-1.0, 1.0, size=(BACKGROUND_GRID, BACKGROUND_GRID, 3))
    texture = rng.uniform(0.0, BACKGROUND_AMPLITUDE) * upsample_grid(grid, size)
    image = base + ramp[:, :, None] * gradient + texture
    if rng.random() < BACKGROUND_STRIPES_PROBABILITY:
        width = rng.uniform(*STRIPE_WIDTH) * scale
        pattern = stripe_pattern(size, width, rng.uniform(0.0, np.pi), rng.uniform(0.0, 2.0))
        amplitude = rng.uniform(*BACKGROUND_STRIPE_AMPLITUDE)
        image = image + np.where(pattern, 0.5, -0.5)[:, :, None] * amplitude
    image = np.ascontiguousarray(to_uint8(image))
    # cv2 draws with integer arithmetic on uint8: the same pixels on every machine
    for _ in range(int(rng.integers(CLUTTER_LINES[0], CLUTTER_LINES[1] + 1))):
        ends = [int(c) for c in rng.integers(0, size, size=4)]
        width = int(rng.integers(LINE_WIDTH[0], LINE_WIDTH[1] + 1))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        cv2.line(image, tuple(ends[:2]), tuple(ends[2:]), colour, width, cv2.LINE_AA)
    for _ in range(int(rng.integers(CLUTTER_BLOBS[0], CLUTTER_BLOBS[1] + 1))):
        centre = tuple(int(c) for c in rng.integers(0, size, size=2))
        long_axis = rng.uniform(*BLOB_AXIS) * scale
        axes = (int(round(long_axis)), max(1, int(round(long_axis * rng.uniform(*BLOB_ASPECT)))))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        angle = rng.uniform(0.0, 180.0)  # degrees
        cv2.ellipse(image, centre, axes, angle, 0, 360, colour, -1, cv2.LINE_AA)
    return image


def sample_fill(
    rng: np.random.Generator,
    background: np.ndarray,
    polygon: Polygon,
    other_means: Sequence[np.ndarray],
) -> Tuple[Tuple[int, int, int], np.ndarray]:
    """The mean RGB colour and (S, S, 3) float64 texture of one shape of the hard variant.

    With LOW_CONTRAST_PROBABILITY the fill is flat and LOW_CONTRAST away from the mean of the
    background under the shape; otherwise it is flat, stripes or patches of two colours
    TEXTURE_CONTRAST apart, their mean at least MIN_HARD_BACKGROUND_CONTRAST from it.
    """
    size = background.shape[0]
    under = rasterize(coco_polygon(polygon), size, size)
    local = background[under].astype(np.float64).mean(axis=0)
    low_contrast = rng.random() < LOW_CONTRAST_PROBABILITY
    kind = "flat" if low_contrast else TEXTURES[rng.choice(len(TEXTURES), p=TEXTURE_WEIGHTS)]
    for _ in range(COLOUR_TRIES):
        if low_contrast:
            mean = np.clip(local + rng.uniform(*LOW_CONTRAST) * random_unit(rng), 0, 255)
            lowest, highest = LOW_CONTRAST
        else:
            mean = rng.integers(0, 256, size=3).astype(np.float64)
            lowest, highest = MIN_HARD_BACKGROUND_CONTRAST, np.inf
        if lowest <= np.linalg.norm(mean - local) <= highest and all(
            np.linalg.norm(mean - other) >= MIN_HARD_SHAPE_CONTRAST for other in other_means
        ):
            break
    if kind == "flat":
        texture = np.broadcast_to(mean, (size, size, 3)).astype(np.float64)
    else:
        direction = np.full(3, 1.0 / math.sqrt(3.0)) + GREY_TILT * random_unit(rng)
        half = 0.5 * rng.uniform(*TEXTURE_CONTRAST) * direction / np.linalg.norm(direction)
        if kind == "stripes":
            width = rng.uniform(*STRIPE_WIDTH) * size / REFERENCE_SIZE
            pattern = stripe_pattern(size, width, rng.uniform(0.0, np.pi), rng.uniform(0.0, 2.0))
        else:
            grid = rng.uniform(-1.0, 1.0, size=(PATCH_GRID, PATCH_GRID, 1))
            pattern = upsample_grid(grid, size)[:, :, 0] > 0
        texture = mean + np.where(pattern[:, :, None], half, -half)
    return tuple(int(c) for c in np.rint(mean)), texture


def press_against(
    rng: np.random.Generator, target: Polygon, kind: str, image_size: int
) -> Optional[Polygon]:
    """A random outline of `kind` pushed TOUCH_DEPTH into `target` from a random side.

    The outline moves from the target's centroid along a random direction until it only just
    touches (bisection), then back by the depth. None if it would leave the image.
    """
    shape = sample_polygon(rng, kind, image_size)
    angle = rng.uniform(0.0, 2 * np.pi)
    depth = rng.uniform(*TOUCH_DEPTH) * image_size / REFERENCE_SIZE
    dx, dy = math.cos(angle), math.sin(angle)
    start = translate(
        shape, target.centroid.x - shape.centroid.x, target.centroid.y - shape.centroid.y
    )
    # both contain their centroids, so they meet at 0 and are apart beyond the sum of radii
    reach = [
        np.linalg.norm(np.asarray(p.exterior.coords) - np.asarray(p.centroid.coords), axis=1)
        for p in (target, start)
    ]
    meeting, apart = 0.0, float(reach[0].max() + reach[1].max()) + 1.0
    while apart - meeting > 0.01:
        middle = 0.5 * (meeting + apart)
        if translate(start, middle * dx, middle * dy).intersects(target):
            meeting = middle
        else:
            apart = middle
    distance = max(apart - depth, 0.0)
    placed = translate(start, distance * dx, distance * dy)
    x_min, y_min, x_max, y_max = placed.bounds
    if min(x_min, y_min) < BORDER or max(x_max, y_max) > image_size - BORDER:
        return None
    return placed


def sample_hard_scene(
    rng: np.random.Generator, image_size: int
) -> Tuple[np.ndarray, List[dict], np.ndarray, List[SceneShape]]:
    """A random image of the hard variant, its instances, and the layers it was painted from.

    Returns (image, instances, background, shapes): image ((S, S, 3) uint8 RGB) and instances as
    from draw_scene; background ((S, S, 3) uint8) the image under all shapes; shapes as drawn,
    each with its texture. The image is the background with each shape's texture painted, in
    order, through the pycocotools rasterization of its instance's polygon. The same noise field
    is added to the background and to every texture, so noise never marks an outline.
    """
    min_area = MIN_VISIBLE_AREA * (image_size / REFERENCE_SIZE) ** 2
    for _ in range(SCENE_TRIES):
        background = sample_hard_background(rng, image_size)
        count = int(rng.integers(HARD_OBJECTS[0], HARD_OBJECTS[1] + 1))
        categories: List[int] = []
        polygons: List[Polygon] = []
        for _ in range(count):
            for _ in range(PLACEMENT_TRIES):
                category = int(rng.integers(len(SHAPE_CLASSES)))
                kind = SHAPE_CLASSES[category]
                if polygons and rng.random() < TOUCH_PROBABILITY:
                    target = polygons[int(rng.integers(len(polygons)))]
                    polygon = press_against(rng, target, kind, image_size)
                    if polygon is None:
                        continue
                else:
                    polygon = sample_polygon(rng, kind, image_size)
                if annotatable(polygons + [polygon], min_area):
                    categories.append(category + 1)
                    polygons.append(polygon)
                    break
        noise = rng.uniform(0.0, SENSOR_NOISE) * rng.normal(size=(image_size, image_size, 3))
        shapes: List[SceneShape] = []
        for category, polygon in zip(categories, polygons):
            means = [np.asarray(shape.colour, dtype=np.float64) for shape in shapes]
            colour, texture = sample_fill(rng, background, polygon, means)
            shapes.append(SceneShape(category, polygon, colour, to_uint8(texture + noise)))
        under = to_uint8(background + noise)
        drawn = draw_jittered(rng, shapes, under, min_area, gapless=True)
        if drawn is not None:
            image, instances, moved = drawn
            return image, instances, under, moved
    raise RuntimeError(f"no drawable scene in {SCENE_TRIES} tries (image_size={image_size})")


def variant_scene(
    rng: np.random.Generator, image_size: int, variant: str
) -> Tuple[np.ndarray, List[dict]]:
    """The image and instances of one scene of `variant` (one of VARIANTS)."""
    if variant == "plain":
        return sample_scene(rng, image_size)
    if variant == "hard":
        return sample_hard_scene(rng, image_size)[:2]
    raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")


def image_rng(seed: int, split: str, image_id: int) -> np.random.Generator:
    """The generator of image `image_id` (1-based) of `split`: seeded with (seed, split, k)."""
    return np.random.default_rng([seed, SPLITS.index(split), image_id])


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")


def make_split(
    seed: int,
    split: str,
    num_images: int,
    image_size: int,
    image_dir: Path,
    variant: str = "plain",
) -> dict:
    """Write the PNGs of one split and return its COCO dict.

    Image k (1-based) uses the generator image_rng(seed, split, k), so it is the same whatever
    the number of images, and train and val never share a stream.
    """
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        image, instances = variant_scene(image_rng(seed, split, image_id), image_size, variant)
        file_name = f"{image_id:06d}.png"
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode {image_dir / file_name} as PNG")
        write_bytes_atomic(image_dir / file_name, encoded.tobytes())
        images.append(
            {"id": image_id, "file_name": file_name, "width": image_size, "height": image_size}
        )
        for instance in instances:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **instance})
    info = {
        "description": "noisy_mask synthetic shapes",
        "version": str(GENERATOR_VERSION),
        "split": split,
        "seed": seed,
    }
    if variant != "plain":  # plain files keep the bytes they had before there were variants
        info["variant"] = variant
    return {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"}
            for i, name in enumerate(SHAPE_CLASSES)
        ],
    }


def dataset_paths(output_dir: Path) -> Dict[str, str]:
    """Where each part of the dataset lives under `output_dir`."""
    paths = {"root": output_dir, "manifest": output_dir / MANIFEST_NAME}
    for split in SPLITS:
        paths[f"{split}_json"] = output_dir / "annotations" / f"instances_{split}.json"
        paths[f"{split}_images"] = output_dir / split
    return {key: str(value) for key, value in paths.items()}


def is_complete(output_dir: Path, params: dict) -> bool:
    """True if `output_dir` holds a finished dataset made with `params` (manifest and all files)."""
    paths = dataset_paths(output_dir)
    try:
        manifest = json.loads(Path(paths["manifest"]).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("params") != params:
        return False
    for split in SPLITS:
        if not Path(paths[f"{split}_json"]).is_file():
            return False
        image_dir = Path(paths[f"{split}_images"])
        for image_id in range(1, params[f"num_{split}"] + 1):
            if not (image_dir / f"{image_id:06d}.png").is_file():
                return False
    return True


def generate_shapes_dataset(
    output_dir,
    num_train: int = 200,
    num_val: int = 50,
    image_size: int = 192,
    seed: int = 0,
    variant: str = "plain",
) -> Dict[str, str]:
    """Make the shapes dataset of `variant` ("plain" or "hard") under `output_dir`.

    Returns its paths, keys root, manifest, train_json, train_images, val_json, val_images.
    Byte-for-byte the same files for the same arguments. If `output_dir` already holds a
    complete dataset made with the same arguments (variant included), returns at once without
    writing; otherwise the dataset there is made again.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    for name, value, lowest in (
        ("num_train", num_train, 0),
        ("num_val", num_val, 0),
        ("image_size", image_size, MIN_IMAGE_SIZE),
        ("seed", seed, 0),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lowest:
            raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {output_dir} exists and is not a folder")
    params = {
        "generator_version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": int(image_size),
        "seed": int(seed),
        "variant": variant,
    }
    paths = dataset_paths(output_dir)
    if is_complete(output_dir, params):
        return paths

    manifest = Path(paths["manifest"])
    if manifest.exists():
        manifest.unlink()  # from here on the folder does not look complete until we finish
    Path(paths["train_json"]).parent.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        image_dir = Path(paths[f"{split}_images"])
        image_dir.mkdir(parents=True, exist_ok=True)
        coco = make_split(
            params["seed"], split, params[f"num_{split}"], image_size, image_dir, variant
        )
        # images of an earlier, larger dataset would otherwise linger beside the new ones
        wanted = {image["file_name"] for image in coco["images"]}
        for stale in image_dir.iterdir():
            if IMAGE_NAME.match(stale.name) and stale.name not in wanted:
                stale.unlink()
        write_bytes_atomic(Path(paths[f"{split}_json"]), json_bytes(coco))
    manifest_dict = {"generator": "noisy_mask.data.shapes", "params": params}
    write_bytes_atomic(manifest, json_bytes(manifest_dict))
    return paths


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m noisy_mask.data.shapes",
        description="Make the synthetic shapes dataset (COCO instance segmentation) from a seed.",
    )
    parser.add_argument("--output", required=True, help="folder to write the dataset to")
    parser.add_argument("--num-train", type=int, default=200, help="training images (200)")
    parser.add_argument("--num-val", type=int, default=50, help="validation images (50)")
    parser.add_argument("--image-size", type=int, default=192, help="side of the images (192)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="plain",
        help="plain: flat shapes whose edges are their outlines; hard: textured, low-contrast, "
        "touching shapes on a cluttered background (plain)",
    )
    args = parser.parse_args(argv)
    try:
        paths = generate_shapes_dataset(
            args.output, args.num_train, args.num_val, args.image_size, args.seed, args.variant
        )
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key in ("train_json", "train_images", "val_json", "val_images"):
        print(f"{key}: {paths[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
