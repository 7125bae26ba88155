"""Evaluation on clean masks (faster-coco-eval): AP derived by hand on squares, equality with
pycocotools, the ground truth checked, and no detectron2 import.

Geometry used throughout: 64x64 images, 20x20 squares. A square shifted by 4 px along x overlaps
the original on 16x20 = 320 px, so IoU = 320 / (400 + 400 - 320) = 320 / 480 = 2/3. Over COCO's
thresholds 0.50, 0.55, ..., 0.95 it matches at 0.50, 0.55, 0.60, 0.65 (4 of 10): AP50 = 100,
AP75 = 0, AP = 40.
"""

import copy
import json
import logging

import numpy as np
import pytest
from samples import (
    coco_dict,
    heavy,
    modules_loaded_by_import,
    rle,
    square_annotation,
    square_result,
    three_category_case,
)

from noisy_mask.coco.io import AnnotationError
from noisy_mask.evaluation.coco_eval import evaluate_coco_json
from noisy_mask.evaluation.pr_data import CURVE_NAMES

H = W = 64  # the images of `coco_dict`


def test_prediction_equal_to_ground_truth_gives_ap_100():
    gt = coco_dict([square_annotation(1, 1, 10, 10)])
    out = evaluate_coco_json(gt, [square_result(1, 10, 10)], ("bbox", "segm", "boundary"))
    for iou_type in ("bbox", "segm", "boundary"):
        m = out[iou_type]["metrics"]
        assert (m["AP"], m["AP50"], m["AP75"]) == (100.0, 100.0, 100.0)
        # 400 px < 32^2: a small object; the medium and large ranges have no ground truth (NaN).
        assert m["APs"] == 100.0
        assert np.isnan(m["APm"]) and np.isnan(m["APl"])


def test_ground_truth_and_results_are_left_as_they_were():
    # loadRes adds area, id and iscrowd to every result it is given, and the segm pass drops
    # "bbox": both must happen on copies.
    gt = coco_dict([square_annotation(1, 1, 10, 10)])
    results = [square_result(1, 10, 10), square_result(1, 30, 30, score=0.5)]
    gt_before, results_before = copy.deepcopy(gt), copy.deepcopy(results)
    out = evaluate_coco_json(gt, results, ("bbox", "segm", "boundary"))
    assert out["segm"]["metrics"]["AP"] == 100.0
    assert gt == gt_before
    assert results == results_before


def test_shifted_square_mask_and_boundary_iou():
    gt = coco_dict([square_annotation(1, 1, 10, 10)])
    out = evaluate_coco_json(gt, [square_result(1, 14, 10)], ("segm", "boundary"))
    # Mask IoU 2/3 (module docstring): AP50 100, AP75 0, AP 40.
    segm = out["segm"]["metrics"]
    assert (segm["AP50"], segm["AP75"]) == (100.0, 0.0)
    assert segm["AP"] == pytest.approx(40.0)
    # Boundary IoU with dilation round(0.02 * sqrt(64^2 + 64^2)) = round(1.81) = 2: each
    # contour is a ring 2 px wide, 400 - 16^2 = 144 px. Inside the overlap x in [14, 30) the
    # rings share the rows y in {10, 11, 28, 29}: 4 * 16 = 64 px; on the other 16 rows the ground
    # truth ring is at x in {28, 29} and the prediction ring at x in {14, 15}: no overlap.
    # IoU_b = 64 / (144 + 144 - 64) = 64 / 224 = 2/7 < 0.5, and min(2/3, 2/7) = 2/7: AP 0.
    boundary = out["boundary"]["metrics"]
    assert (boundary["AP"], boundary["AP50"], boundary["AP75"]) == (0.0, 0.0, 0.0)


def test_boundary_as_wide_as_the_object_equals_mask_ap():
    # dilation round(0.12 * 90.5) = 11 >= 10 = half the side: the "contour" is the whole
    # square, so IoU_b = IoU = 2/3 and boundary AP = mask AP = 40.
    gt = coco_dict([square_annotation(1, 1, 10, 10)])
    out = evaluate_coco_json(
        gt, [square_result(1, 14, 10)], ("boundary",), boundary_dilation_ratio=0.12
    )
    assert out["boundary"]["metrics"]["AP"] == pytest.approx(40.0)
    assert out["boundary"]["metrics"]["AP50"] == 100.0


def test_missed_object_halves_recall():
    # Two objects, one found exactly: recall 1/2 at every IoU threshold. Interpolated
    # precision is 1 at the 51 recall thresholds 0.00..0.50 and 0 at the 50 above:
    # AP = 51 / 101 = 50.495 %.
    gt = coco_dict([square_annotation(1, 1, 4, 4), square_annotation(2, 1, 36, 36)])
    out = evaluate_coco_json(gt, [square_result(1, 4, 4)], ("segm",))
    assert out["segm"]["metrics"]["AP"] == pytest.approx(100 * 51 / 101)
    pr = out["segm"]["pr_data"]
    np.testing.assert_array_equal(pr["recall"][:, 0, 0, -1], np.full(10, 0.5))
    expected = np.r_[np.ones(51), np.zeros(50)]
    for row in range(len(CURVE_NAMES)):
        np.testing.assert_array_equal(pr["mean_precision"][row], expected)
    np.testing.assert_allclose(pr["mean_ap"], [51 / 101] * 3)


def test_false_positive_ranked_first_halves_precision():
    # Detections by score: a false positive (0.9), then the exact match (0.8). At recall 1 the
    # precision is 1/2 and nothing above recall 0 is better, so p(r) = 1/2 for all r: AP = 50.
    gt = coco_dict([square_annotation(1, 1, 4, 4)])
    out = evaluate_coco_json(
        gt, [square_result(1, 40, 40, score=0.9), square_result(1, 4, 4, score=0.8)], ("segm",)
    )
    assert out["segm"]["metrics"]["AP"] == pytest.approx(50.0)
    pr = out["segm"]["pr_data"]
    np.testing.assert_allclose(pr["precision"][:, :, 0, 0, -1], 0.5)
    # The score at which each recall threshold is reached: recall 0 already with the first
    # detection (0.9), every r > 0 only with the true positive (0.8).
    np.testing.assert_allclose(pr["scores"][:, 0, 0, 0, -1], 0.9)
    np.testing.assert_allclose(pr["scores"][:, 1:, 0, 0, -1], 0.8)


def test_per_category_ap_and_absent_category():
    gt, results = three_category_case()
    out = evaluate_coco_json(gt, results, ("segm",))
    m = out["segm"]["metrics"]
    assert m["AP-cat"] == 100.0
    assert m["AP-dog"] == pytest.approx(40.0)
    assert np.isnan(m["AP-bird"])
    assert m["AP"] == pytest.approx((100 + 40) / 2)
    pr = out["segm"]["pr_data"]
    assert pr["category_ids"].tolist() == [1, 3, 5]
    assert pr["category_names"].tolist() == ["cat", "dog", "bird"]
    assert np.all(pr["precision"][:, :, 2] == -1)
    assert np.all(np.isnan(pr["category_precision"][:, 2]))
    # Curves over present categories reproduce AP50, AP75 and AP.
    np.testing.assert_allclose(pr["category_ap"][:, :2], [[1.0, 1.0], [1.0, 0.0], [1.0, 0.4]])
    np.testing.assert_allclose(100 * pr["mean_ap"], [m["AP50"], m["AP75"], m["AP"]])
    np.testing.assert_allclose(pr["mean_precision"][1], 0.5)  # IoU 0.75: (1 + 0) / 2


def test_matches_pycocotools_on_random_rectangles():
    # Reference: the official COCO API, evaluated as detectron2 does (segm results without bbox).
    rng = np.random.default_rng(0)
    categories = ((1, "cat"), (2, "dog"))
    annotations, results = [], []
    for ann_id in range(1, 41):
        image_id, category_id = int(rng.integers(1, 6)), int(rng.integers(1, 3))
        x0, y0, w, h = (int(v) for v in rng.integers([0, 0, 4, 4], [40, 40, 24, 24]))
        x1, y1 = min(x0 + w, W), min(y0 + h, H)
        ann = square_annotation(ann_id, image_id, 0, 0, category_id)
        ann["segmentation"] = [[x0, y0, x1, y0, x1, y1, x0, y1]]
        ann["bbox"], ann["area"] = [x0, y0, x1 - x0, y1 - y0], (x1 - x0) * (y1 - y0)
        annotations.append(ann)
        mask = np.zeros((H, W), dtype=np.uint8)
        dx, dy = (int(v) for v in rng.integers(-3, 4, 2))
        mask[max(y0 + dy, 0) : y1 + dy, max(x0 + dx, 0) : x1 + dx] = 1
        if rng.random() < 0.8:
            score = float(rng.random())
            results.append(
                {
                    "image_id": image_id,
                    "category_id": category_id,
                    "segmentation": rle(mask),
                    "score": score,
                }
            )
    gt = coco_dict(annotations, num_images=5, categories=categories)
    ours = evaluate_coco_json(gt, results, ("segm",))["segm"]

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = COCO()
    coco_gt.dataset = json.loads(json.dumps(gt))
    coco_gt.createIndex()
    ev = COCOeval(coco_gt, coco_gt.loadRes(json.loads(json.dumps(results))), "segm")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert 20 < ev.stats[0] * 100 < 90  # a non-trivial case
    expected = [100 * v if v >= 0 else float("nan") for v in ev.stats[:6]]
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
    np.testing.assert_allclose([ours["metrics"][m] for m in names], expected, atol=1e-9)
    np.testing.assert_allclose(ours["pr_data"]["precision"], ev.eval["precision"], atol=1e-12)
    np.testing.assert_allclose(ours["pr_data"]["recall"], ev.eval["recall"], atol=1e-12)


def test_no_predictions_gives_ap_0_with_warning(caplog):
    gt = coco_dict([square_annotation(1, 1, 10, 10)])
    with caplog.at_level(logging.WARNING, logger="noisy_mask.evaluation"):
        out = evaluate_coco_json(gt, [], ("segm", "boundary"))
    assert "No predictions" in caplog.text
    for iou_type in ("segm", "boundary"):
        assert out[iou_type]["metrics"]["AP"] == 0.0
        np.testing.assert_array_equal(out[iou_type]["pr_data"]["mean_precision"], 0.0)


def test_bad_inputs_are_named():
    gt = coco_dict([square_annotation(1, 1, 10, 10)])
    with pytest.raises(ValueError, match="image_id 9"):
        evaluate_coco_json(gt, [square_result(9, 10, 10)])
    with pytest.raises(ValueError, match="category_id 4"):
        evaluate_coco_json(gt, [square_result(1, 10, 10, category_id=4)])
    bad = coco_dict([square_annotation(1, 1, 10, 10)])
    del bad["annotations"][0]["area"]
    with pytest.raises(AnnotationError) as error:
        evaluate_coco_json(bad, [])
    assert str(error.value) == "ground truth: annotation 1 (image 1): 'area' is missing"
    bad = coco_dict([square_annotation(1, 1, 10, 10)])
    bad["annotations"][0]["segmentation"] = [[10, 10, 30, 10, 30]]
    with pytest.raises(
        AnnotationError, match=r"annotation 1 \(image 1\): 'segmentation' polygon 0 has 5 "
    ):
        evaluate_coco_json(bad, [])
    bad = coco_dict([], categories=())
    with pytest.raises(AnnotationError, match="^ground truth: 'categories' is empty$"):
        evaluate_coco_json(bad, [])
    with pytest.raises(ValueError, match="iou_types"):
        evaluate_coco_json(gt, [], ("mask",))


def test_ground_truth_file_errors_name_the_file(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text("[]")
    with pytest.raises(AnnotationError, match=f"^{path}: top level is a list, expected an object$"):
        evaluate_coco_json(path, [])
    with pytest.raises(FileNotFoundError, match="nope.json: no such file"):
        evaluate_coco_json(tmp_path / "nope.json", [])


def test_imports_no_detectron2_nor_torch():
    assert not heavy(modules_loaded_by_import("noisy_mask.evaluation.coco_eval"))
