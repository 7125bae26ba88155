"""The CPU config sized from a user's COCO data."""
import json

import cv2
import numpy as np
import pytest
import yaml

from noisy_mask.engine.dataset_config import dataset_config_values, write_dataset_config


def write_dataset(tmp_path, per_image, rle=True, sizes=((200, 300), (200, 300))):
    """Grayscale images of one flat grey level each (10, 30, ...), with `per_image[i]` square
    instances of the one category "nucleus" on image i, as RLE or polygons."""
    images, annotations = [], []
    for index, ((height, width), count) in enumerate(zip(sizes, per_image)):
        name = f"{index}.png"
        cv2.imwrite(str(tmp_path / name), np.full((height, width), 10 + 20 * index, np.uint8))
        images.append(dict(id=index + 1, file_name=name, height=height, width=width))
        for k in range(count):
            x = 10 + 20 * k
            if rle:
                mask = np.zeros((height, width), np.uint8, order="F")
                mask[10:20, x:x + 10] = 1
                from pycocotools import mask as mask_utils

                segmentation = mask_utils.encode(np.asfortranarray(mask))
                segmentation["counts"] = segmentation["counts"].decode()
            else:
                segmentation = [[x, 10, x + 10, 10, x + 10, 20, x, 20]]
            annotations.append(dict(id=len(annotations) + 1, image_id=index + 1, category_id=7,
                                    segmentation=segmentation, bbox=[x, 10, 10, 10], area=100,
                                    iscrowd=0))
    path = tmp_path / "train.json"
    path.write_text(json.dumps(dict(images=images, annotations=annotations,
                                    categories=[dict(id=7, name="nucleus")])))
    return str(path)


def test_one_category_rle_grayscale(tmp_path):
    values = dataset_config_values(write_dataset(tmp_path, [3, 1]), str(tmp_path))
    assert values["MODEL"]["ROI_HEADS"]["NUM_CLASSES"] == 1
    assert values["INPUT"]["MASK_FORMAT"] == "bitmask"  # detectron2's polygon format reads no RLE
    # Both images are 200 x 300: shorter side 200, longer 200 x 1.5 = 300.
    assert values["INPUT"]["MIN_SIZE_TRAIN"] == [200] and values["INPUT"]["MIN_SIZE_TEST"] == 200
    assert values["INPUT"]["MAX_SIZE_TRAIN"] == 300 and values["INPUT"]["MAX_SIZE_TEST"] == 300
    # Grey levels 10 and 30 over equal pixel counts: mean 20, std 10, the same in B, G and R.
    assert values["MODEL"]["PIXEL_MEAN"] == [20.0, 20.0, 20.0]
    assert values["MODEL"]["PIXEL_STD"] == [10.0, 10.0, 10.0]
    # At most 3 instances in an image: the floor of 100 detections and 64 RoIs holds.
    assert values["TEST"]["DETECTIONS_PER_IMAGE"] == 100
    assert values["MODEL"]["ROI_HEADS"]["BATCH_SIZE_PER_IMAGE"] == 64
    assert values["SOLVER"]["IMS_PER_BATCH"] == 4


def test_polygons_large_images_and_crowds(tmp_path):
    # Shorter sides 900 and 1000 -> median 950, capped at 800; aspect 1200 / 900 = 4 / 3 -> 1067.
    sizes = ((900, 1200), (1000, 1000))
    path = write_dataset(tmp_path, [40, 1], rle=False, sizes=sizes)
    values = dataset_config_values(path, str(tmp_path))
    assert values["INPUT"]["MASK_FORMAT"] == "polygon"
    assert values["INPUT"]["MIN_SIZE_TRAIN"] == [800]
    assert values["INPUT"]["MAX_SIZE_TRAIN"] == 1067  # ceil(800 * 4 / 3)
    assert values["TEST"]["DETECTIONS_PER_IMAGE"] == 100  # max(100, 1.5 x 40 = 60)
    assert values["MODEL"]["ROI_HEADS"]["BATCH_SIZE_PER_IMAGE"] == 128  # 40 instances > 16
    assert values["SOLVER"]["IMS_PER_BATCH"] == 2  # 800 px images


def test_written_config_loads_in_detectron2(tmp_path):
    from detectron2.config import get_cfg

    from noisy_mask import add_noisy_mask_config

    path = write_dataset_config(write_dataset(tmp_path, [2, 2]), str(tmp_path),
                                tmp_path / "out" / "config.yaml")
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_file(str(path))
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 1
    assert cfg.MODEL.ROI_HEADS.NAME == "NoisyMaskROIHeads"  # from the fine-tuning base config
    assert cfg.INPUT.MASK_FORMAT == "bitmask"
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (200,)
    assert "_BASE_" in yaml.safe_load(path.read_text())


def test_missing_image_is_named(tmp_path):
    path = write_dataset(tmp_path, [1, 1])
    (tmp_path / "1.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"image 2: .*1\.png"):
        dataset_config_values(path, str(tmp_path))
