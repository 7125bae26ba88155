"""Pixels of the pictures: exact outline, dash, hatch, fill and grey pixels of hand-made squares,
faded pixels, the label point of a mask, and masks resized against OpenCV."""

import cv2
import numpy as np
from samples import square

from noisy_mask.viz.drawing import (
    draw_outline,
    erode,
    fade,
    fill_mask,
    grey,
    hatch,
    hex_to_rgb,
    label_point,
    nearest_indices,
    outline,
    resize_mask,
)

RED = (255, 0, 0)


def test_outline_of_a_square_is_its_border_ring():
    # A 20x20 square at rows 10..29, cols 15..34. Its erosion by a 3x3 square keeps rows 11..28,
    # cols 16..33 (18x18), so the outline is the ring of 400 - 324 = 76 pixels on its border.
    mask = square(50, 60, 10, 15, 20)
    ring = mask.copy()
    ring[11:29, 16:34] = False
    assert erode(mask).sum() == 324
    np.testing.assert_array_equal(outline(mask), ring)

    image = np.full((50, 60, 3), 7, dtype=np.uint8)
    drawn = draw_outline(image, mask, "#D55E00")
    changed = np.any(drawn != image, axis=2)
    np.testing.assert_array_equal(changed, ring)
    assert tuple(drawn[10, 15]) == (213, 94, 0) and tuple(drawn[29, 34]) == (213, 94, 0)
    assert tuple(drawn[11, 16]) == (7, 7, 7)  # first interior pixel untouched
    assert tuple(image[10, 15]) == (7, 7, 7)  # the input is not modified

    # Thickness 2: the erosion by a 5x5 square leaves 16x16, so 400 - 256 = 144 pixels.
    thick = outline(mask, thickness=2)
    assert thick.sum() == 144 and thick[11, 16] and not thick[12, 17]


def test_outline_at_the_image_border_and_dashes():
    # The image border counts as background: a full mask's outline is the image's border ring.
    full = np.ones((6, 8), dtype=bool)
    assert outline(full).sum() == 6 * 8 - 4 * 6
    # Dashes keep (y // d + x // d) even. Top edge of the square above (y = 10, 10 // 4 = 2):
    # x // 4 even, so of x = 15..34 the dashes are 16..19, 24..27 and 32..34.
    dashed = outline(square(50, 60, 10, 15, 20), dash=4)
    assert np.flatnonzero(dashed[10]).tolist() == [16, 17, 18, 19, 24, 25, 26, 27, 32, 33, 34]


def test_fill_grey_and_label_point():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[...] = (13, 194, 100)
    mask = square(4, 4, 0, 0, 2)
    filled = fill_mask(image, mask, "#D55E00", 0.5)
    # (1 - 0.5) * (13, 194, 100) + 0.5 * (213, 94, 0) = (113, 144, 50) on the mask only.
    assert tuple(filled[0, 0]) == (113, 144, 50) and tuple(filled[3, 3]) == (13, 194, 100)
    # 0.299 * 255 = 76.245 -> 76; 0.587 * 255 = 149.685 -> 150.
    assert grey(np.array([[RED, (0, 255, 0)]], dtype=np.uint8)).tolist() == [
        [[76, 76, 76], [150, 150, 150]]
    ]
    assert hex_to_rgb("#0072B2") == (0, 114, 178)
    # Square cols 15..34, rows 10..29: the centre pixels 24 and 25 are both 10 px from the
    # background (col 14 or 35); the first in row order is (x, y) = (24, 19).
    assert label_point(square(50, 60, 10, 15, 20)) == (24, 19)
    assert label_point(np.zeros((5, 5), dtype=bool)) is None
    # Hatching keeps (x + y) mod 3 < 1 of the mask: the anti-diagonals x + y = 0, 3, 6.
    lines = hatch(np.ones((3, 5), dtype=bool), period=3, width=1)
    assert lines.astype(int).tolist() == [[1, 0, 0, 1, 0], [0, 0, 1, 0, 0], [0, 1, 0, 0, 1]]


def test_fade_by_hand_and_as_a_fill_of_every_pixel():
    image = np.array([[[0, 100, 255], [13, 194, 1]]], dtype=np.uint8)
    # 0.7 p + 0.3 x 255 = 0.7 p + 76.5: 0 -> 76.5 -> 76 (np.rint), 100 -> 146.5 -> 146,
    # 255 -> 255, 13 -> 85.6 -> 86, 194 -> 212.3 -> 212, 1 -> 77.2 -> 77
    assert fade(image, 0.3).tolist() == [[[76, 146, 255], [86, 212, 77]]]
    pixels = np.random.default_rng(0).integers(0, 256, size=(9, 11, 3)).astype(np.uint8)
    for amount in (0.0, 0.3, 0.45, 1.0):
        everything = np.ones(pixels.shape[:2], dtype=bool)
        faded_everywhere = fill_mask(pixels, everything, "#FFFFFF", amount)
        assert np.array_equal(fade(pixels, amount), faded_everywhere)


def test_nearest_indices_by_hand():
    # 10 source pixels to 4: floor(i x 2.5) = 0, 2, 5, 7; to 25 (enlarged): floor(i x 0.4)
    assert nearest_indices(4, 10).tolist() == [0, 2, 5, 7]
    assert nearest_indices(25, 10).tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 5, 5,
                                                6, 6, 6, 7, 7, 8, 8, 8, 9, 9]  # fmt: skip
    # 2 to 98: 49 x (1 / 49) is just below 1 in double precision, so pixel 49 still takes 0
    assert nearest_indices(98, 2)[48:51].tolist() == [0, 0, 1]


def test_resize_mask_equals_opencv_nearest():
    rng = np.random.default_rng(7)
    for _ in range(200):
        height, width = (int(v) for v in rng.integers(1, 400, size=2))
        size = tuple(int(v) for v in rng.integers(1, 400, size=2))
        mask = rng.random((height, width)) < 0.5
        reference = cv2.resize(mask.astype(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST)
        np.testing.assert_array_equal(resize_mask(mask, size), reference.astype(bool))
