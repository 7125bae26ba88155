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

Layout under DIR: annotations/instances_{train,val}.json, train/*.png, val/*.png and a manifest
(written last) holding the parameters, so that a complete dataset is not made twice.

    python -m noisy_mask.data.shapes --output datasets/shapes --num-train 200 --num-val 50
"""

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
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


class SceneError(ValueError):
    """A scene whose visible regions cannot be annotated exactly."""


@dataclass(frozen=True)
class SceneShape:
    """One shape to draw: `category_id` in 1..len(SHAPE_CLASSES), full outline, RGB fill."""

    category_id: int
    polygon: Polygon
    colour: Tuple[int, int, int]


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
        image[mask] = shape.colour
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
    position = np.linspace(0.0, BACKGROUND_GRID - 1.0, size)
    low = np.minimum(position.astype(np.int64), BACKGROUND_GRID - 2)
    frac = position - low
    # separable and elementwise (no matrix product): the same bytes whatever BLAS and threads
    fy = frac[:, None, None]
    rows = (1 - fy) * grid[low] + fy * grid[low + 1]  # (size, 6, 3)
    fx = frac[None, :, None]
    texture = (1 - fx) * rows[:, low] + fx * rows[:, low + 1]  # (size, size, 3)
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


def sample_scene(rng: np.random.Generator, image_size: int) -> Tuple[np.ndarray, List[dict]]:
    """A random image ((S, S, 3) uint8 RGB) and its instances, as returned by draw_scene."""
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
                regions = visible_regions(candidate)
                if all(
                    visible_region_problem(full, region, min_area) is None
                    for full, region in zip(candidate, regions)
                ):
                    categories.append(category + 1)
                    polygons = candidate
                    break
        colours = sample_colours(rng, background, len(polygons))
        # Two regions sharing an edge can both claim a pixel there, as pycocotools rounds each
        # edge to a 0.2 px grid from its own end points. Shifting all shapes by the same
        # sub-pixel amount (less than BORDER) keeps the scene and moves those roundings.
        shift = np.zeros(2)
        for _ in range(JITTER_TRIES):
            shapes = [
                SceneShape(category, translate(polygon, *shift), colour)
                for category, polygon, colour in zip(categories, polygons, colours)
            ]
            try:
                return draw_scene(shapes, background, min_area)
            except SceneError:
                shift = rng.uniform(-0.5, 0.5, size=2)
    raise RuntimeError(f"no drawable scene in {SCENE_TRIES} tries (image_size={image_size})")


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")


def make_split(seed: int, split: str, num_images: int, image_size: int, image_dir: Path) -> dict:
    """Write the PNGs of one split and return its COCO dict.

    Image k (1-based) uses the generator seeded with (seed, split index, k), so it is the same
    whatever the number of images, and train and val never share a stream.
    """
    split_index = SPLITS.index(split)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        rng = np.random.default_rng([seed, split_index, image_id])
        image, instances = sample_scene(rng, image_size)
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
    return {
        "info": {
            "description": "noisy_mask synthetic shapes",
            "version": str(GENERATOR_VERSION),
            "split": split,
            "seed": seed,
        },
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
    output_dir, num_train: int = 200, num_val: int = 50, image_size: int = 192, seed: int = 0
) -> Dict[str, str]:
    """Make the shapes dataset under `output_dir` and return its paths.

    Keys: root, manifest, train_json, train_images, val_json, val_images. Byte-for-byte the same
    files for the same arguments. If `output_dir` already holds a complete dataset made with the
    same arguments, returns at once without writing.
    """
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
        coco = make_split(params["seed"], split, params[f"num_{split}"], image_size, image_dir)
        # images of an earlier, larger dataset would otherwise linger beside the new ones
        wanted = {image["file_name"] for image in coco["images"]}
        for stale in image_dir.iterdir():
            if IMAGE_NAME.match(stale.name) and stale.name not in wanted:
                stale.unlink()
        write_bytes_atomic(Path(paths[f"{split}_json"]), json_bytes(coco))
    write_bytes_atomic(manifest, json_bytes({"generator": "noisy_mask.data.shapes", "params": params}))
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
    args = parser.parse_args(argv)
    try:
        paths = generate_shapes_dataset(
            args.output, args.num_train, args.num_val, args.image_size, args.seed
        )
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for key in ("train_json", "train_images", "val_json", "val_images"):
        print(f"{key}: {paths[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
