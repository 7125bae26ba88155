"""A run's detections as train_net's evaluation leaves them: the results file and mask AP of a run
folder, bad results named, and the per-image mean best-match IoU that picks the images where runs
differ."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from samples import polygons_mask, pycocotools_rle, square

from noisy_mask.evaluation.detections import (
    Detection,
    choose_by_spread,
    find_results_file,
    ground_truth_rles,
    image_ious,
    mean_best_iou,
    read_detections,
    read_mask_ap,
)


def test_mean_best_iou_hand_made():
    gt_a, gt_b = square(64, 64, 10, 10, 20), square(64, 64, 40, 40, 10)
    to_rle = pycocotools_rle
    moved = Detection(1, 0.9, to_rle(square(64, 64, 10, 20, 20)))
    other_class = Detection(2, 0.9, to_rle(gt_a))
    # Moved 10 px: overlap 10 x 20 = 200, union 600, IoU 1/3; the exact copy has the wrong class;
    # gt_b has no detection of its class: 0. Mean (1/3 + 0) / 2 = 1/6.
    value = mean_best_iou([to_rle(gt_a), to_rle(gt_b)], [1, 1], [moved, other_class])
    assert value == pytest.approx(1 / 6, abs=1e-12)
    assert mean_best_iou([to_rle(gt_a)], [2], [moved, other_class]) == 1.0
    assert mean_best_iou([to_rle(gt_a)], [1], []) == 0.0
    assert math.isnan(mean_best_iou([], [], [moved]))


def test_choose_by_spread():
    per_run = {1: [0.9, 0.9], 2: [0.2, 0.8], 3: [0.5, 0.6], 4: [math.nan, 1.0], 5: [0.4, 0.3]}
    # spreads 0, 0.6, 0.1, left out, 0.1 (ties 3 and 5: lower mean 0.35 first)
    assert choose_by_spread(per_run, 3) == [2, 5, 3]
    # One run: every spread is 0, the lowest values first.
    assert choose_by_spread({1: [0.9], 2: [0.1], 3: [0.5]}, 2) == [2, 3]


def test_image_ious_pick_the_image_where_runs_differ(shapes_runs):
    gt = shapes_runs["gt"]
    detections = [
        read_detections(find_results_file(shapes_runs[name]), gt, 0.5) for name in ("bce", "dice")
    ]
    assert sum(len(v) for v in detections[1].values()) == len(gt["annotations"])  # 0.3 dropped
    ious = image_ious(ground_truth_rles(gt), detections)
    # Reference: numpy IoU of each ground-truth mask with itself moved by 6 px on image 3.
    images = {image["id"]: image for image in gt["images"]}
    expected = []
    for ann in gt["annotations"]:
        if ann["image_id"] == 3:
            image = images[3]
            mask = polygons_mask(ann["segmentation"], image["height"], image["width"])
            moved = np.roll(mask, 6, axis=1)
            expected.append((mask & moved).sum() / (mask | moved).sum())
    assert ious[3][0] == pytest.approx(1.0)
    assert ious[3][1] == pytest.approx(np.mean(expected), abs=1e-12)
    assert all(v == pytest.approx([1.0, 1.0]) for k, v in ious.items() if k != 3)
    assert choose_by_spread(ious, 1) == [3]


def test_read_mask_ap_and_results_file(tmp_path):
    run = tmp_path / "run"
    (run / "inference" / "a").mkdir(parents=True)
    assert read_mask_ap(run) is None
    (run / "eval_results.json").write_text(json.dumps({"segm": {"AP": 12.5}}))
    assert read_mask_ap(run) == 12.5
    (run / "eval_results.json").write_text(json.dumps({"a": {"segm": {"AP": 1}}, "b": {}}))
    assert read_mask_ap(run, "a") == 1.0 and read_mask_ap(run) is None  # which dataset?

    with pytest.raises(FileNotFoundError, match=r"'.*run' has no detections: missing coco_inst"):
        find_results_file(run)
    (run / "inference" / "a" / "coco_instances_results.json").write_text("[]")
    assert find_results_file(run) == run / "inference" / "a" / "coco_instances_results.json"
    (run / "inference" / "b").mkdir()
    (run / "inference" / "b" / "coco_instances_results.json").write_text("[]")
    with pytest.raises(ValueError, match="several datasets .a, b.; choose one with --dataset"):
        find_results_file(run)
    assert find_results_file(run, "b").parent.name == "b"


def test_bad_results_are_named(tmp_path, noisy_shapes):
    gt = json.loads(Path(noisy_shapes["val_json"]).read_text())
    path = tmp_path / "coco_instances_results.json"
    path.write_text(json.dumps([{"image_id": 1, "category_id": 1, "score": 0.9}]))
    with pytest.raises(ValueError, match=r"results\.json: result #0 has no 'segmentation'"):
        read_detections(path, gt, 0.5)
    path.write_text(
        json.dumps([{"image_id": 1, "category_id": 9, "score": 0.9, "segmentation": []}])
    )
    with pytest.raises(ValueError, match=r"result #0 \(image 1\): 'category_id' 9 is not among"):
        read_detections(path, gt, 0.5)
