"""Pairing a noisy COCO file with its clean one: hand-made pairs, a pair made by noise_file (the
same counts and IoUs as its report), crowd regions left out, bad pairs, and the choice of images
to draw."""

import numpy as np
import pytest
from samples import hand_made_noise, write_json

from noisy_mask.coco.io import AnnotationError
from noisy_mask.noise.matching import (
    DELETED,
    FLIPPED,
    KEPT,
    InstanceNoise,
    choose_noise_images,
    match_noise,
)


def test_match_noise_hand_made():
    clean, noisy = hand_made_noise()
    matches = match_noise(clean, noisy)
    # Square 1 moved by 5 px: overlap 15 x 20 = 300, union 400 + 400 - 300 = 500, IoU 0.6.
    assert [(m.ann_id, m.status) for m in matches] == [(1, KEPT), (2, DELETED), (3, FLIPPED)]
    assert matches[0].iou == pytest.approx(0.6, abs=1e-12)
    assert matches[1].iou is None and matches[1].new_category_id is None
    assert matches[2].iou == 1.0 and (matches[2].category_id, matches[2].new_category_id) == (2, 1)


def test_crowd_regions_are_not_matched():
    # a crowd region in both files (as the noise writes it) is not an instance of the noise
    clean, noisy = hand_made_noise()
    crowd = {"id": 7, "image_id": 1, "category_id": 1, "iscrowd": 1,
             "segmentation": {"size": [64, 64], "counts": [0, 64 * 8, 64 * 56]}}  # fmt: skip
    clean["annotations"].append(crowd)
    noisy["annotations"].append(dict(crowd))
    assert [(m.ann_id, m.status) for m in match_noise(clean, noisy)] == [
        (1, KEPT), (2, DELETED), (3, FLIPPED)]  # fmt: skip


def test_match_noise_rejects_a_foreign_annotation(tmp_path):
    clean, noisy = hand_made_noise()
    noisy["annotations"][0]["id"] = 99
    path = write_json(tmp_path / "noisy.json", noisy)
    with pytest.raises(AnnotationError, match=r"noisy\.json: annotation 99 is not in"):
        match_noise(clean, path)
    clean, noisy = hand_made_noise()
    noisy["annotations"][1]["segmentation"] = [[1, 2, 3]]
    with pytest.raises(ValueError, match=r"annotation 3 \(image 1\): 'segmentation'.*odd"):
        match_noise(clean, noisy)


def test_two_empty_masks_have_no_iou():
    # An empty clean mask kept empty: 0 / 0, NaN (coco.rle.mask_iou), left out of the means.
    clean, noisy = hand_made_noise()
    for data in (clean, noisy):
        data["annotations"][-1]["segmentation"] = {"size": [64, 64], "counts": [64 * 64]}
    matches = match_noise(clean, noisy)
    assert matches[2].status == FLIPPED and np.isnan(matches[2].iou)


def test_choose_noise_images():
    def m(image_id, status):
        return InstanceNoise(image_id, 1.0, status, image_id, 1, 1)

    matches = [m(i, KEPT) for i in range(1, 9)] + [m(3, DELETED), m(7, FLIPPED)]
    chosen = choose_noise_images(matches, 4, seed=0)
    # 4 // 2 = 2 slots for the images with a mark: both 3 and 7; 2 more from the other six.
    assert len(chosen) == 4 and {3, 7} <= set(chosen) and chosen == sorted(chosen)
    assert choose_noise_images(matches, 4, seed=0) == chosen
    assert choose_noise_images(matches, 20, seed=5) == list(range(1, 9))


def test_match_noise_agrees_with_the_noise_report(noisy_shapes):
    matches = match_noise(noisy_shapes["val_json"], noisy_shapes["noisy"])
    report = noisy_shapes["report"]
    assert len(matches) == report["instances"]
    assert [m.ann_id for m in matches if m.status == DELETED] == report["deleted_ids"]
    flips = {
        str(m.ann_id): [m.category_id, m.new_category_id] for m in matches if m.status == FLIPPED
    }
    assert flips == report["flipped_ids"]
    assert report["deleted"] >= 1 and report["flipped"] >= 1  # both kinds are exercised
    # noise_file measures the same IoU (clean vs noisy mask) with its own code.
    ious = [m.iou for m in matches if m.iou is not None]
    assert np.mean(ious) == pytest.approx(report["mask_iou"]["mean"], abs=1e-6)
