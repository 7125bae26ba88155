"""Boundary IoU's band against the thickness of the objects: depth and thickness checked against
faster-coco-eval's own boundaries, boundary AP of a rod derived by hand for three ratios, and the
warning for thin rods (once), not for blobs.

Geometry: ROD_IMAGE = 320 px images (diagonal 452.55 px), rods 17 x 100 px. A band of d px is the
rod minus its erosion by d 3 x 3 squares, i.e. minus the (17 - 2d) x (100 - 2d) core. Ratio 0.02
gives d = round(9.05) = 9, 0.0066 gives round(2.99) = 3, 0.002 gives max(1, round(0.91)) = 1.
"""

import contextlib
import logging

import numpy as np
import pytest
from faster_coco_eval.core import mask as fcoco_mask
from samples import (
    ROD_IMAGE,
    disc,
    masks_coco,
    pycocotools_rle,
    rod,
    rod_results,
    rods_coco,
    write_json,
)

from noisy_mask.evaluation.boundary import band_check, band_px, mask_depth, thin_instances_message
from noisy_mask.evaluation.coco_eval import evaluate_coco_json


@contextlib.contextmanager
def warnings_logged():
    """The records that noisy_mask.evaluation.boundary logs meanwhile (whatever the handlers and
    propagation of the loggers above it)."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("noisy_mask.evaluation.boundary")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


# ---------------------------------------------------------------------------------------------
# Depth, thickness and the band.


def test_band_in_pixels():
    # max(1, round(ratio * diagonal)): 0.02 * 452.55 = 9.05; 0.02 * 800 (640 x 480) = 16
    assert band_px(0.02, 320, 320) == 9 and band_px(0.02, 480, 640) == 16
    assert band_px(0.001, 320, 320) == 1  # 0.45 rounds to 0: at least 1 px


def square_mask(size, top, left, side, height=None):
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + (height or side), left : left + side] = True
    return mask


def test_depth_by_hand():
    # a bar w px wide takes ceil(w / 2) erosions: 17 -> 9, 18 -> 9 (thickness 18 either way)
    assert mask_depth(rod(100, 100)) == 9
    assert mask_depth(square_mask(64, 5, 5, 18, height=40)) == 9
    assert mask_depth(square_mask(64, 10, 10, 20)) == 10
    # the image border counts as background: a bar 5 px wide against the left edge -> 3
    assert mask_depth(square_mask(64, 10, 0, 5, height=30)) == 3
    assert mask_depth(np.zeros((8, 8), dtype=bool)) == 0
    # a disc of radius 40: the square erodes it along the diagonals, at about 40 / sqrt(2)
    assert mask_depth(disc(160, 160, 40)) == 28


MASKS = {
    "rod": rod(100, 100),
    "square": square_mask(96, 20, 30, 20),
    "disc": disc(48, 48, 30, size=96),
    "ring": square_mask(96, 10, 10, 40) & ~square_mask(96, 22, 22, 16),
    "at_the_border": square_mask(96, 0, 0, 13, height=50),
    "two_parts": square_mask(96, 5, 5, 6) | square_mask(96, 50, 50, 30),
}


@pytest.mark.parametrize("name", sorted(MASKS))
def test_the_band_holds_the_whole_mask_exactly_when_depth_is_at_most_the_band(name):
    # Reference: faster-coco-eval's boundary of the mask (what boundary AP compares).
    mask = MASKS[name]
    height, width = mask.shape
    depth = mask_depth(mask)
    encoded = fcoco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    for band in range(1, 20):
        ratio = band / np.hypot(height, width)  # exactly `band` px
        assert band_px(ratio, height, width) == band
        boundary = fcoco_mask.decode(fcoco_mask.rleToBoundary(encoded, ratio)).astype(bool)
        assert np.array_equal(boundary, mask) == (depth <= band), (name, band, depth)


# ---------------------------------------------------------------------------------------------
# Boundary AP of a rod predicted 1 px to the right.


@pytest.mark.parametrize(
    "ratio, boundary_ap",
    [
        # d = 9: the band holds both rods (depth 9): boundary IoU = mask IoU = 8/9 -> AP 80.
        (0.02, 80.0),
        # d = 3: |G| = |D| = 1700 - 11 * 94 = 666; G & D = 2 * 3 * 16 (top and bottom rows) +
        # 94 * 4 (columns 1, 2, 15, 16 of the middle rows) = 472; IoU 472 / 860 = 0.549 -> AP 10.
        (0.0066, 10.0),
        # d = 1: |G| = 1700 - 15 * 98 = 230; G & D = 2 * 16 = 32; IoU 32 / 428 = 0.075 -> AP 0.
        (0.002, 0.0),
    ],
)
def test_boundary_ap_of_a_shifted_rod_follows_the_ratio(ratio, boundary_ap):
    # mask IoU: 16 * 100 / (18 * 100) = 8/9, matched at 0.50 ... 0.85 (8 of 10 thresholds): AP 80
    gt = rods_coco(num_images=1)
    out = evaluate_coco_json(
        gt, rod_results(gt, 1), ("segm", "boundary"), boundary_dilation_ratio=ratio
    )
    assert out["segm"]["metrics"]["AP"] == pytest.approx(80.0)
    assert out["boundary"]["metrics"]["AP"] == pytest.approx(boundary_ap)
    assert out["boundary"]["band"]["dilation_ratio"] == ratio


# ---------------------------------------------------------------------------------------------
# The warning.


def test_thin_rods_are_warned_about_once_with_the_ratio_that_resolves_them(tmp_path):
    gt = rods_coco(num_images=2)  # 6 rods, thickness 2 * 9 = 18 <= 2 * 9: all thin
    path = write_json(tmp_path / "rods.json", gt)
    with warnings_logged() as records:
        out = evaluate_coco_json(path, rod_results(gt, 1), ("segm", "boundary"))
        evaluate_coco_json(path, rod_results(gt, 1), ("boundary",))  # the same file: no repeat
    # suggested: 18 / (4 * 452.55) = 0.00994 -> 0.0099, a band of round(4.48) = 4 px: 18 > 8
    assert [r.getMessage() for r in records] == [
        f"Boundary AP on {path}: 100% of the 6 ground-truth instances measured are no thicker than "
        "twice the band of Boundary IoU (dilation ratio 0.02: 9 px at the median image diagonal), "
        "so the band holds their whole mask and their boundary AP is mask AP, blind to the "
        "outlines. Median thickness 18 px: TEST.BOUNDARY_DILATION_RATIO 0.0099 makes the band a "
        "quarter of it (0% stay thin)"
    ]
    assert out["boundary"]["band"] == {
        "dilation_ratio": 0.02,
        "band_px": 9,
        "instances": 6,
        "median_thickness": 18.0,
        "thin_share": 1.0,
        "suggested_ratio": 0.0099,
        "thin_share_at_suggested": 0.0,
    }
    # At the suggested ratio the outline counts: d = 4, |G| = 1700 - 9 * 92 = 872, G & D =
    # 2 * 4 * 16 + 92 * 6 = 680, IoU 680 / 1064 = 0.639 -> AP 30, against mask AP 80.
    with warnings_logged() as records:
        again = evaluate_coco_json(path, rod_results(gt, 1), ("boundary",),
                                   boundary_dilation_ratio=0.0099)  # fmt: skip
    assert records == [] and again["boundary"]["metrics"]["AP"] == pytest.approx(30.0)


def test_blobs_are_not_warned_about_and_a_thin_half_is_not_most():
    # discs of radius 40: thickness 2 * 28 = 56 > 18
    blobs = masks_coco([[disc(80, 80, 40), disc(220, 200, 40)]])
    with warnings_logged() as records:
        out = evaluate_coco_json(blobs, [], ("boundary",))
    assert records == [] and out["boundary"]["band"]["thin_share"] == 0.0
    assert out["boundary"]["band"]["median_thickness"] == 56.0
    # 2 rods and 2 discs: half thin, not most; 3 rods and 2 discs: 60 %
    half = masks_coco([[rod(40, 100), rod(140, 100), disc(260, 60, 40), disc(260, 220, 40)]])
    assert band_check(half, 0.02)["thin_share"] == 0.5
    assert thin_instances_message(band_check(half, 0.02), "half.json") is None
    most = masks_coco([[rod(20, 100), rod(80, 100), rod(140, 100), disc(260, 60, 40),
                        disc(260, 220, 40)]])  # fmt: skip
    assert band_check(most, 0.02)["thin_share"] == 0.6
    assert thin_instances_message(band_check(most, 0.02), "most.json").startswith(
        "Boundary AP on most.json: 60% of the 5 ground-truth instances measured"
    )


def test_lines_2_px_wide_cannot_be_resolved():
    # thickness 2: the band is at least 1 px, and 2 <= 2 * 1
    lines = [square_mask(ROD_IMAGE, 20 + 40 * i, 30, 200, height=2) for i in range(4)]
    check = band_check(masks_coco([lines]), 0.02)
    # suggested 2 / (4 * 452.55) = 0.0011; band max(1, round(0.5)) = 1: all still thin
    assert (check["median_thickness"], check["suggested_ratio"]) == (2.0, 0.0011)
    assert thin_instances_message(check, "lines.json").endswith(
        "Median thickness 2 px: no ratio resolves them, as the band is at least 1 px (100% stay "
        "thin at 0.0011, the ratio of a band a quarter of the median thickness)"
    )


def test_crowd_and_empty_instances_are_not_measured():
    gt = rods_coco(num_images=1)
    gt["annotations"][0]["iscrowd"] = 1
    empty = np.zeros((ROD_IMAGE, ROD_IMAGE), dtype=bool)
    gt["annotations"][1]["segmentation"] = {
        "size": [ROD_IMAGE, ROD_IMAGE],
        "counts": pycocotools_rle(empty)["counts"].decode("ascii"),
    }
    assert band_check(gt, 0.02)["instances"] == 1
    no_instances = band_check(dict(gt, annotations=[]), 0.02)
    assert no_instances["instances"] == 0 and no_instances["thin_share"] is None
    assert thin_instances_message(no_instances, "none.json") is None
