"""The mask noise models and the geometry under them, one COCO instance at a time.

Coordinates follow COCO: pixel (row i, column j) covers the square [j, j + 1] x [i, i + 1], and a
polygon is rasterized the way pycocotools does it (roughly: a pixel is in when its centre
(j + 0.5, i + 0.5) is inside). Masks are (H, W) uint8 arrays of {0, 1}; polygons are (N, 2) float
arrays of (x, y) vertices.
"""

import math
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..coco.rle import Rle, decode_window, encode_window, mask_iou, runs_of, to_rle

REFERENCE_SIDE = 640.0  # longer image side the preset sizes are meant for (COCO)
MIN_SUBPIXEL = 0.5  # px, floor of a scaled tolerance or sigma
CAP_FRACTION = 0.25  # sizes are capped at this fraction of the instance's sqrt(area)


class InstanceSizes(NamedTuple):
    """The sizes one instance is corrupted with; 0 means the model is off."""

    tolerance: float
    sigma: float
    kernel: int
    capped: bool  # True if the instance-size cap lowered any of them


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def kernel_radius(kernel: int, longer_side: float) -> int:
    """Radius of a kernel scaled to an image: max(1, round_half_up((kernel * s - 1) / 2)), 0 if off.

    s = longer_side / 640; a k x k kernel has radius (k - 1) / 2, so 5 at 640 px stays 5.
    """
    if kernel <= 0:
        return 0
    return max(1, _round_half_up((kernel * longer_side / REFERENCE_SIDE - 1) / 2))


def instance_sizes(
    tolerance: float, sigma: float, kernel: int, longer_side: float, area: float
) -> InstanceSizes:
    """Scale preset sizes (px on a 640 px image) to one instance of one image.

    With s = longer_side / 640 and the cap c = 0.25 * sqrt(area) (area in px of the clean mask):

        tolerance' = min(max(tolerance * s, 0.5), c)                 (0 stays 0)
        sigma'     = min(max(sigma * s, 0.5), c)                     (0 stays 0)
        r          = max(1, round_half_up((kernel * s - 1) / 2))     kernel radius after scaling
        kernel'    = 2 * min(r, max(1, floor(c))) + 1                (0 stays 0)

    so the kernel stays odd and at least 3, and sizes never exceed a quarter of the object's size
    sqrt(area). The cap binds on small objects only: at 640 px, tolerance 15 below 60 x 60 px,
    sigma 4 below 16 x 16, kernel 7 below 12 x 12. Erosion then keeps at least half the side of a
    square (a quarter of its area), and Douglas-Peucker at least a quadrilateral of a disc.
    """
    scale = longer_side / REFERENCE_SIDE
    cap = CAP_FRACTION * math.sqrt(max(area, 0.0))
    capped = False

    def subpixel(size: float) -> float:
        nonlocal capped
        if size <= 0:
            return 0.0
        scaled = max(size * scale, MIN_SUBPIXEL)
        capped = capped or scaled > cap
        return min(scaled, cap)

    new_tolerance, new_sigma = subpixel(tolerance), subpixel(sigma)
    new_kernel = 0
    if kernel > 0:
        radius = kernel_radius(kernel, longer_side)
        radius_cap = max(1, int(math.floor(cap)))
        capped = capped or radius > radius_cap
        new_kernel = 2 * min(radius, radius_cap) + 1
    return InstanceSizes(new_tolerance, new_sigma, new_kernel, capped)


def rasterize_polygons(
    polygons: Sequence[np.ndarray], height: int, width: int, even_odd: bool = False
) -> np.ndarray:
    """(H, W) uint8 mask of polygons, rasterized by pycocotools (as COCO tools and Detectron2 do).

    Polygons are unioned (COCO's rule for a polygon list), or combined by XOR when `even_odd`,
    which turns the holes of a traced mask back into holes.
    """
    flat = [np.asarray(p, dtype=np.float64).reshape(-1).tolist() for p in polygons if len(p) >= 3]
    if not flat or height <= 0 or width <= 0:
        return np.zeros((max(height, 0), max(width, 0)), dtype=np.uint8)
    rles = mask_utils.frPyObjects(flat, height, width)
    if not even_odd:
        return mask_utils.decode(mask_utils.merge(rles))
    return np.bitwise_xor.reduce(mask_utils.decode(rles), axis=2)


def mask_to_polygons(mask: np.ndarray, holes: bool = False) -> List[np.ndarray]:
    """Trace a mask into polygons that pycocotools rasterizes back into exactly that mask.

    cv2.findContours gives the centres of boundary pixels, which would lose half a pixel all
    around. Tracing the mask upsampled 2x instead puts each vertex at a quarter pixel inside the
    pixel boundary: a vertex at upsampled cell u sits at x = (u + 0.5) / 2, so pixel j spans
    vertices j + 0.25 to j + 0.75 and its centre j + 0.5 is inside, its neighbours' are not.
    With `holes`, hole contours are returned too (combine them with `even_odd=True`).
    """
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    up = cv2.resize(mask, (2 * mask.shape[1], 2 * mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    mode = cv2.RETR_CCOMP if holes else cv2.RETR_EXTERNAL
    contours, _ = cv2.findContours(up, mode, cv2.CHAIN_APPROX_SIMPLE)
    return [(c[:, 0, :].astype(np.float64) + 0.5) / 2.0 for c in contours]


def simplify_polygon(polygon: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker simplification of a closed polygon (cv2.approxPolyDP, tolerance in px).

    Every vertex left is one of the input's; no point of the input is farther than `tolerance`
    from the result. The result may have fewer than 3 vertices for a thin polygon.
    """
    if tolerance <= 0:
        return np.asarray(polygon, dtype=np.float64)
    points = np.asarray(polygon, dtype=np.float32).reshape(-1, 1, 2)
    return cv2.approxPolyDP(points, float(tolerance), True)[:, 0, :].astype(np.float64)


def jitter_polygon(polygon: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Move every vertex by independent Gaussian noise: v' = v + N(0, sigma^2 I); sigma 0 = copy."""
    polygon = np.asarray(polygon, dtype=np.float64)
    if sigma <= 0:
        return polygon.copy()
    return polygon + rng.normal(0.0, sigma, size=polygon.shape)


def morph_mask(mask: np.ndarray, kernel: int, grow: bool) -> np.ndarray:
    """Dilate (`grow`) or erode a mask by a kernel x kernel square; kernel 0 or 1 = copy.

    A k x k square moves a straight edge by (k - 1) / 2 px: a 20 x 20 square dilated by 3 x 3
    becomes 22 x 22 and eroded becomes 18 x 18. Outside the array counts as background when
    dilating and as foreground when eroding (OpenCV's defaults), so an object cut by the image
    border is not eaten from that side.
    """
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if kernel <= 1:
        return mask.copy()
    square = np.ones((kernel, kernel), dtype=np.uint8)
    return cv2.dilate(mask, square) if grow else cv2.erode(mask, square)


# ---------------------------------------------------------------------------------------------
# One COCO instance.


@dataclass(frozen=True)
class _Window:
    """A crop [x0, x1) x [y0, y1) of the image: masks are decoded there, not at full size."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def shape(self) -> Tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def offset(self) -> np.ndarray:
        return np.array([self.x0, self.y0], dtype=np.float64)

    def union(self, other: "_Window") -> "_Window":
        return _Window(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )


def _window_of(points: np.ndarray, pad: int, height: int, width: int) -> _Window:
    """The pixels polygon vertices `points` (N, 2) can cover, grown by `pad`, within the image."""
    low, high = np.floor(points.min(axis=0)), np.ceil(points.max(axis=0))
    x0, y0 = max(0, int(low[0]) - pad), max(0, int(low[1]) - pad)
    x1, y1 = min(width, int(high[0]) + pad + 1), min(height, int(high[1]) + pad + 1)
    return _Window(x0, y0, max(x0, x1), max(y0, y1))


def _polygons_rle(polygons: Sequence[np.ndarray], height: int, width: int) -> Rle:
    """pycocotools' RLE of the union of (N, 2) polygons (COCO's rule for a polygon list)."""
    return to_rle([p.reshape(-1).tolist() for p in polygons], height, width)


def _bbox(rle: Dict[str, Any]) -> List[float]:
    return [float(v) for v in mask_utils.toBbox(rle)]


def _outline_noise(
    polygons: Sequence[np.ndarray],
    sizes: InstanceSizes,
    rng: np.random.Generator,
    width: int,
    height: int,
) -> List[np.ndarray]:
    """Simplify then jitter each polygon, clip it to the image, round it to 0.01 px (as written).

    Polygons left with fewer than 3 vertices are dropped.
    """
    noisy = []
    for polygon in polygons:
        polygon = simplify_polygon(polygon, sizes.tolerance)
        polygon = jitter_polygon(polygon, sizes.sigma, rng)
        polygon = np.round(np.clip(polygon, 0.0, [width, height]), 2)
        if len(polygon) >= 3:
            noisy.append(polygon)
    return noisy


def _rle_like(segmentation: Dict[str, Any], rle: Rle) -> Dict[str, Any]:
    """COCO RLE of the mask of pycocotools' `rle`, compressed (string counts) or not (list) like
    `segmentation`."""
    if isinstance(segmentation["counts"], str):
        return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}
    return {"size": list(rle["size"]), "counts": runs_of(rle).tolist()}


def noise_instance(
    segmentation: Any,
    height: int,
    width: int,
    tolerance: float,
    sigma: float,
    kernel: int,
    rng: np.random.Generator,
) -> Tuple[Any, List[float], float, Dict[str, Any]]:
    """Corrupt one COCO segmentation (polygons or RLE, already checked) of a height x width image.

    tolerance, sigma and kernel are sizes at 640 px (0 = off), scaled here by instance_sizes.
    The mask is dilated or eroded, its outlines (the polygons themselves, or the traced mask)
    simplified and jittered. Returns (segmentation of the same kind, bbox, area, stats), where
    stats holds iou (clean vs written mask), kept_original, empty_clean, capped, grow (None when
    the kernel is off) and the scaled tolerance, sigma and kernel. Areas, boxes and IoU come from
    pycocotools RLEs, as COCO evaluation computes them.
    """
    grow = bool(rng.random() < 0.5)  # drawn always, so switching a model off leaves the others
    is_polygon = isinstance(segmentation, list)
    if is_polygon:
        clean_polygons = [np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segmentation]
        clean_rle = _polygons_rle(clean_polygons, height, width)
    else:
        clean_rle = to_rle(segmentation, height, width)
    clean_area = float(mask_utils.area(clean_rle))
    sizes = instance_sizes(tolerance, sigma, kernel, max(height, width), clean_area)
    stats: Dict[str, Any] = {
        "empty_clean": clean_area == 0,
        "kept_original": False,
        "capped": sizes.capped,
        "grow": grow if sizes.kernel else None,
        "tolerance": sizes.tolerance,
        "sigma": sizes.sigma,
        "kernel": sizes.kernel,
        # the written mask is the clean one until the noise changes it: IoU 1, or NaN for an
        # empty mask (coco.rle.mask_iou), which the report leaves out as empty_clean
        "iou": 1.0 if clean_area > 0 else math.nan,
    }
    outline_noise = bool(sizes.tolerance or sizes.sigma)
    if clean_area == 0 or not (outline_noise or sizes.kernel):
        return segmentation, _bbox(clean_rle), clean_area, stats

    if is_polygon and not sizes.kernel:
        new_polygons = _outline_noise(clean_polygons, sizes, rng, width, height)
    else:  # morphology and the contours of an RLE need the mask, decoded in a window
        x, y, w, h = mask_utils.toBbox(clean_rle)
        pad = kernel_radius(kernel, max(height, width)) + 1  # room to dilate into
        window = _window_of(np.array([[x, y], [x + w, y + h]]), pad, height, width)
        if is_polygon:
            clean = rasterize_polygons([p - window.offset for p in clean_polygons], *window.shape)
        else:
            clean = decode_window(clean_rle, window.y0, window.x0, window.y1, window.x1)
            clean = clean.astype(np.uint8)
        morphed = morph_mask(clean, sizes.kernel, grow)
        if outline_noise or is_polygon:
            traced = mask_to_polygons(morphed, holes=not is_polygon)
            traced = [p + window.offset for p in traced]
            new_polygons = _outline_noise(traced, sizes, rng, width, height)

    if is_polygon:
        new_segmentation: Any = [p.reshape(-1).tolist() for p in new_polygons]
        noisy_rle = _polygons_rle(new_polygons, height, width) if new_polygons else None
    else:  # the noisy mask made and encoded in a window (`coco.rle.encode_window`)
        if not outline_noise:
            noisy, placed = morphed, window
        elif new_polygons:
            # holes stay holes: the traced outer and hole contours are combined by XOR
            placed = _window_of(np.concatenate(new_polygons), 1, height, width)
            shifted = [p - placed.offset for p in new_polygons]
            noisy = rasterize_polygons(shifted, *placed.shape, even_odd=True)
        else:
            noisy, placed = np.zeros((0, 0), dtype=np.uint8), _Window(0, 0, 0, 0)
        noisy_rle = encode_window(noisy, placed.y0, placed.x0, height, width)
        new_segmentation = _rle_like(segmentation, noisy_rle)

    noisy_area = float(mask_utils.area(noisy_rle)) if noisy_rle is not None else 0.0
    if noisy_area == 0:
        stats["kept_original"] = True
        return segmentation, _bbox(clean_rle), clean_area, stats
    stats["iou"] = mask_iou(clean_rle, noisy_rle)  # both non-empty here: never NaN
    return new_segmentation, _bbox(noisy_rle), noisy_area, stats
