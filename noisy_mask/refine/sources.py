"""The masks that can replace a damaged annotation, one instance at a time: the model's prediction
(given), GrabCut on the image seeded by the annotation, and the pixel-wise vote of the three.

Masks are (H, W) bool arrays of the whole image. GrabCut (Rother et al. 2004, `cv2.grabCut`) is
seeded by the annotation A with a band of r px on either side of its outline:

    erode(A, r)              sure foreground          (GC_FGD)
    A minus erode(A, r)      probable foreground      (GC_PR_FGD)
    dilate(A, r) minus A     probable background      (GC_PR_BGD)
    the rest of the crop     background               (GC_BGD)

r = max(1, round(band_ratio x sqrt(area of A))), a disc of radius r, so the band scales with the
object (band_ratio 0.1: 3 px for a 30 x 30 px object); when erode(A, r) is empty (a thin object),
r shrinks until it is not, and A is all probable foreground at r = 1. GrabCut fits two colour
mixtures (foreground, background) to a crop of the image around dilate(A, r) with a margin of
2r + 4 px, then labels the pixels of the band by a graph cut, GRABCUT_ITERATIONS times; pixels
outside dilate(A, r) stay background, so the result never leaves the band. Of its pieces, those
that touch the sure foreground are kept (all of them when there is none). OpenCV's random state
is seeded before each call, so the result depends only on the image and the annotation.
"""

import math
from typing import Optional, Sequence

import cv2
import numpy as np

BAND_RATIO = 0.1  # GrabCut's band r = round(BAND_RATIO x sqrt(area)) px, at least 1
GRABCUT_ITERATIONS = 5
CROP_MARGIN = 4  # px beyond 2r around the band, so the background model sees the surroundings
VOTES = 2  # the vote of three masks: a pixel is foreground when at least this many say so


def band_radius(area: float, band_ratio: float = BAND_RATIO) -> int:
    """The GrabCut band r of an object of `area` px: max(1, round(band_ratio x sqrt(area)))."""
    return max(1, int(math.floor(band_ratio * math.sqrt(max(area, 0.0)) + 0.5)))


def grabcut_reach(area: float, band_ratio: float = BAND_RATIO) -> int:
    """The px around an annotation's box that GrabCut reads for an object of `area` px: its band
    r and the crop's margin of 2r + CROP_MARGIN. A window of the image that holds this much
    around the box gives the same mask as the whole image."""
    return 3 * band_radius(area, band_ratio) + CROP_MARGIN


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _crop(mask: np.ndarray, pad: int):
    """The slices of the bounding box of `mask` grown by `pad` px, within the image."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    y0, y1 = max(0, rows[0] - pad), min(height, rows[-1] + pad + 1)
    x0, x1 = max(0, cols[0] - pad), min(width, cols[-1] + pad + 1)
    return slice(y0, y1), slice(x0, x1)


def grabcut_seed(annotation: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) uint8 GrabCut labels of `annotation` with a band of `radius` px (module docstring);
    the radius shrinks while the erosion is empty."""
    mask = annotation.astype(np.uint8)
    seed = np.full(mask.shape, cv2.GC_BGD, dtype=np.uint8)
    seed[cv2.dilate(mask, _disc(radius)) > 0] = cv2.GC_PR_BGD
    seed[mask > 0] = cv2.GC_PR_FGD
    inner = radius
    while inner >= 1:
        sure = cv2.erode(mask, _disc(inner), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        if sure.any():
            seed[sure > 0] = cv2.GC_FGD
            break
        inner -= 1
    return seed


def grabcut_mask(
    image: np.ndarray, annotation: np.ndarray, band_ratio: float = BAND_RATIO
) -> Optional[np.ndarray]:
    """(H, W) bool GrabCut mask of the object `annotation` marks in `image` ((H, W, 3) uint8 RGB,
    or (H, W) grey), seeded as the module docstring says; None when the annotation is empty or
    GrabCut finds no foreground."""
    annotation = np.asarray(annotation, dtype=bool)
    area = int(annotation.sum())
    if area == 0:
        return None
    radius = band_radius(area, band_ratio)
    rows, cols = _crop(annotation, grabcut_reach(area, band_ratio))
    pixels = np.asarray(image)[rows, cols]
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    pixels = np.ascontiguousarray(pixels[:, :, :3], dtype=np.uint8)
    seed = grabcut_seed(annotation[rows, cols], radius)
    if not np.isin(seed, (cv2.GC_BGD, cv2.GC_PR_BGD)).any():
        return None  # the object fills its crop: nothing to learn the background from
    labels = seed.copy()
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(pixels, labels, None, background, foreground, GRABCUT_ITERATIONS,
                cv2.GC_INIT_WITH_MASK)  # fmt: skip
    found = np.isin(labels, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    found = _pieces_touching(found, seed == cv2.GC_FGD)
    if not found.any():
        return None
    out = np.zeros(annotation.shape, dtype=bool)
    out[rows, cols] = found
    return out


def _pieces_touching(mask: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """The 8-connected pieces of `mask` that touch `sure` (all of `mask` when `sure` is empty)."""
    if not sure.any():
        return mask.astype(bool)
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    keep = np.unique(labels[sure & (mask > 0)])
    keep = keep[keep > 0]
    return np.isin(labels, keep) if count > 1 else mask.astype(bool)


def vote_mask(masks: Sequence[Optional[np.ndarray]], votes: int = VOTES) -> Optional[np.ndarray]:
    """The pixels that at least `votes` of `masks` hold; None when a mask is missing or the vote
    is empty."""
    if any(m is None for m in masks):
        return None
    count = np.sum([np.asarray(m, dtype=np.uint8) for m in masks], axis=0)
    out = count >= votes
    return out if out.any() else None
