"""The plain variant: flat fills far from a smooth background and from one another, so that the
image's edges are exactly the outlines."""

from typing import List, Tuple

import numpy as np
from shapely.geometry import Polygon

from .geometry import annotatable
from .params import (
    BACKGROUND_AMPLITUDE,
    BACKGROUND_GRID,
    MAX_OBJECTS,
    MIN_BACKGROUND_CONTRAST,
    MIN_SHAPE_CONTRAST,
    MIN_VISIBLE_AREA,
    PLACEMENT_TRIES,
    REFERENCE_SIZE,
    SCENE_TRIES,
    SHAPE_CLASSES,
)
from .scenes import SceneShape, draw_jittered, sample_polygon, upsample_grid


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
