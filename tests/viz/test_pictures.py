"""The pictures: the per-instance noise text, the noise cell's pixels (hand-made), and the PNGs
(size, layout, same bytes twice) drawn from a 6-image shapes dataset, its noisy copy and two
run folders; and a mask brought to the displayed size from its box alone."""

import numpy as np
from samples import hand_made_noise, png_pixels, pycocotools_rle, square

from noisy_mask.noise.matching import DELETED, KEPT, InstanceNoise, match_noise
from noisy_mask.viz.drawing import hatch, hex_to_rgb, outline, resize_mask
from noisy_mask.viz.layout import GAP_X, MARGIN
from noisy_mask.viz.pictures import (
    CLEAN_COLOUR,
    DASH,
    MAX_LINES,
    NOISY_COLOUR,
    draw_noise_grid,
    draw_predictions_grid,
    instance_text,
    mask_at_size,
    noise_cell,
)


def test_mask_at_size_equals_the_whole_mask_resized():
    """Masks of random boxes (at the edges, one pixel, empty, None) shrunk and enlarged."""
    rng = np.random.default_rng(5)
    for trial in range(100):
        height, width = (int(v) for v in rng.integers(1, 300, size=2))
        mask = np.zeros((height, width), dtype=bool)
        if trial % 10:
            top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
            rows, cols = (int(v) for v in rng.integers(1, 80, size=2))
            mask[top : top + rows, left : left + cols] = rng.random((rows, cols))[
                : height - top, : width - left] < 0.7  # fmt: skip
        size = tuple(int(v) for v in rng.integers(1, 300, size=2))
        drawn = mask_at_size(pycocotools_rle(mask), height, width, size)
        np.testing.assert_array_equal(drawn, resize_mask(mask, size))
    assert not mask_at_size(None, 40, 30, (20, 15)).any()
    assert mask_at_size(None, 40, 30, (20, 15)).shape == (20, 15)


def test_instance_text():
    matches = match_noise(*hand_made_noise())
    names = {1: "circle", 2: "star"}
    assert instance_text(matches[0], names) == "circle  IoU 0.60"
    assert instance_text(matches[1], names) == "circle  deleted"
    assert instance_text(matches[2], names) == "flip: star\u2192circle  IoU 1.00"


def test_noise_cell_marks_deleted_and_flipped():
    clean, noisy = hand_made_noise()
    matches = match_noise(clean, noisy)
    masks = {
        1: (square(64, 64, 10, 10, 20), square(64, 64, 10, 15, 20)),
        2: (square(64, 64, 10, 40, 20), None),
        3: (square(64, 64, 40, 40, 20), square(64, 64, 40, 40, 20)),
    }
    instances = [
        (m, pycocotools_rle(masks[m.ann_id][0]), pycocotools_rle(masks[m.ann_id][1]))
        for m in matches
    ]
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    cell = noise_cell(image, clean["images"][0], instances, {1: "circle", 2: "star"}, cell=64)
    assert cell.lines == [
        "1. circle  IoU 0.60",
        "2. circle  deleted",
        "3. flip: star\u2192circle  IoU 1.00",
    ]
    assert cell.heading == "image 1 (1.png), mean IoU 0.80"  # (0.6 + 1.0) / 2
    # The deleted square gets a dashed clean outline and hatching in the clean colour, and no
    # noisy outline (its tag is drawn later, as text, not into the canvas).
    deleted = masks[2][0]
    is_clean = np.all(cell.image == hex_to_rgb(CLEAN_COLOUR), axis=2)
    np.testing.assert_array_equal(is_clean & deleted, outline(deleted, 3, DASH) | hatch(deleted))
    assert not np.any(np.all(cell.image == hex_to_rgb(NOISY_COLOUR), axis=2) & deleted)
    # Square 3 has the same clean and noisy mask: the noisy 2-px outline covers the outer two
    # pixels of the clean 3-px one, whose inner pixel stays visible.
    kept = masks[3][0]
    is_noisy = np.all(cell.image == hex_to_rgb(NOISY_COLOUR), axis=2)
    np.testing.assert_array_equal(is_noisy & kept, outline(kept, 2))
    np.testing.assert_array_equal(is_clean & kept, outline(kept, 3) & ~outline(kept, 2))
    assert [t[2] for t in cell.tags] == ["1", "2", "3"]


def test_noise_cell_sums_up_instances_beyond_the_line_limit():
    # 10 instances (4x4 squares along a diagonal), the last one deleted: lines 1..7 are listed,
    # the 8th line sums up instances 8, 9 and 10.
    image = {"id": 7, "height": 64, "width": 64, "file_name": "7.png"}
    instances = []
    for k in range(10):
        status = DELETED if k == 9 else KEPT
        match = InstanceNoise(k + 1, None if k == 9 else 1.0, status, 7, 1, None if k == 9 else 1)
        mask = pycocotools_rle(square(64, 64, 6 * k, 6 * k, 4))
        instances.append((match, mask, None if k == 9 else mask))
    cell = noise_cell(np.zeros((64, 64, 3), np.uint8), image, instances, {1: "circle"}, cell=64)
    assert len(cell.lines) == MAX_LINES == 8
    assert cell.lines[6] == "7. circle  IoU 1.00"
    assert cell.lines[7] == "\u2026 3 more (1 deleted, 0 flipped)"
    assert len(cell.tags) == 10


def test_noise_grid_png(noisy_shapes, tmp_path):
    args = (noisy_shapes["val_json"], noisy_shapes["noisy"], noisy_shapes["val_images"])
    first = draw_noise_grid(*args, tmp_path / "a" / "noise.png", num=6, seed=0)
    second = draw_noise_grid(*args, tmp_path / "b.png", num=6, seed=0)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in first.parent.iterdir()) == ["noise.png"]  # no temporary left
    pixels = png_pixels(first)
    # 3 columns of 360 px: 16 + 3 * 360 + 2 * 16 + 16 = 1144 px wide; two rows of 360 px images.
    assert pixels.shape[1] == 2 * MARGIN + 3 * 360 + 2 * GAP_X == 1144
    assert pixels.shape[0] > 2 * 360
    # Both outline colours are in the picture.
    for colour in (CLEAN_COLOUR, NOISY_COLOUR):
        assert np.all(pixels == hex_to_rgb(colour), axis=2).sum() > 500
    third = draw_noise_grid(*args, tmp_path / "c.png", num=6, seed=0, image_ids=[2, 4], columns=2)
    assert png_pixels(third).shape[1] == 2 * MARGIN + 2 * 360 + GAP_X


def test_predictions_grid_png(noisy_shapes, shapes_runs, tmp_path):
    args = (
        [shapes_runs["bce"], shapes_runs["dice"]],
        noisy_shapes["val_images"],
        noisy_shapes["val_json"],
    )
    first = draw_predictions_grid(*args, tmp_path / "p1.png", labels=["BCE", "Dice"], num=3)
    second = draw_predictions_grid(*args, tmp_path / "p2.png", labels=["BCE", "Dice"], num=3)
    assert first.read_bytes() == second.read_bytes()
    pixels = png_pixels(first)
    # A ground-truth column and two runs of 288 px: 16 + 3 * 288 + 2 * 16 + 16 = 928 px.
    assert pixels.shape[1] == 2 * MARGIN + 3 * 288 + 2 * GAP_X == 928
    assert pixels.shape[0] > 3 * 288
    by_id = draw_predictions_grid(*args, tmp_path / "p3.png", image_ids=[1], score_threshold=0.2)
    assert png_pixels(by_id).shape[1] == 928
