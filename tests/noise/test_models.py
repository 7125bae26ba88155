"""The noise models on hand-made masks and polygons: sizes scaled to an instance, dilation and
erosion, outlines traced and simplified, vertices jittered."""

import math

import numpy as np
import pytest
from samples import SQUARE, square

from noisy_mask.noise.models import (
    instance_sizes,
    jitter_polygon,
    mask_to_polygons,
    morph_mask,
    noise_instance,
    rasterize_polygons,
    simplify_polygon,
)


def test_instance_sizes_scale_floor_and_cap():
    big = 1e6  # area with a cap (0.25 * 1000 = 250 px) that never binds
    # 640 px: sizes unchanged; radius of 5 = max(1, round_half_up((5 - 1) / 2)) = 2 -> 5
    assert instance_sizes(10, 3, 5, 640, big) == (10.0, 3.0, 5, False)
    # 1280 px, s = 2: 20, 6; kernel radius round_half_up((10 - 1) / 2 = 4.5) = 5 -> 11
    assert instance_sizes(10, 3, 5, 1280, big) == (20.0, 6.0, 11, False)
    # 192 px, s = 0.3: 15 * 0.3 = 4.5, 4 * 0.3 = 1.2; radius round_half_up((2.1 - 1) / 2) = 1 -> 3
    sizes = instance_sizes(15, 4, 7, 192, big)
    assert (sizes.tolerance, sizes.sigma, sizes.kernel) == (
        pytest.approx(4.5),
        pytest.approx(1.2),
        3,
    )
    # 64 px, s = 0.1: 5 * 0.1 = 0.5 and 2 * 0.1 = 0.2 -> floor 0.5; kernel 3 * 0.1 -> floor 3
    sizes = instance_sizes(5, 2, 3, 64, big)
    assert (sizes.tolerance, sizes.sigma, sizes.kernel) == (pytest.approx(0.5), 0.5, 3)
    # a 20 x 20 instance: cap 0.25 * 20 = 5 px; radius 3 <= 5 stays
    assert instance_sizes(10, 3, 7, 640, 400) == (5.0, 3.0, 7, True)
    # a 10 x 10 instance: cap 2.5 px, kernel radius <= floor(2.5) = 2 -> 5
    assert instance_sizes(10, 3, 7, 640, 100) == (2.5, 2.5, 5, True)
    # a 2 x 2 instance: cap 0.5 px, kernel radius <= max(1, 0) -> 3, sigma 0.5
    assert instance_sizes(10, 3, 7, 640, 4) == (0.5, 0.5, 3, True)
    # switched off stays off
    assert instance_sizes(0, 0, 0, 640, big) == (0.0, 0.0, 0, False)


@pytest.mark.parametrize("kernel,grown,shrunk", [(3, 22 * 22, 18 * 18), (5, 24 * 24, 16 * 16)])
def test_morph_mask_moves_edges_by_half_the_kernel(kernel, grown, shrunk):
    # a k x k square moves each edge of the 20 x 20 square by (k - 1) / 2 px
    mask = square(64, 64, 10, 10, 20).astype(np.uint8)
    assert morph_mask(mask, kernel, grow=True).sum() == grown
    assert morph_mask(mask, kernel, grow=False).sum() == shrunk
    np.testing.assert_array_equal(morph_mask(mask, 3, True), square(64, 64, 9, 9, 22))


def test_trace_rasterizes_back_to_the_same_mask():
    # pixel (row 3, column 2) is traced to a square a quarter pixel inside it:
    # x in 2.25..2.75, y in 3.25..3.75
    pixel = np.zeros((6, 6), dtype=np.uint8)
    pixel[3, 2] = 1
    (polygon,) = mask_to_polygons(pixel)
    assert sorted(map(tuple, polygon)) == [(2.25, 3.25), (2.25, 3.75), (2.75, 3.25), (2.75, 3.75)]
    # random masks, holes included: pycocotools gives back exactly the mask
    rng = np.random.default_rng(0)
    for _ in range(30):
        mask = (rng.random((25, 31)) < 0.5).astype(np.uint8)
        polygons = mask_to_polygons(mask, holes=True)
        np.testing.assert_array_equal(rasterize_polygons(polygons, 25, 31, even_odd=True), mask)


def test_simplify_reduces_vertices():
    # a square with 10 collinear points per side is 4 vertices to Douglas-Peucker
    t = np.linspace(0, 1, 10, endpoint=False)
    side = [
        np.stack([10 + 20 * t, np.full(10, 10.0)], 1),
        np.stack([np.full(10, 30.0), 10 + 20 * t], 1),
    ]
    side += [
        np.stack([30 - 20 * t, np.full(10, 30.0)], 1),
        np.stack([np.full(10, 10.0), 30 - 20 * t], 1),
    ]
    square = np.concatenate(side)
    simplified = simplify_polygon(square, 0.5)
    assert len(square) == 40 and len(simplified) == 4
    assert sorted(map(tuple, simplified)) == [(10, 10), (10, 30), (30, 10), (30, 30)]
    # a 64-gon of radius 30: a 2 px tolerance keeps between 4 and 63 of its vertices,
    # and each kept vertex is one of the input's
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    circle = 40 + 30 * np.stack([np.cos(angles), np.sin(angles)], 1)
    simplified = simplify_polygon(circle, 2.0)
    assert 4 <= len(simplified) < 64
    assert (
        np.abs(simplified[:, None, :] - circle[None].astype(np.float32)).sum(2).min(1).max() < 1e-4
    )


def test_jitter_sigma_zero_is_identity_and_sigma_sets_the_spread():
    polygon = np.random.default_rng(0).uniform(0, 100, (2000, 2))
    np.testing.assert_array_equal(jitter_polygon(polygon, 0.0, np.random.default_rng(1)), polygon)
    moved = jitter_polygon(polygon, 2.0, np.random.default_rng(1)) - polygon
    # 4000 N(0, 2^2) draws: sample std within 5% of 2 (its standard error is 2 / sqrt(8000))
    assert np.std(moved) == pytest.approx(2.0, rel=0.05)
    assert abs(np.mean(moved)) < 0.1


def test_instance_iou_follows_the_mask_iou_convention():
    # coco.rle.mask_iou: IoU 1 for a mask left as it is, NaN for an empty one (0 / 0).
    rng = np.random.default_rng(0)
    empty = {"size": [64, 64], "counts": [64 * 64]}
    segmentation, _, area, stats = noise_instance(empty, 64, 64, 10.0, 3.0, 5, rng)
    assert segmentation == empty and area == 0 and stats["empty_clean"]
    assert math.isnan(stats["iou"])
    _, _, area, stats = noise_instance([SQUARE], 64, 64, 0.0, 0.0, 0, rng)
    assert (area, stats["iou"]) == (400.0, 1.0)
    # kernel 3: a 22 x 22 (dilated) or 18 x 18 (eroded) square, IoU 400 / 484 or 324 / 400
    _, _, area, stats = noise_instance([SQUARE], 64, 64, 0.0, 0.0, 3, rng)
    expected = 400 / 484 if stats["grow"] else 324 / 400
    assert area == (484.0 if stats["grow"] else 324.0)
    assert stats["iou"] == pytest.approx(expected, abs=1e-12)
