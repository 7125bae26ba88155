"""Pixels of the pictures: pure numpy functions of images ((H, W, 3) uint8 RGB) and masks
((H, W) bool). Outlines (optionally dashed), hatching, fills, fading, grey levels, the point where
a mask's label goes, and resizing to the displayed size."""

from typing import Optional, Tuple

import cv2
import numpy as np

Colour = Tuple[int, int, int]

HATCH_PERIOD, HATCH_WIDTH = 6, 2  # `hatch`'s diagonal lines (across a deleted instance)
FADE = 0.45  # the image is blended this far towards white so that the outlines stand out


def hex_to_rgb(colour: str) -> Colour:
    """'#D55E00' -> (213, 94, 0)."""
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def erode(mask: np.ndarray, radius: int = 1) -> np.ndarray:
    """Binary erosion by a (2r + 1) x (2r + 1) square, outside the image counting as background:
    e(y, x) = AND over |dy|, |dx| <= r of mask(y + dy, x + dx)."""
    mask = np.asarray(mask, dtype=bool)
    if radius <= 0:
        return mask.copy()
    height, width = mask.shape
    padded = np.pad(mask, radius, constant_values=False)
    out = np.ones_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out &= padded[dy : dy + height, dx : dx + width]
    return out


def outline(mask: np.ndarray, thickness: int = 1, dash: int = 0) -> np.ndarray:
    """The inner outline of `mask`, t = `thickness` pixels wide: the mask minus its erosion by a
    (2t + 1) x (2t + 1) square, i.e. the mask pixels within Chebyshev distance t of a background
    pixel (or of the image border).

    dash > 0 keeps only the pixels with (y // dash + x // dash) even: a checkerboard of dash x dash
    blocks, which cuts a line of any direction into dashes.
    """
    mask = np.asarray(mask, dtype=bool)
    line = mask & ~erode(mask, thickness)
    if dash > 0:
        ys, xs = np.indices(mask.shape)
        line &= (ys // dash + xs // dash) % 2 == 0
    return line


def hatch(mask: np.ndarray, period: int = HATCH_PERIOD, width: int = HATCH_WIDTH) -> np.ndarray:
    """Diagonal lines across the mask: the mask pixels with (x + y) mod period < width."""
    mask = np.asarray(mask, dtype=bool)
    ys, xs = np.indices(mask.shape)
    return mask & ((xs + ys) % period < width)


def draw_outline(
    image: np.ndarray, mask: np.ndarray, colour, thickness: int = 1, dash: int = 0
) -> np.ndarray:
    """A copy of `image` with `outline(mask, thickness, dash)` painted in `colour` (RGB or hex)."""
    out = np.array(image, dtype=np.uint8, copy=True)
    out[outline(mask, thickness, dash)] = to_rgb(colour)
    return out


def fill_mask(image: np.ndarray, mask: np.ndarray, colour, alpha: float) -> np.ndarray:
    """A copy of `image` blended with `colour` on the mask: round((1 - alpha) p + alpha c)."""
    out = np.array(image, dtype=np.uint8, copy=True)
    mask = np.asarray(mask, dtype=bool)
    blend = (1.0 - alpha) * out[mask].astype(np.float64) + alpha * np.array(to_rgb(colour), float)
    out[mask] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    return out


def fade(image: np.ndarray, amount: float = FADE) -> np.ndarray:
    """The image blended towards white: round((1 - amount) p + amount 255), `fill_mask`'s blend
    on every pixel (without its mask, which costs a large image seconds)."""
    blend = (1.0 - amount) * np.asarray(image, dtype=np.float64) + amount * 255.0
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def grey(image: np.ndarray) -> np.ndarray:
    """The image in grey levels, as RGB: round(0.299 R + 0.587 G + 0.114 B) in each channel."""
    luma = np.asarray(image, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def label_point(mask: np.ndarray) -> Optional[Tuple[int, int]]:
    """(x, y) of the mask pixel farthest (L2 distance transform) from the background and the image
    border, the first in row order on ties; None for an empty mask. Unlike the centroid, it lies
    inside the mask whatever its shape."""
    mask = np.asarray(mask, dtype=np.uint8)
    if not mask.any():
        return None
    padded = np.pad(mask, 1)  # the image border counts as background
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y)


def display_size(height: int, width: int, cell: int) -> Tuple[int, int]:
    """(height, width) scaled so that the longer side is `cell` pixels."""
    scale = cell / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Image to (height, width): bilinear when enlarging, pixel area when shrinking."""
    height, width = size
    shrink = height < image.shape[0]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def nearest_indices(n_out: int, n_in: int) -> np.ndarray:
    """The source index each of `n_out` pixels takes when `n_in` are resized to them, nearest
    pixel: floor(i x 1 / (n_out / n_in)) in double precision, OpenCV's INTER_NEAREST rule to the
    last bit (floor(i x n_in / n_out) would differ where the product falls just short of an
    integer: i = 49 of 2 -> 98 px)."""
    step = 1.0 / (n_out / n_in)
    return np.minimum(np.floor(np.arange(n_out) * step).astype(np.int64), n_in - 1)


def resize_mask(mask: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Mask to (height, width), nearest pixel (`nearest_indices`)."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = (nearest_indices(n, m) for n, m in zip(size, mask.shape))
    return mask[np.ix_(rows, cols)]


def to_rgb(colour) -> Colour:
    """A colour as (R, G, B) ints: '#0072B2' -> (0, 114, 178); an RGB triple is kept."""
    return hex_to_rgb(colour) if isinstance(colour, str) else tuple(int(c) for c in colour)
