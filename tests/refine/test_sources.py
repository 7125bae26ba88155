"""GrabCut seeded by an annotation, and the vote of three masks: hand-made squares."""

import cv2
import numpy as np
import pytest
from refine_cases import squares_image
from samples import square

from noisy_mask.refine.sources import band_radius, grabcut_mask, grabcut_seed, vote_mask


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_band_scales_with_the_object():
    # round(0.1 x sqrt(area)), at least 1: 20 x 20 -> 2, 30 x 30 -> 3, 4 x 4 -> 1 (0.4 rounds to 0)
    assert [band_radius(a) for a in (400, 900, 16, 0)] == [2, 3, 1, 1]
    assert band_radius(400, 0.25) == 5


def test_seed_labels_the_band_around_the_outline():
    annotation = square(40, 40, 10, 10, 20)
    seed = grabcut_seed(annotation, 2)
    # erosion by a disc of radius 2 shrinks the square by 2 px on each side: 16 x 16 sure
    assert (seed == cv2.GC_FGD).sum() == 16 * 16
    assert (seed == cv2.GC_PR_FGD).sum() == 20 * 20 - 16 * 16
    # dilation by OpenCV's 5 x 5 ellipse (rows 00100, 11111, 11111, 11111, 00100) grows it 2 px
    # on each side, less the 2 pixels the ellipse lacks at each corner: 24 x 24 - 4 x 2
    assert (seed == cv2.GC_PR_BGD).sum() == 24 * 24 - 4 * 2 - 20 * 20
    thin = grabcut_seed(square(40, 40, 10, 10, 3), 2)  # erosion by 2 empties it; by 1 does not
    assert (thin == cv2.GC_FGD).sum() == 1


@pytest.mark.parametrize("grow", [3, 5])
def test_grabcut_recovers_a_square_from_a_dilated_seed(grow):
    truth = square(64, 64, 22, 22, 20)
    image = squares_image([(22, 22)], seed=1)
    seed = square(64, 64, 22 - grow, 22 - grow, 20 + 2 * grow)
    # the seed's IoU with the truth: 400 / 26^2 = 0.59 (3 px), 400 / 30^2 = 0.44 (5 px); the band
    # round(0.1 x 26) = 3 and round(0.1 x 30) = 3 px reaches the true outline from the seed's
    # with a 5 px dilation only with a wider band
    found = grabcut_mask(image, seed, band_ratio=0.1 if grow == 3 else 0.2)
    assert iou(seed, truth) < 0.6
    assert iou(found, truth) >= 0.95


def test_grabcut_recovers_a_square_from_an_eroded_seed():
    truth = square(64, 64, 22, 22, 20)
    seed = square(64, 64, 25, 25, 14)  # 3 px inside: IoU 196 / 400 = 0.49
    found = grabcut_mask(squares_image([(22, 22)], seed=2), seed, band_ratio=0.3)  # band 4 px
    assert iou(found, truth) >= 0.95


def test_grabcut_never_leaves_the_band_and_keeps_the_pieces_of_the_sure_foreground():
    image = squares_image([(10, 10), (34, 10)], seed=3)  # two squares 4 px apart
    seed = square(64, 64, 10, 10, 20)
    found = grabcut_mask(image, seed, band_ratio=0.2)  # band 4 px: reaches into the neighbour
    assert found is not None
    outside = cv2.dilate(seed.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    assert not (found & outside).any()
    assert iou(found, seed) >= 0.95  # the neighbour's edge inside the band is not taken


def test_grabcut_of_nothing_is_none():
    image = squares_image([], seed=0)
    assert grabcut_mask(image, np.zeros((64, 64), bool)) is None
    full = np.ones((64, 64), bool)  # fills its crop: no background to learn from
    assert grabcut_mask(image, full) is None


def test_grabcut_takes_a_grey_image_and_repeats_itself():
    truth = square(64, 64, 22, 22, 20)
    grey = squares_image([(22, 22)], seed=4)[:, :, 0]
    seed = square(64, 64, 19, 19, 26)
    first = grabcut_mask(grey, seed)
    assert iou(first, truth) >= 0.95
    assert np.array_equal(first, grabcut_mask(grey, seed))


def test_vote_is_two_of_three():
    a, b, c = square(8, 8, 0, 0, 4), square(8, 8, 0, 2, 4), square(8, 8, 2, 0, 4)
    vote = vote_mask([a, b, c])
    # a & b: rows 0-3, cols 2-3; a & c: rows 2-3, cols 0-3; b & c: rows 2-3, cols 2-3
    expected = np.zeros((8, 8), bool)
    expected[0:4, 2:4] = True
    expected[2:4, 0:4] = True
    assert np.array_equal(vote, expected)
    assert vote_mask([a, None, c]) is None
    assert vote_mask([a, square(8, 8, 4, 4, 4), np.zeros((8, 8), bool)]) is None  # empty vote
