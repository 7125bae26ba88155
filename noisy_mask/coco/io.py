"""COCO files and images read for drawing: an instances file checked for what the pictures
need (errors name the file, the id and the key), segmentations as pycocotools RLE, masks and
their IoU, and the image files."""

import math
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..noise.apply import AnnotationError, load_coco
from .checks import FATAL, check_segmentation

CocoArg = Union[str, os.PathLike, Mapping[str, Any]]


def read_coco(coco: CocoArg, name: Optional[str] = None) -> Dict[str, Any]:
    """A COCO instances dict (read from a path, or given) checked for what drawing needs: the
    lists images (id, height, width, file_name), annotations (id, image_id, category_id,
    segmentation) and categories (id, name). Errors name the file, the id and the key."""
    if isinstance(coco, (str, os.PathLike)):
        name = name or os.fspath(coco)
        coco = load_coco(coco)
    name = name or "annotations"
    if not isinstance(coco, Mapping):
        raise AnnotationError(f"{name}: the top level is not a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise AnnotationError(f"{name}: missing list {key!r}")
    required = {
        "images": ("id", "height", "width", "file_name"),
        "annotations": ("id", "image_id", "category_id", "segmentation"),
        "categories": ("id", "name"),
    }
    for section, keys in required.items():
        for k, entry in enumerate(coco[section]):
            for key in keys:
                if not isinstance(entry, dict) or key not in entry:
                    what = section[:-1] if section != "categories" else "category"
                    ident = entry.get("id", f"#{k}") if isinstance(entry, dict) else f"#{k}"
                    raise AnnotationError(f"{name}: {what} {ident} has no {key!r}")
    for image in coco["images"]:
        for key in ("height", "width"):
            value = image[key]
            if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
                raise AnnotationError(
                    f"{name}: image {image['id']}: {key!r} {value!r} is not a positive integer"
                )
    for section, what in (("images", "image"), ("annotations", "annotation")):
        seen = set()
        for entry in coco[section]:
            if entry["id"] in seen:
                raise AnnotationError(f"{name}: {what} {entry['id']}: 'id' appears twice")
            seen.add(entry["id"])
    image_ids = {image["id"] for image in coco["images"]}
    category_ids = {category["id"] for category in coco["categories"]}
    for ann in coco["annotations"]:
        if ann["image_id"] not in image_ids:
            raise AnnotationError(
                f"{name}: annotation {ann['id']}: 'image_id' {ann['image_id']!r} is unknown"
            )
        if ann["category_id"] not in category_ids:
            raise AnnotationError(
                f"{name}: annotation {ann['id']}: 'category_id' {ann['category_id']!r} is unknown"
            )
    return dict(coco)


def segmentation_rle(segmentation: Any, height: int, width: int, where: str) -> Optional[dict]:
    """pycocotools RLE of a COCO segmentation (polygons, or RLE with string or list counts);
    None when it is empty or degenerate (nothing to draw); ValueError naming `where` when it is
    malformed (pycocotools would crash or misread it)."""
    issues = check_segmentation(segmentation, (height, width))
    fatal = [message for message, severity in issues if severity == FATAL]
    if fatal:
        raise ValueError(f"{where}: {fatal[0]}")
    if issues:
        return None
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return {"size": [height, width], "counts": segmentation["counts"].encode("ascii")}


def decode(rle: Optional[dict], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of an RLE; all False for None."""
    if rle is None:
        return np.zeros((height, width), dtype=bool)
    return mask_utils.decode(rle).astype(bool)


def rle_iou(a: Optional[dict], b: Optional[dict]) -> float:
    """|a & b| / |a | b|, with |a | b| = |a| + |b| - |a & b|; NaN when both are empty."""
    area_a = float(mask_utils.area(a)) if a is not None else 0.0
    area_b = float(mask_utils.area(b)) if b is not None else 0.0
    inter = 0.0
    if a is not None and b is not None:
        inter = float(mask_utils.area(mask_utils.merge([a, b], intersect=True)))
    union = area_a + area_b - inter
    return inter / union if union > 0 else math.nan


def annotation_rle(ann: Mapping[str, Any], image: Mapping[str, Any], name: str) -> Optional[dict]:
    """`segmentation_rle` of an annotation of `image`; errors name the file `name` and the ids."""
    where = f"{name}: annotation {ann['id']} (image {ann['image_id']}): 'segmentation'"
    return segmentation_rle(ann["segmentation"], image["height"], image["width"], where)


def coco_name(coco: CocoArg, default: str) -> str:
    """The path of a COCO file for the error messages, or `default` for a dict given as is."""
    return os.fspath(coco) if isinstance(coco, (str, os.PathLike)) else default


def read_image(image_dir: Union[str, os.PathLike], image: Mapping[str, Any]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a COCO image entry, checked against its height and width."""
    path = Path(image_dir) / image["file_name"]
    if not path.is_file():
        raise FileNotFoundError(f"image {image['id']}: file {path} not found")
    pixels = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f"image {image['id']}: {path} is not a readable image")
    if pixels.shape[:2] != (image["height"], image["width"]):
        raise ValueError(
            f"image {image['id']}: {path} is {pixels.shape[1]}x{pixels.shape[0]}, the annotations"
            f" say {image['width']}x{image['height']}"
        )
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
