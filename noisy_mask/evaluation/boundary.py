"""Is Boundary IoU's band narrower than the objects? The thickness of ground-truth instances
against the band, and the dilation ratio that would resolve them.

Boundary IoU (see `coco_eval`) keeps the pixels of a mask within a band of `dil` px of its contour:
the mask minus its erosion by `dil` iterations of a 3 x 3 square, the image border counting as
contour, with dil = max(1, round(ratio * image diagonal)). The ratio 0.02 of the metric's authors
gives 9 px on a 320 x 320 image, 16 px on a 640 x 480 one.

Depth and thickness, in the metric's own geometry: an instance's depth is the number of those 3 x 3
erosions that empty its mask, i.e. the largest chessboard distance, max(|dx|, |dy|), from a mask
pixel to the nearest pixel outside the mask (outside the image counting as outside); its thickness
is 2 * depth. A bar w px wide has thickness 2 * ceil(w / 2) (w, or w + 1 when w is odd); a disc of
diameter D about D / sqrt(2), since a square erodes it faster along the diagonals.

An instance is thin when thickness <= 2 * dil: exactly when the band holds its whole mask, so that
its boundary IoU is its mask IoU (on the ground-truth side) and boundary AP says nothing about its
outline. When most ground-truth instances are thin, the ratio suggested is the one that makes the
band a quarter of the median thickness: the median over instances of
    thickness / (4 * diagonal of the instance's image),
rounded to 2 significant digits: there an instance of the median thickness is thin no more, unless
its thickness is 2 (a mask 1 or 2 px wide), which no ratio resolves as the band is at least 1 px;
the warning then says so.
"""

import logging
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import cv2
import numpy as np

from ..coco.io import annotation_rle
from ..coco.rle import decode_window, window_around

logger = logging.getLogger(__name__)

# Boundary IoU's dilation ratio of the metric's authors (Cheng et al. 2021): the default.
DILATION_RATIO = 0.02
# Ground-truth instances measured at most: evenly spread over the sorted annotation ids.
MAX_MEASURED = 2000
# "Most" instances: the share above which the warning is given.
THIN_SHARE_WARNING = 0.5

_checked: Dict[Tuple[str, float], Dict[str, Any]] = {}  # band checks of named files, once each


def band_px(ratio: float, height: float, width: float) -> int:
    """The band of Boundary IoU in px: max(1, round(ratio * sqrt(height^2 + width^2)))."""
    return max(1, int(round(ratio * math.hypot(height, width))))


def mask_depth(mask: np.ndarray) -> int:
    """The number of 3 x 3 erosions that empty an (H, W) mask, the image border counting as
    background: its largest chessboard distance to the background; 0 for an empty mask."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8)
    padded = cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return int(round(float(cv2.distanceTransform(padded, cv2.DIST_C, 3).max())))


def _measured(gt: Mapping[str, Any], name: str) -> List[Tuple[int, float]]:
    """(thickness, image diagonal) of up to MAX_MEASURED non-crowd, non-empty instances."""
    images = {image["id"]: image for image in gt["images"]}
    anns = sorted((a for a in gt["annotations"] if not a.get("iscrowd", 0)), key=lambda a: a["id"])
    if len(anns) > MAX_MEASURED:
        picks = np.linspace(0, len(anns) - 1, MAX_MEASURED).round().astype(int)
        anns = [anns[i] for i in picks]
    measured = []
    for ann in anns:
        image = images[ann["image_id"]]
        rle = annotation_rle(ann, image, name)
        window = window_around([rle], 0)  # the mask's box: large images cost the object's size
        depth = mask_depth(decode_window(rle, *window)) if window is not None else 0
        if depth:
            measured.append((2 * depth, math.hypot(image["height"], image["width"])))
    return measured


def _share_thin(measured: List[Tuple[int, float]], ratio: float) -> float:
    """The share of `measured` (thickness, diagonal) with thickness <= 2 * band."""
    return float(np.mean([t <= 2 * band_px(ratio, 0, diagonal) for t, diagonal in measured]))


def band_check(gt: Mapping[str, Any], ratio: float, name: str = "ground truth") -> Dict[str, Any]:
    """How the band compares with the thickness of the ground truth's instances.

    Args:
        gt: a COCO instances dict, checked (`coco_eval.load_coco_gt`).
        ratio: Boundary IoU's dilation ratio.
        name: the file, for errors.

    Returns:
        {"dilation_ratio": ratio, "band_px": the band at the median image diagonal (None without
        images), "instances": how many were measured (non-crowd, non-empty, at most MAX_MEASURED),
        "median_thickness": px, "thin_share": the share with thickness <= 2 * band,
        "suggested_ratio": the ratio of a band a quarter of the median thickness,
        "thin_share_at_suggested": the share still thin there}; the last four None without
        instances.
    """
    diagonals = [math.hypot(image["height"], image["width"]) for image in gt["images"]]
    measured = _measured(gt, name)
    result: Dict[str, Any] = {
        "dilation_ratio": ratio,
        "band_px": band_px(ratio, 0, float(np.median(diagonals))) if diagonals else None,
        "instances": len(measured),
        "median_thickness": None,
        "thin_share": None,
        "suggested_ratio": None,
        "thin_share_at_suggested": None,
    }
    if not measured:
        return result
    thickness = np.array([t for t, _ in measured], dtype=np.float64)
    diagonal = np.array([d for _, d in measured], dtype=np.float64)
    suggested = float(f"{float(np.median(thickness / (4 * diagonal))):.2g}")
    return dict(
        result,
        median_thickness=float(np.median(thickness)),
        thin_share=round(_share_thin(measured, ratio), 4),
        suggested_ratio=suggested,
        thin_share_at_suggested=round(_share_thin(measured, suggested), 4),
    )


def thin_instances_message(check: Mapping[str, Any], name: str) -> Optional[str]:
    """The warning when most instances are thin (share > THIN_SHARE_WARNING), else None."""
    if not check["instances"] or check["thin_share"] <= THIN_SHARE_WARNING:
        return None
    ratio, suggested = check["dilation_ratio"], check["suggested_ratio"]
    message = (
        f"Boundary AP on {name}: {100 * check['thin_share']:.0f}% of the {check['instances']} "
        f"ground-truth instances measured are no thicker than twice the band of Boundary IoU "
        f"(dilation ratio {ratio:g}: {check['band_px']} px at the median image diagonal), so the "
        "band holds their whole mask and their boundary AP is mask AP, blind to the outlines. "
        f"Median thickness {check['median_thickness']:g} px: "
    )
    still_thin = f"{100 * check['thin_share_at_suggested']:.0f}%"
    if check["thin_share_at_suggested"] > THIN_SHARE_WARNING:
        return message + (
            f"no ratio resolves them, as the band is at least 1 px ({still_thin} stay thin at "
            f"{suggested:g}, the ratio of a band a quarter of the median thickness)"
        )
    return message + (
        f"TEST.BOUNDARY_DILATION_RATIO {suggested:g} makes the band a quarter of it ({still_thin} "
        "stay thin)"
    )


def check_band_once(gt: Mapping[str, Any], ratio: float, name: str, remember: bool) -> Dict:
    """`band_check`, logging `thin_instances_message` as a warning. With `remember` (a file
    known by its path `name`), each (name, ratio) is measured and warned about once a process."""
    if remember and (name, ratio) in _checked:
        return _checked[name, ratio]
    check = band_check(gt, ratio, name)
    message = thin_instances_message(check, name)
    if message:
        logger.warning(message)
    if remember:
        _checked[name, ratio] = check
    return check
