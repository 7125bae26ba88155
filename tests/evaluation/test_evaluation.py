"""Evaluation on clean masks: AP derived by hand on squares, PR data, the Detectron2 evaluator.

Geometry used throughout: 64x64 images, 20x20 squares. A square shifted by 4 px along x overlaps
the original on 16x20 = 320 px, so IoU = 320 / (400 + 400 - 320) = 320 / 480 = 2/3. Over COCO's
thresholds 0.50, 0.55, ..., 0.95 it matches at 0.50, 0.55, 0.60, 0.65 (4 of 10): AP50 = 100,
AP75 = 0, AP = 40.
"""

import copy
import json
import logging
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import Boxes, Instances
from noisy_mask.utils.run_folders import DETECTIONS_FILE
from noisy_mask.evaluation.coco_eval import (
    CURVE_NAMES,
    PR_INDEX,
    CleanMaskEvaluator,
    evaluate_coco_json,
    load_pr_data,
    pr_data_file,
    save_pr_data,
)

H = W = 64
S = 20  # side of the squares


def square(x0: int, y0: int, size: int = S) -> np.ndarray:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[y0 : y0 + size, x0 : x0 + size] = 1
    return mask


def rle(mask: np.ndarray) -> dict:
    encoded = mask_util.encode(np.asfortranarray(mask))
    encoded["counts"] = encoded["counts"].decode("utf-8")
    return encoded


def gt_square(ann_id: int, image_id: int, x0: int, y0: int, category_id: int = 1) -> dict:
    """A ground-truth square as a polygon; it rasterizes to exactly square(x0, y0)."""
    x1, y1 = x0 + S, y0 + S
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
        "bbox": [x0, y0, S, S],
        "area": S * S,
        "iscrowd": 0,
    }


def gt_dict(annotations, num_images=1, categories=((1, "cat"),)) -> dict:
    return {
        "images": [
            {"id": i, "height": H, "width": W, "file_name": f"{i}.png"}
            for i in range(1, num_images + 1)
        ],
        "annotations": annotations,
        "categories": [{"id": c, "name": n} for c, n in categories],
    }


def pred(image_id: int, x0: int, y0: int, score: float = 0.9, category_id: int = 1) -> dict:
    return {
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": rle(square(x0, y0)),
        "bbox": [x0, y0, S, S],
        "score": score,
    }


def test_prediction_equal_to_ground_truth_gives_ap_100():
    gt = gt_dict([gt_square(1, 1, 10, 10)])
    out = evaluate_coco_json(gt, [pred(1, 10, 10)], ("bbox", "segm", "boundary"))
    for iou_type in ("bbox", "segm", "boundary"):
        m = out[iou_type]["metrics"]
        assert (m["AP"], m["AP50"], m["AP75"]) == (100.0, 100.0, 100.0)
        # 400 px < 32^2: a small object; the medium and large ranges have no ground truth (NaN).
        assert m["APs"] == 100.0
        assert np.isnan(m["APm"]) and np.isnan(m["APl"])


def test_ground_truth_and_results_are_left_as_they_were():
    # loadRes adds area, id and iscrowd to every result it is given, and the segm pass drops
    # "bbox": both must happen on copies.
    gt = gt_dict([gt_square(1, 1, 10, 10)])
    results = [pred(1, 10, 10), pred(1, 30, 30, score=0.5)]
    gt_before, results_before = copy.deepcopy(gt), copy.deepcopy(results)
    out = evaluate_coco_json(gt, results, ("bbox", "segm", "boundary"))
    assert out["segm"]["metrics"]["AP"] == 100.0
    assert gt == gt_before
    assert results == results_before


def test_shifted_square_mask_and_boundary_iou():
    gt = gt_dict([gt_square(1, 1, 10, 10)])
    out = evaluate_coco_json(gt, [pred(1, 14, 10)], ("segm", "boundary"))
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
    gt = gt_dict([gt_square(1, 1, 10, 10)])
    out = evaluate_coco_json(gt, [pred(1, 14, 10)], ("boundary",), boundary_dilation_ratio=0.12)
    assert out["boundary"]["metrics"]["AP"] == pytest.approx(40.0)
    assert out["boundary"]["metrics"]["AP50"] == 100.0


def test_missed_object_halves_recall():
    # Two objects, one found exactly: recall 1/2 at every IoU threshold. Interpolated
    # precision is 1 at the 51 recall thresholds 0.00..0.50 and 0 at the 50 above:
    # AP = 51 / 101 = 50.495 %.
    gt = gt_dict([gt_square(1, 1, 4, 4), gt_square(2, 1, 36, 36)])
    out = evaluate_coco_json(gt, [pred(1, 4, 4)], ("segm",))
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
    gt = gt_dict([gt_square(1, 1, 4, 4)])
    out = evaluate_coco_json(gt, [pred(1, 40, 40, score=0.9), pred(1, 4, 4, score=0.8)], ("segm",))
    assert out["segm"]["metrics"]["AP"] == pytest.approx(50.0)
    pr = out["segm"]["pr_data"]
    np.testing.assert_allclose(pr["precision"][:, :, 0, 0, -1], 0.5)
    # The score at which each recall threshold is reached: recall 0 already with the first
    # detection (0.9), every r > 0 only with the true positive (0.8).
    np.testing.assert_allclose(pr["scores"][:, 0, 0, 0, -1], 0.9)
    np.testing.assert_allclose(pr["scores"][:, 1:, 0, 0, -1], 0.8)


def three_category_case():
    """cat: exact (AP 100); dog: shifted by 4 px (AP 40, AP50 100, AP75 0); bird: no ground
    truth, one false positive (absent: -1 in precision, NaN AP)."""
    categories = ((1, "cat"), (3, "dog"), (5, "bird"))
    gt = gt_dict(
        [gt_square(1, 1, 4, 4, category_id=1), gt_square(2, 2, 10, 10, category_id=3)],
        num_images=2,
        categories=categories,
    )
    results = [
        pred(1, 4, 4, category_id=1),
        pred(2, 14, 10, category_id=3),
        pred(2, 40, 40, category_id=5),
    ]
    return gt, results


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
        ann = gt_square(ann_id, image_id, 0, 0, category_id)
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
    gt = gt_dict(annotations, num_images=5, categories=categories)
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
    gt = gt_dict([gt_square(1, 1, 10, 10)])
    with caplog.at_level(logging.WARNING, logger="noisy_mask.evaluation"):
        out = evaluate_coco_json(gt, [], ("segm", "boundary"))
    assert "No predictions" in caplog.text
    for iou_type in ("segm", "boundary"):
        assert out[iou_type]["metrics"]["AP"] == 0.0
        np.testing.assert_array_equal(out[iou_type]["pr_data"]["mean_precision"], 0.0)


def test_pr_data_written_and_reloaded(tmp_path):
    gt = gt_dict([gt_square(1, 1, 4, 4), gt_square(2, 1, 36, 36)])
    out = evaluate_coco_json(gt, [pred(1, 4, 4)], ("segm", "boundary"))
    index_path = save_pr_data(tmp_path, out, {"iteration": 7})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [PR_INDEX, pr_data_file("segm"), pr_data_file("boundary")]
    )  # no temporary files left behind
    loaded = load_pr_data(tmp_path)
    index = json.loads(index_path.read_text())
    assert index["iteration"] == 7 and loaded["index"] == index
    assert index["iou_types"]["segm"]["precision_shape"] == [10, 101, 1, 4, 3]
    for iou_type in ("segm", "boundary"):
        data = loaded[iou_type]
        assert data["precision"].shape == (10, 101, 1, 4, 3)
        assert data["scores"].shape == (10, 101, 1, 4, 3)
        assert data["category_precision"].shape == (3, 1, 101)
        np.testing.assert_allclose(data["recall_thresholds"], np.linspace(0, 1, 101))
        np.testing.assert_allclose(data["iou_thresholds"], np.linspace(0.5, 0.95, 10))
        # Precision 1 at every recall threshold up to the achieved recall 0.5, then 0.
        np.testing.assert_array_equal(data["precision"][:, :51, 0, 0, -1], 1.0)
        np.testing.assert_array_equal(data["precision"][:, 51:, 0, 0, -1], 0.0)
        for key, value in out[iou_type]["pr_data"].items():
            np.testing.assert_array_equal(data[key], value)
        assert index["iou_types"][iou_type]["metrics"]["AP"] == pytest.approx(100 * 51 / 101)


def test_load_pr_data_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=PR_INDEX):
        load_pr_data(tmp_path)


def test_bad_inputs_are_named():
    gt = gt_dict([gt_square(1, 1, 10, 10)])
    with pytest.raises(ValueError, match="image_id 9"):
        evaluate_coco_json(gt, [pred(9, 10, 10)])
    with pytest.raises(ValueError, match="category_id 4"):
        evaluate_coco_json(gt, [pred(1, 10, 10, category_id=4)])
    bad = gt_dict([gt_square(1, 1, 10, 10)])
    del bad["annotations"][0]["area"]
    with pytest.raises(ValueError, match="annotation 1 has no 'area'"):
        evaluate_coco_json(bad, [])
    with pytest.raises(ValueError, match="iou_types"):
        evaluate_coco_json(gt, [], ("mask",))


@pytest.fixture
def registered_dataset(tmp_path):
    """The three-category ground truth registered with register_coco_instances and loaded as the
    test loader would (which fills thing_dataset_id_to_contiguous_id: 1->0, 3->1, 5->2)."""
    gt, _ = three_category_case()
    json_file = tmp_path / "clean.json"
    json_file.write_text(json.dumps(gt))
    name = f"noisy_mask_eval_test_{uuid.uuid4().hex}"
    register_coco_instances(name, {}, str(json_file), str(tmp_path))
    DatasetCatalog.get(name)
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def instances(masks, classes, scores) -> Instances:
    inst = Instances((H, W))
    inst.pred_masks = torch.as_tensor(np.stack(masks)).bool() if masks else torch.zeros(0, H, W)
    boxes = [mask_util.toBbox(mask_util.encode(np.asfortranarray(m))) for m in masks]
    xyxy = [[x, y, x + w, y + h] for x, y, w, h in boxes]
    inst.pred_boxes = Boxes(torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
    return inst


def test_evaluator_through_reset_process_evaluate(registered_dataset, tmp_path):
    out_dir = tmp_path / "inference"
    evaluator = CleanMaskEvaluator(registered_dataset, str(out_dir), distributed=True)
    assert MetadataCatalog.get(registered_dataset).thing_dataset_id_to_contiguous_id == {
        1: 0,
        3: 1,
        5: 2,
    }
    evaluator.reset()
    # Contiguous classes: 0 = cat (id 1), 1 = dog (id 3), 2 = bird (id 5).
    evaluator.process([{"image_id": 1}], [{"instances": instances([square(4, 4)], [0], [0.9])}])
    evaluator.process(
        [{"image_id": 2}],
        [{"instances": instances([square(14, 10), square(40, 40)], [1, 2], [0.9, 0.8])}],
    )
    results = evaluator.evaluate()
    assert list(results) == ["bbox", "segm", "boundary"]
    # segm: cat 100, dog 40 (mask IoU 2/3), bird absent -> AP 70.
    assert results["segm"]["AP"] == pytest.approx(70.0)
    assert results["segm"]["AP-dog"] == pytest.approx(40.0)
    # bbox: the boxes are the squares' boxes, same IoU 2/3 -> same AP.
    assert results["bbox"]["AP"] == pytest.approx(70.0)
    # boundary: dog's boundary IoU is 2/7 (test_shifted_square...) -> 0; AP (100 + 0) / 2.
    assert results["boundary"]["AP"] == pytest.approx(50.0)
    assert np.isnan(results["boundary"]["AP-bird"])

    written = json.loads((out_dir / DETECTIONS_FILE).read_text())
    assert sorted((r["image_id"], r["category_id"]) for r in written) == [(1, 1), (2, 3), (2, 5)]
    loaded = load_pr_data(out_dir)
    assert loaded["index"]["dataset"] == registered_dataset
    assert loaded["index"]["iteration"] is None
    np.testing.assert_allclose(100 * loaded["boundary"]["mean_ap"][2], 50.0)

    # reset() forgets the predictions: nothing to evaluate.
    evaluator.reset()
    assert evaluator.evaluate() == {}


class FixedOutputs(torch.nn.Module):
    """Stands in for a detector: returns recorded outputs by image id."""

    def __init__(self, outputs_by_image):
        super().__init__()
        self.outputs_by_image = outputs_by_image

    def forward(self, batched_inputs):
        return [self.outputs_by_image[x["image_id"]] for x in batched_inputs]


def test_evaluator_inside_inference_on_dataset(registered_dataset, tmp_path):
    from detectron2.evaluation import inference_on_dataset

    model = FixedOutputs(
        {
            1: {"instances": instances([square(4, 4)], [0], [0.9])},
            2: {"instances": instances([square(10, 10)], [1], [0.7])},
        }
    )
    loader = [[{"image_id": 1}], [{"image_id": 2}]]  # batches of one image, as the test loader
    evaluator = CleanMaskEvaluator(registered_dataset, str(tmp_path))
    results = inference_on_dataset(model, loader, evaluator)
    # Both squares predicted exactly: AP 100 for cat and dog, bird absent.
    for iou_type in ("bbox", "segm", "boundary"):
        assert results[iou_type]["AP"] == 100.0
        assert results[iou_type]["AP-dog"] == 100.0


def test_evaluator_images_without_detections_give_ap_0(registered_dataset, tmp_path):
    evaluator = CleanMaskEvaluator(registered_dataset, str(tmp_path), distributed=False)
    evaluator.reset()
    evaluator.process([{"image_id": 1}], [{"instances": instances([], [], [])}])
    results = evaluator.evaluate()
    assert results["segm"]["AP"] == 0.0 and results["boundary"]["AP"] == 0.0


def test_evaluator_rejects_out_of_range_class(registered_dataset):
    evaluator = CleanMaskEvaluator(registered_dataset, None, distributed=False)
    evaluator.reset()
    evaluator.process([{"image_id": 1}], [{"instances": instances([square(4, 4)], [3], [0.9])}])
    with pytest.raises(ValueError, match="predicted class 3"):
        evaluator.evaluate()
