"""The candidate masks of the suspicious annotations of an audited file: the annotation's own,
the audit's best match (`prediction`), GrabCut seeded by the annotation (`grabcut`, on the image)
and the vote of the three (`agreement`), as pycocotools RLEs by annotation id."""

import os
from typing import Dict, List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from ..coco.io import AnnotationError, read_image
from ..coco.rle import Rle, decode
from . import in_reach
from .audited import AuditedFile
from .choose import AGREEMENT, GRABCUT, PREDICTION
from .sources import BAND_RATIO, grabcut_mask, vote_mask

Candidates = Dict[int, Dict[str, Optional[Rle]]]  # annotation id -> source name -> mask


def suspicious(audited: AuditedFile, min_iou: float, max_iou: float) -> List[int]:
    """Ids of the annotations whose mask may be replaced: matched, with a mask, audited mask IoU
    in reach (`refine.in_reach`)."""
    return sorted(
        s.id for s in audited.scores.values()
        if s.matched and s.ann_rle is not None and in_reach(s.mask_iou, min_iou, max_iou)
    )  # fmt: skip


def _encode(mask: Optional[np.ndarray]) -> Optional[Rle]:
    if mask is None:
        return None
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def candidate_masks(
    audited: AuditedFile,
    ids: List[int],
    image_dir: os.PathLike,
    sources: Sequence[str],
    band_ratio: float = BAND_RATIO,
) -> Candidates:
    """Per annotation id: its mask ("annotation") and each of `sources`' mask for it (None when
    the source has none), as RLEs; each image read once."""
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
            if GRABCUT in sources:
                a = decode(score.ann_rle, image["height"], image["width"])
                try:
                    masks[GRABCUT] = _encode(grabcut_mask(pixels, a, band_ratio))
                except Exception as e:  # cv2.error: say which annotation
                    raise AnnotationError(
                        f"annotation {ann_id} (image {image_id}): GrabCut failed: "
                        f"{type(e).__name__}: {e}",
                        audited.name,
                    ) from e
            if AGREEMENT in sources:
                h, w = image["height"], image["width"]
                three = [score.ann_rle, score.pred_rle, masks.get(GRABCUT)]
                masks[AGREEMENT] = _encode(
                    vote_mask([None if r is None else decode(r, h, w) for r in three])
                )
            out[ann_id] = masks
    return out
