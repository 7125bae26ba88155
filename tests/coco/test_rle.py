"""COCO RLE: the counts string decoded by hand and against pycocotools, uncompressed counts, a
segmentation's RLE, a window of a mask decoded and encoded alone, the window around masks, and
the IoU of two masks, empty ones included."""

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from samples import SQUARE, pycocotools_rle, rle, square, uncompressed_rle

from noisy_mask.coco.rle import (
    decode,
    decode_rle_counts,
    decode_window,
    encode_window,
    mask_iou,
    masks_box,
    to_rle,
    uncompressed_counts,
    window_around,
    window_runs,
)


def random_masks(trials: int = 30, seed: int = 1):
    """Masks of random sizes and densities; the first is all True (its first run is 0 long)."""
    rng = np.random.default_rng(seed)
    for trial in range(trials):
        height, width = rng.integers(1, 120, size=2)
        mask = rng.random((height, width)) < rng.random()
        if trial == 0:
            mask[:] = True
        yield mask


def test_decode_rle_counts_matches_pycocotools():
    """Runs from pycocotools' encoder decode to the run lengths of the column-major mask."""
    for mask in random_masks():
        counts = rle(mask)["counts"]
        assert decode_rle_counts(counts).tolist() == uncompressed_rle(mask)["counts"]


def test_decode_rle_counts_by_hand():
    # a character is 48 + value; runs 0, 1, 2 are stored as they are, run 3 adds run 1: 2 + 3 = 5
    assert decode_rle_counts("5392").tolist() == [5, 3, 9, 5]
    # 'P' = 48 + 0x20: group 0 with "more" set, then '1' = group 1: 0 + (1 << 5) = 32
    assert decode_rle_counts("P1").tolist() == [32]
    # 'A' = 48 + 0x11: group 17 with the sign bit, one group: 17 - 2^5 = -15
    assert decode_rle_counts("3A").tolist() == [3, -15]
    # a 16 x 16 mask with rows and columns 3..8 set: 3 * 16 + 3 = 51 off, then 6 on, 10 off, ...
    counts = decode_rle_counts(rle(square(16, 16, 3, 3, 6))["counts"]).tolist()
    assert counts[:4] == [51, 6, 10, 6] and sum(counts) == 256


@pytest.mark.parametrize(
    "counts, message",
    [
        ("ab~", "character '~' at position 2 is outside '0'..'o'"),
        ("0P", "the string ends in the middle of a run"),
        ("0" + "P" * 7 + "1", "run 1 at position 1 has 8 characters (at most 7)"),
        ("0\u00e9", "character '\u00e9' at position 1 is not ASCII"),
    ],
)
def test_decode_rle_counts_names_what_is_malformed(counts, message):
    with pytest.raises(ValueError) as error:
        decode_rle_counts(counts)
    assert str(error.value) == message


def test_uncompressed_counts_start_with_background():
    for mask in random_masks(10, seed=2):
        counts = uncompressed_counts(mask)
        assert counts == uncompressed_rle(mask)["counts"] and sum(counts) == mask.size
        encoded = mask_utils.frPyObjects({"size": list(mask.shape), "counts": counts}, *mask.shape)
        np.testing.assert_array_equal(mask_utils.decode(encoded), mask)
    assert uncompressed_counts(np.ones((2, 3))) == [0, 6]


def test_to_rle_of_polygons_and_both_rle_kinds_is_the_same_mask():
    mask = square(64, 64, 10, 10, 20)
    for segmentation in ([SQUARE], rle(mask), uncompressed_rle(mask)):
        np.testing.assert_array_equal(decode(to_rle(segmentation, 64, 64), 64, 64), mask)
    # a polygon list is the union of its polygons: two squares overlapping on 10 x 20 px
    shifted = [v + 10 if k % 2 == 0 else v for k, v in enumerate(SQUARE)]
    assert mask_utils.area(to_rle([SQUARE, shifted], 64, 64)) == 400 + 400 - 200
    assert not decode(None, 4, 5).any() and decode(None, 4, 5).shape == (4, 5)


def test_mask_iou_by_hand():
    a = pycocotools_rle(square(64, 64, 10, 10, 20))
    # moved 5 px right: overlap 15 x 20 = 300, union 400 + 400 - 300 = 500
    b = pycocotools_rle(square(64, 64, 10, 15, 20))
    assert mask_iou(a, b) == pytest.approx(0.6, abs=1e-12)
    assert mask_iou(a, a) == 1.0
    # disjoint: 0 / 800
    assert mask_iou(a, pycocotools_rle(square(64, 64, 40, 40, 20))) == 0.0


def test_mask_iou_of_empty_masks():
    """The one convention: 0 / 0 is NaN (no pixel in either mask: no match to measure); an empty
    mask against a non-empty one is 0 (a miss). None stands for an empty mask."""
    empty = pycocotools_rle(np.zeros((64, 64), dtype=bool))
    full = pycocotools_rle(square(64, 64, 10, 10, 20))
    assert math.isnan(mask_iou(empty, empty))
    assert math.isnan(mask_iou(None, None)) and math.isnan(mask_iou(None, empty))
    assert mask_iou(empty, full) == mask_iou(full, None) == mask_iou(None, full) == 0.0


def test_decode_window_equals_the_decoded_mask_cut():
    """Every kind of window (empty, one row or column, the whole mask, at the edges) of random
    masks, from compressed, pycocotools' and uncompressed RLEs, equals pycocotools' decode cut."""
    rng = np.random.default_rng(3)
    for mask in random_masks(trials=60, seed=2):
        height, width = mask.shape
        windows = [(0, 0, height, width), (0, 0, 0, 0), (height, width, height, width)]
        for _ in range(6):
            top, bottom = sorted(int(v) for v in rng.integers(0, height + 1, size=2))
            left, right = sorted(int(v) for v in rng.integers(0, width + 1, size=2))
            windows.append((top, left, bottom, right))
        for encoded in (rle(mask), pycocotools_rle(mask), uncompressed_rle(mask)):
            for top, left, bottom, right in windows:
                window = decode_window(encoded, top, left, bottom, right)
                assert window.dtype == bool
                assert np.array_equal(window, mask[top:bottom, left:right])


def test_decode_window_by_hand():
    # 3 x 3, column-major runs: 1 background, 4 foreground (rows 1-2 of column 0, rows 0-1 of
    # column 1), 4 background
    encoded = {"size": [3, 3], "counts": [1, 4, 4]}
    assert decode_window(encoded, 0, 0, 3, 3).astype(int).tolist() == [[0, 1, 0], [1, 1, 0],
                                                                       [1, 0, 0]]
    assert decode_window(encoded, 1, 1, 3, 2).astype(int).tolist() == [[1], [0]]


def test_decode_window_outside_the_mask_is_an_error():
    with pytest.raises(ValueError, match=r"outside 3 x 3"):
        decode_window({"size": [3, 3], "counts": [9]}, 0, 0, 4, 3)


def test_window_runs_and_encode_window_equal_the_whole_mask_encoded():
    """Random windows (whole columns included, where runs join across columns; at the edges;
    empty) placed in random images give pycocotools' own RLE of the whole mask."""
    rng = np.random.default_rng(4)
    for window in random_masks(trials=60, seed=5):
        h, w = window.shape
        height, width = h + int(rng.integers(0, 4)), w + int(rng.integers(0, 4))
        for top, left in {(0, 0), (height - h, width - w), (int(rng.integers(0, height - h + 1)),
                                                            int(rng.integers(0, width - w + 1)))}:
            whole = np.zeros((height, width), dtype=bool)
            whole[top : top + h, left : left + w] = window
            assert window_runs(window, top, left, height, width) == uncompressed_counts(whole)
            assert encode_window(window, top, left, height, width) == pycocotools_rle(whole)
    assert window_runs(np.zeros((0, 0), bool), 0, 0, 2, 3) == [6]


def test_window_runs_by_hand():
    # a 2 x 1 window at row 1, column 1 of a 4 x 3 image: flat positions 5 and 6 (column 1 holds
    # 4 to 7): 5 background, 2 foreground, 5 background
    assert window_runs(np.ones((2, 1), bool), 1, 1, 4, 3) == [5, 2, 5]
    # a whole-height 2 x 2 window at column 0 of a 2 x 2 image: one run of 4 that starts at 0
    assert window_runs(np.ones((2, 2), bool), 0, 0, 2, 2) == [0, 4]
    with pytest.raises(ValueError, match=r"a 2 x 1 window at \(3, 0\) is outside 4 x 3"):
        window_runs(np.ones((2, 1), bool), 3, 0, 4, 3)


def test_window_around_the_masks_by_hand():
    a = pycocotools_rle(square(64, 48, 10, 20, 5))  # rows 10 to 15, columns 20 to 25 (exclusive)
    b = pycocotools_rle(square(64, 48, 40, 2, 4))  # rows 40 to 44, columns 2 to 6
    empty = pycocotools_rle(np.zeros((64, 48), bool))
    assert masks_box([a, b, None, empty]) == (2.0, 10.0, 25.0, 44.0)  # x0, y0, x1, y1
    # (top, left, bottom, right) grown by 3 px, the left edge cut at 0; 64 rows x 48 columns
    assert window_around([a, b], 3) == (7, 0, 47, 28)
    assert window_around([a], 0) == (10, 20, 15, 25)
    assert window_around([a], 40) == (0, 0, 55, 48)
    assert masks_box([empty, None]) is None and window_around([empty, None], 3) is None
