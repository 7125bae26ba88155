"""The hard variant: textured and low-contrast fills, touching shapes, a background with edges of
its own and sensor noise, with the same exact masks as the plain variant."""

import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from shapely.affinity import translate
from shapely.geometry import Polygon

from .geometry import annotatable, coco_polygon, rasterize
from .params import (
    BACKGROUND_AMPLITUDE,
    BACKGROUND_GRID,
    BACKGROUND_STRIPE_AMPLITUDE,
    BACKGROUND_STRIPES_PROBABILITY,
    BLOB_ASPECT,
    BLOB_AXIS,
    BORDER,
    CLUTTER_BLOBS,
    CLUTTER_LINES,
    COLOUR_TRIES,
    GRADIENT_AMPLITUDE,
    GREY_TILT,
    HARD_OBJECTS,
    LINE_WIDTH,
    LOW_CONTRAST,
    LOW_CONTRAST_PROBABILITY,
    MIN_HARD_BACKGROUND_CONTRAST,
    MIN_HARD_SHAPE_CONTRAST,
    MIN_VISIBLE_AREA,
    PATCH_GRID,
    PLACEMENT_TRIES,
    REFERENCE_SIZE,
    SCENE_TRIES,
    SENSOR_NOISE,
    SHAPE_CLASSES,
    STRIPE_WIDTH,
    TEXTURE_CONTRAST,
    TEXTURE_WEIGHTS,
    TEXTURES,
    TOUCH_DEPTH,
    TOUCH_PROBABILITY,
)
from .scenes import SceneShape, draw_jittered, sample_polygon, upsample_grid


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
