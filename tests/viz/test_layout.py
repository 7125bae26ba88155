"""The grid layout: an image lands unresampled, centred in its column, at the expected pixels."""

import numpy as np
from samples import png_pixels

from noisy_mask.viz.layout import GAP_X, MARGIN, Cell, render_grid
from noisy_mask.viz.style import save_figure

RED = (255, 0, 0)


def test_render_grid_places_images_pixel_exact(tmp_path):
    # A 40x30 block of a colour found nowhere else must land, unresampled, centred in a 100 px
    # wide column: x from 16 + (100 - 30) // 2 = 51 to 80.
    block = np.zeros((40, 30, 3), dtype=np.uint8)
    block[...] = (1, 2, 3)
    block[0, 0] = RED
    rows = [[Cell(block, "heading", ["a line"]), Cell(block.copy(), "", [])]]
    fig = render_grid(rows, 100, "title", [], "note")
    pixels = png_pixels(save_figure(fig, tmp_path / "grid.png"))
    assert pixels.shape[1] == 2 * MARGIN + 2 * 100 + GAP_X
    ys, xs = np.nonzero(np.all(pixels == (1, 2, 3), axis=2) | np.all(pixels == RED, axis=2))
    left = xs < 16 + 100
    assert (xs[left].min(), xs[left].max()) == (51, 80)
    assert ys[left].max() - ys[left].min() == 39 and left.sum() == 40 * 30
    assert tuple(pixels[ys[left].min(), 51]) == RED  # row 0 at the top
