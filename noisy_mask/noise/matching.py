"""What the noise did to each instance: the instances of a clean and a noisy COCO file paired
by annotation id (kept, with the mask IoU of clean vs noisy; deleted; or class-flipped), and the
choice of images to draw, half of them (at most) among those with a deletion or a flip."""

from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from ..coco.io import AnnotationError, CocoArg, annotation_rle, coco_name, read_coco
from ..coco.rle import mask_iou

KEPT, DELETED, FLIPPED = "kept", "deleted", "flipped"
# Keys the matching does not read: masks are compared, boxes and areas are not.
UNUSED_KEYS = ("area", "bbox")


class InstanceNoise(NamedTuple):
    """What the noise did to one clean instance. status: KEPT, DELETED or FLIPPED; iou: mask IoU
    of clean vs noisy (None when deleted, NaN when both masks are empty: see `coco.rle.mask_iou`);
    new_category_id: the noisy file's category (None when deleted)."""

    ann_id: int
    iou: Optional[float]
    status: str
    image_id: int
    category_id: int
    new_category_id: Optional[int]


def match_noise(
    clean: CocoArg, noisy: CocoArg, image_ids: Optional[Sequence[int]] = None
) -> List[InstanceNoise]:
    """Pair the instances of the clean and noisy files by annotation id, in clean id order (of the
    images `image_ids`, or all). An annotation absent from the noisy file is DELETED, one with
    another category_id FLIPPED (its IoU measured all the same), any other KEPT. Crowd regions
    (`iscrowd` 1 in the clean file) are not instances: the noise leaves them as they are, and
    they are left out here. A noisy annotation that is not in the clean file, or that moved to
    another image, is an error."""
    clean_name = coco_name(clean, "clean annotations")
    noisy_name = coco_name(noisy, "noisy annotations")
    clean = read_coco(clean, clean_name, UNUSED_KEYS)
    noisy = read_coco(noisy, noisy_name, UNUSED_KEYS)
    return match_noise_dicts(clean, noisy, clean_name, noisy_name, image_ids)


def match_noise_dicts(
    clean: Dict[str, Any],
    noisy: Dict[str, Any],
    clean_name: str,
    noisy_name: str,
    image_ids: Optional[Sequence[int]],
) -> List[InstanceNoise]:
    """`match_noise` of two files already read by `read_coco`; their names go into the errors."""
    clean_by_id = {ann["id"]: ann for ann in clean["annotations"]}
    noisy_by_id = {}
    for ann in noisy["annotations"]:
        original = clean_by_id.get(ann["id"])
        if original is None:
            raise AnnotationError(f"{noisy_name}: annotation {ann['id']} is not in {clean_name}")
        if original["image_id"] != ann["image_id"]:
            raise AnnotationError(
                f"{noisy_name}: annotation {ann['id']} has 'image_id' {ann['image_id']}, but"
                f" {original['image_id']} in {clean_name}"
            )
        noisy_by_id[ann["id"]] = ann
    images = {image["id"]: image for image in clean["images"]}
    wanted = set(images if image_ids is None else image_ids)
    matches = []
    for ann_id in sorted(clean_by_id):
        ann = clean_by_id[ann_id]
        if ann["image_id"] not in wanted or ann.get("iscrowd", 0):
            continue
        new = noisy_by_id.get(ann_id)
        if new is None:
            matches.append(
                InstanceNoise(ann_id, None, DELETED, ann["image_id"], ann["category_id"], None)
            )
            continue
        image = images[ann["image_id"]]
        iou = mask_iou(
            annotation_rle(ann, image, clean_name), annotation_rle(new, image, noisy_name)
        )
        status = FLIPPED if new["category_id"] != ann["category_id"] else KEPT
        matches.append(
            InstanceNoise(
                ann_id, iou, status, ann["image_id"], ann["category_id"], new["category_id"]
            )
        )
    return matches


def choose_noise_images(matches: Sequence[InstanceNoise], num: int, seed: int = 0) -> List[int]:
    """`num` image ids (sorted) among those with an instance: up to num // 2 drawn from the images
    with a deleted or flipped instance, the rest from all the others, with default_rng(seed)."""
    rng = np.random.default_rng(seed)
    all_ids = sorted({m.image_id for m in matches})
    marked = sorted({m.image_id for m in matches if m.status != KEPT})
    take = min(len(marked), num // 2)
    chosen = [int(i) for i in rng.choice(marked, size=take, replace=False)] if take else []
    rest = [i for i in all_ids if i not in set(chosen)]
    more = min(len(rest), num - take)
    chosen += [int(i) for i in rng.choice(rest, size=more, replace=False)] if more else []
    return sorted(chosen)
