"""A CPU config sized from a COCO dataset, for grids on a user's data without a config of theirs.

It extends the built-in grid's fine-tuning config (ResNet-18 FPN, GroupNorm, NoisyMaskROIHeads so
that image losses work) and sets what the data decides:

- ROI_HEADS.NUM_CLASSES: the number of categories;
- INPUT sizes: the median shorter image side (at most MAX_SHORTER_SIDE, so that large images stay
  affordable on a CPU; small images are not enlarged) and the longest side that aspect allows;
- INPUT.MASK_FORMAT: bitmask when any segmentation is RLE (detectron2's polygon format cannot
  read RLE), else polygon;
- MODEL.PIXEL_MEAN / PIXEL_STD: per channel (BGR, as detectron2 reads images) over up to
  PIXEL_SAMPLE training images: a model trained from scratch sees normalized inputs whatever the
  data (grayscale images are read as three equal channels);
- crowded images: TEST.DETECTIONS_PER_IMAGE and the RPN's proposals kept at test time follow the
  most instances in one training image, and more RoIs are sampled per image when it is large.
"""

import math
from pathlib import Path
from statistics import median
from typing import Any, Dict

import cv2
import numpy as np
import yaml

from ..coco.io import read_coco
from ..model_zoo import get_config_file
from ..utils.atomic import write_text_atomic

BASE_CONFIG = "shapes/Shapes-R18-FPN-finetune.yaml"
MAX_SHORTER_SIDE = 800
MAX_LONGER_SIDE = 1333
PIXEL_SAMPLE = 64


def dataset_config_values(train_json: str, train_images: str) -> Dict[str, Any]:
    """The config keys of the module docstring, as a nested dict, from the training split."""
    coco = read_coco(train_json)
    images = coco["images"]
    if not images or not coco["annotations"]:
        raise ValueError(f"{train_json}: no images or no annotations to size a config from")
    shorter = min(median(min(i["height"], i["width"]) for i in images), MAX_SHORTER_SIDE)
    aspect = max(max(i["height"], i["width"]) / min(i["height"], i["width"]) for i in images)
    longer = min(math.ceil(shorter * aspect), MAX_LONGER_SIDE)
    shorter = int(shorter)
    per_image: Dict[Any, int] = {}
    for ann in coco["annotations"]:
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
    most = max(per_image.values())
    detections = max(100, math.ceil(1.5 * most))
    has_rle = any(isinstance(a["segmentation"], dict) for a in coco["annotations"])
    mean, std = pixel_statistics(train_images, images)
    return {
        "MODEL": {
            "PIXEL_MEAN": mean,
            "PIXEL_STD": std,
            "ROI_HEADS": {
                "NUM_CLASSES": len(coco["categories"]),
                # 64 RoIs (a quarter of them foreground) are too few for images with many objects.
                "BATCH_SIZE_PER_IMAGE": 64 if most <= 16 else 128,
            },
            "RPN": {
                "PRE_NMS_TOPK_TEST": max(500, 2 * detections),
                "POST_NMS_TOPK_TEST": max(250, detections),
            },
        },
        "INPUT": {
            "MIN_SIZE_TRAIN": [shorter],
            "MAX_SIZE_TRAIN": longer,
            "MIN_SIZE_TEST": shorter,
            "MAX_SIZE_TEST": longer,
            "MASK_FORMAT": "bitmask" if has_rle else "polygon",
        },
        "SOLVER": {"IMS_PER_BATCH": 4 if shorter <= 400 else 2},
        "TEST": {"DETECTIONS_PER_IMAGE": detections},
    }


def pixel_statistics(image_dir: str, images, sample: int = PIXEL_SAMPLE):
    """Per-channel mean and standard deviation (BGR, 0-255) over up to `sample` images, evenly
    spaced in the file's order; each rounded to 0.1."""
    step = max(1, len(images) // sample)
    sums, squares, count = np.zeros(3), np.zeros(3), 0
    for image in images[::step][:sample]:
        path = Path(image_dir) / image["file_name"]
        pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if pixels is None:
            raise FileNotFoundError(f"image {image['id']}: {path} is missing or not an image")
        pixels = pixels.reshape(-1, 3).astype(np.float64)
        sums += pixels.sum(0)
        squares += (pixels ** 2).sum(0)
        count += len(pixels)
    mean = sums / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    # A flat channel would divide by zero; 1 leaves it as it is.
    return [round(float(m), 1) for m in mean], [round(max(float(s), 1.0), 1) for s in std]


def write_dataset_config(train_json: str, train_images: str, path: Path) -> Path:
    """Write the sized config to `path` (its _BASE_ is the installed fine-tuning config)."""
    values = dataset_config_values(train_json, train_images)
    text = (
        f"# Sized from {train_json} by noisy_mask.engine.dataset_config\n"
        + yaml.safe_dump({"_BASE_": get_config_file(BASE_CONFIG), **values}, sort_keys=False)
    )
    write_text_atomic(Path(path), text)
    return Path(path)
