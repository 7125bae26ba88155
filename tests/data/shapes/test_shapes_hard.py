"""The hard variant: exact masks under textures, touching and low-contrast shapes, and edges that
are no outlines, compared with the plain variant's."""

from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np
import pytest
import shapely
from pycocotools.coco import COCO
from samples import read_rgb
from shapely.geometry import Polygon
from shapely.ops import unary_union

from noisy_mask.data import generate_shapes_dataset
from noisy_mask.data.shapes.hard import sample_hard_scene
from noisy_mask.data.shapes.writing import image_rng

SIZE = 192
NUM_TRAIN = 12
SQUARE_3 = np.ones((3, 3), dtype=np.uint8)
# A 3x3 Sobel on a grey step of h levels answers 4h (weights 1, 2, 1 on each side): 100 is a
# step of 25 levels, a tenth of the range.
STRONG_GRADIENT = 100.0
# Low contrast: mean colours of a shape and of the background around it less than 25 apart
# (RGB distance). Plain fills are 90 from the background mean and background pixels lie within
# 12 sqrt(3) < 21 of its base colour, so plain shapes are 90 - 2 * 21 = 48 or more from it.
LOW_CONTRAST_DISTANCE = 25.0


def dilate(mask: np.ndarray, side: int = 3) -> np.ndarray:
    kernel = np.ones((side, side), dtype=np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def split_scenes(paths: dict, split: str = "train"):
    """Per image: the RGB pixels, the instance masks (pycocotools) and the annotations."""
    coco = COCO(paths[f"{split}_json"])
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        image = read_rgb(Path(paths[f"{split}_images"]) / info["file_name"])
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        masks = [coco.annToMask(ann).astype(bool) for ann in annotations]
        yield image_id, image, masks, annotations


def owner_map(masks: List[np.ndarray]) -> np.ndarray:
    owner = np.zeros(masks[0].shape, dtype=np.int32)
    for index, mask in enumerate(masks):
        owner[mask] = index + 1
    return owner


def near_outlines(masks: List[np.ndarray]) -> np.ndarray:
    """Pixels within 1 px (8-neighbourhood) of an outline: where the owner changes."""
    owner = owner_map(masks)
    outline = np.zeros(owner.shape, dtype=bool)
    across_columns = owner[:, 1:] != owner[:, :-1]
    outline[:, 1:] |= across_columns
    outline[:, :-1] |= across_columns
    across_rows = owner[1:, :] != owner[:-1, :]
    outline[1:, :] |= across_rows
    outline[:-1, :] |= across_rows
    return dilate(outline)


def strong_gradient(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    return np.hypot(gx, gy) >= STRONG_GRADIENT


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hard")
    return generate_shapes_dataset(folder, NUM_TRAIN, 2, SIZE, seed=0, variant="hard")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    return generate_shapes_dataset(folder, NUM_TRAIN, 2, SIZE, seed=0)


def test_hard_masks_are_exactly_the_painted_textures(hard):
    # The image of the hard variant is its background with each shape's texture painted through
    # its mask. Rebuild it from the layers the generator returns and the masks pycocotools
    # rasterizes from the json: not one pixel may differ. Textures differ from the background on
    # every pixel of the 1 px band around each outline (the same noise is in both, and fills
    # are 6 or more from the background), so masks shifted by one pixel must fail to rebuild it.
    for image_id, image, masks, annotations in split_scenes(hard):
        redrawn, instances, background, drawn = sample_hard_scene(
            image_rng(0, "train", image_id), SIZE
        )
        assert np.array_equal(redrawn, image) and len(drawn) == len(masks)
        assert [ann["segmentation"] for ann in annotations] == [
            instance["segmentation"] for instance in instances
        ]
        rebuilt = background.copy()
        for mask, shape in zip(masks, drawn):
            rebuilt[mask] = shape.texture[mask]
            band = dilate(mask) & ~cv2.erode(mask.astype(np.uint8), SQUARE_3).astype(bool)
            assert np.any(shape.texture != background, axis=2)[band].mean() >= 0.95
        assert np.array_equal(rebuilt, image), (image_id, np.any(rebuilt != image, axis=2).sum())
        for axis in (0, 1):
            shifted = background.copy()
            for mask, shape in zip(masks, drawn):
                moved = np.roll(mask, 1, axis=axis)
                shifted[moved] = shape.texture[moved]
            assert not np.array_equal(shifted, image)


def test_hard_textures_are_not_flat_colours(hard):
    # Flat fills give one colour per instance up to the noise; textured ones two well apart
    # (40 to 110). Count instances whose pixels spread far beyond the noise (std > 12 per
    # channel, 3 times SENSOR_NOISE).
    spread, total = 0, 0
    for _, image, masks, _ in split_scenes(hard):
        for mask in masks:
            total += 1
            spread += image[mask].astype(np.float64).std(axis=0).max() > 12.0
    assert spread >= 0.3 * total


def touching(paths: dict) -> Tuple[int, int, int, int]:
    """(instances, instances 0 or 1 px from another, such pairs, pairs with a shared boundary).

    A shared boundary: 5 or more 4-neighbour pixel pairs across the two masks, not one corner.
    """
    instances = near_instances = pairs = sharing = 0
    for _, _, masks, _ in split_scenes(paths):
        near = [False] * len(masks)
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                if not (dilate(masks[i]) & masks[j]).any():
                    continue
                near[i] = near[j] = True
                pairs += 1
                across = sum(
                    np.count_nonzero(np.roll(masks[i], 1, axis) & masks[j])
                    + np.count_nonzero(np.roll(masks[j], 1, axis) & masks[i])
                    for axis in (0, 1)
                )
                sharing += across >= 5
        instances += len(masks)
        near_instances += sum(near)
    return instances, near_instances, pairs, sharing


def test_hard_has_touching_instances_without_gaps(hard, plain):
    instances, near, pairs, sharing = touching(hard)
    # measured: 28 of 41 instances, 10 of 16 pairs with a shared boundary (242 of 329 and
    # 139 of 169 over 100 images); the rest touch at a tip or corner
    assert near >= 0.5 * instances and sharing >= 0.5 * pairs >= 0.5 * NUM_TRAIN
    plain_instances, plain_near, _, _ = touching(plain)  # occlusion makes contacts there too
    assert near / instances > plain_near / plain_instances
    for _, _, masks, annotations in split_scenes(hard):
        assert np.sum(masks, axis=0).max() <= 1  # no pixel in two masks
        # no pixel left unpainted between touching shapes: every pixel centre 1 px inside the
        # union of the polygons lies in some mask
        outlines = [Polygon(np.reshape(ann["segmentation"][0], (-1, 2))) for ann in annotations]
        inner = unary_union(outlines).buffer(-1.0)
        centres = np.arange(SIZE) + 0.5
        inside = shapely.contains_xy(inner, centres[None, :], centres[:, None])
        assert not np.any(inside & ~np.any(masks, axis=0))


def low_contrast_share(paths: dict) -> float:
    """Share of instances whose mean colour is within LOW_CONTRAST_DISTANCE of the mean colour
    of the background 2 to 4 px around them (pixels of no instance)."""
    low, total = 0, 0
    for _, image, masks, _ in split_scenes(paths):
        anyone = np.any(masks, axis=0)
        for mask in masks:
            ring = dilate(mask, 9) & ~dilate(mask) & ~anyone
            total += 1
            if ring.sum() > 0:
                inside = image[mask].astype(np.float64).mean(axis=0)
                around = image[ring].astype(np.float64).mean(axis=0)
                low += np.linalg.norm(inside - around) < LOW_CONTRAST_DISTANCE
    return low / total


def test_hard_has_low_contrast_instances(hard, plain):
    assert low_contrast_share(plain) == 0.0
    assert low_contrast_share(hard) >= 0.1  # measured 0.29 (0.25 over 100 images)


def test_hard_has_strong_edges_inside_shapes_and_in_the_background(hard, plain):
    # Strong-gradient pixels farther than 1 px from every outline: none in the plain variant
    # (flat fills, a smooth background), many in the hard one, both inside shapes and outside.
    counts = {}
    for name, paths in (("hard", hard), ("plain", plain)):
        strong = inside = outside = 0
        for _, image, masks, _ in split_scenes(paths):
            edges = strong_gradient(image)
            off_outline = edges & ~near_outlines(masks)
            anyone = np.any(masks, axis=0)
            strong += np.count_nonzero(edges)
            inside += np.count_nonzero(off_outline & anyone)
            outside += np.count_nonzero(off_outline & ~anyone)
        counts[name] = (strong, inside, outside)
    strong, inside, outside = counts["plain"]
    assert strong > 0 and inside == outside == 0
    strong, inside, outside = counts["hard"]
    # measured: 17% inside, 58% outside (16% and 52% over 100 images)
    assert inside >= 0.1 * strong and outside >= 0.3 * strong
    assert inside + outside >= 0.5 * strong  # edges are outlines for at most half of them
