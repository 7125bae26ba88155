"""The candidate masks of the suspicious annotations of an audited file: the annotation's own,
the audit's best match (`prediction`), GrabCut seeded by the annotation (`grabcut`, on the image)
and the vote of the three (`agreement`), as pycocotools RLEs by annotation id."""

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..coco.io import AnnotationError, read_image
from ..audit.scores import AnnotationScore
from ..coco.rle import Rle, Window, area, decode_window, encode_window, window_around
from .audited import AuditedFile
from .choose import AGREEMENT, GRABCUT, PREDICTION
from .options import in_reach
from .sources import BAND_RATIO, grabcut_mask, grabcut_reach, vote_mask

Candidates = Dict[int, Dict[str, Optional[Rle]]]  # annotation id -> source name -> mask


def suspicious(audited: AuditedFile, min_iou: float, max_iou: float) -> List[int]:
    """Ids of the annotations whose mask may be replaced: matched, with a mask, audited mask IoU
    in reach (`options.in_reach`)."""
    return sorted(
        s.id for s in audited.scores.values()
        if s.matched and s.ann_rle is not None and in_reach(s.mask_iou, min_iou, max_iou)
    )  # fmt: skip


def candidate_masks(
    audited: AuditedFile,
    ids: List[int],
    image_dir: os.PathLike,
    sources: Sequence[str],
    band_ratio: float = BAND_RATIO,
) -> Candidates:
    """Per annotation id: its mask ("annotation") and each of `sources`' mask for it (None when
    the source has none), as RLEs; each image read once. GrabCut and the vote work on the window
    around the annotation and its match that GrabCut reads (`sources.grabcut_reach`), so that on
    a large image they cost the object's size; the masks are those of the whole image."""
    images = {image["id"]: image for image in audited.gt["images"]}
    out: Candidates = {}
    by_image: Dict[int, List[int]] = {}
    for ann_id in ids:
        by_image.setdefault(audited.scores[ann_id].image_id, []).append(ann_id)
    for image_id in sorted(by_image):
        image = images[image_id]
        pixels = read_image(image_dir, image) if GRABCUT in sources else None
        for ann_id in by_image[image_id]:
            score = audited.scores[ann_id]
            masks: Dict[str, Optional[Rle]] = {"annotation": score.ann_rle}
            if PREDICTION in sources:
                masks[PREDICTION] = score.pred_rle
            if GRABCUT in sources or AGREEMENT in sources:
                pad = grabcut_reach(area(score.ann_rle), band_ratio)
                window = window_around([score.ann_rle, score.pred_rle], pad)
                masks.update(_window_masks(audited, score, pixels, window, sources, band_ratio))
            out[ann_id] = masks
    return out


def _window_masks(
    audited: AuditedFile,
    score: AnnotationScore,
    pixels: Optional[np.ndarray],
    window: Window,
    sources: Sequence[str],
    band_ratio: float,
) -> Dict[str, Optional[Rle]]:
    """GrabCut's and the vote's masks (those of `sources`) of one matched annotation, made on
    `window` of the image and placed in the whole image as RLEs."""
    height, width = (int(v) for v in score.ann_rle["size"])
    top, left, bottom, right = window
    annotation = decode_window(score.ann_rle, *window)
    made: Dict[str, Optional[np.ndarray]] = {GRABCUT: None}
    if GRABCUT in sources:
        try:
            made[GRABCUT] = grabcut_mask(pixels[top:bottom, left:right], annotation, band_ratio)
        except Exception as e:  # cv2.error: say which annotation
            raise AnnotationError(
                f"annotation {score.id} (image {score.image_id}): GrabCut failed: "
                f"{type(e).__name__}: {e}",
                audited.name,
            ) from e
    if AGREEMENT in sources:
        prediction = decode_window(score.pred_rle, *window)
        made[AGREEMENT] = vote_mask([annotation, prediction, made[GRABCUT]])
    return {
        name: None if mask is None else encode_window(mask, top, left, height, width)
        for name, mask in made.items() if name in sources
    }  # fmt: skip
