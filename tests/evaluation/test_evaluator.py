"""The detectron2 evaluator over the clean masks of a registered dataset: through reset, process
and evaluate, inside inference_on_dataset, and with bad classes. Geometry as in test_coco_eval:
64 x 64 images, 20 x 20 squares, a shift of 4 px gives mask IoU 2/3."""

import json
import uuid

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.structures import Boxes, Instances
from pycocotools import mask as mask_utils
from samples import (
    ROD_IMAGE,
    SIDE,
    pycocotools_rle,
    rod,
    rods_coco,
    square,
    three_category_case,
    write_json,
)

from noisy_mask.evaluation.evaluator import CleanMaskEvaluator
from noisy_mask.evaluation.pr_data import load_pr_data
from noisy_mask.utils.run_folders import DETECTIONS_FILE

H = W = 64  # the images of `three_category_case`
S = SIDE  # of its squares


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
    boxes = [mask_utils.toBbox(pycocotools_rle(m)) for m in masks]
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
    evaluator.process(
        [{"image_id": 1}], [{"instances": instances([square(H, W, 4, 4, S)], [0], [0.9])}]
    )
    evaluator.process(
        [{"image_id": 2}],
        [
            {
                "instances": instances(
                    [square(H, W, 10, 14, S), square(H, W, 40, 40, S)], [1, 2], [0.9, 0.8]
                )
            }
        ],
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
            1: {"instances": instances([square(H, W, 4, 4, S)], [0], [0.9])},
            2: {"instances": instances([square(H, W, 10, 10, S)], [1], [0.7])},
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
    evaluator.process(
        [{"image_id": 1}], [{"instances": instances([square(H, W, 4, 4, S)], [3], [0.9])}]
    )
    with pytest.raises(ValueError, match="predicted class 3"):
        evaluator.evaluate()


# ---------------------------------------------------------------------------------------------
# TEST.BOUNDARY_DILATION_RATIO, from the config to the evaluation


@pytest.fixture
def registered_rods(tmp_path):
    """`rods_coco` (one 320 px image, three rods 17 px wide) registered under a fresh name."""
    gt = rods_coco(num_images=1)
    json_file = write_json(tmp_path / "rods.json", gt)
    name = f"noisy_mask_rods_{uuid.uuid4().hex}"
    register_coco_instances(name, {}, str(json_file), str(tmp_path))
    yield name, gt
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def rod_instances(shift: int) -> Instances:
    """The three rods of `rods_coco` moved `shift` px right, class 0, score 0.9."""
    masks = [rod(x0, 100, shift) for x0 in (40, 140, 240)]
    inst = Instances((ROD_IMAGE, ROD_IMAGE))
    inst.pred_masks = torch.as_tensor(np.stack(masks))
    boxes = [[x0 + shift, 100, x0 + shift + 17, 200] for x0 in (40, 140, 240)]
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.scores = torch.full((3,), 0.9)
    inst.pred_classes = torch.zeros(3, dtype=torch.int64)
    return inst


@pytest.mark.parametrize(
    "override, boundary_ap", [([], 80.0), (["0.0066"], 10.0), (["0.002"], 0.0)]
)
def test_the_config_ratio_reaches_the_evaluation(registered_rods, tmp_path, override, boundary_ap):
    # Boundary AP of rods moved 1 px, derived in test_boundary.py: 80 at the default 0.02 (a band
    # of 9 px holds the whole rod), 10 at 0.0066 (3 px), 0 at 0.002 (1 px); mask AP 80 at all.
    from detectron2.config import get_cfg

    from noisy_mask import add_noisy_mask_config, check_noisy_mask_config
    from noisy_mask.engine.trainer import Trainer

    name, _ = registered_rods
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_list(["TEST.BOUNDARY_DILATION_RATIO", *override] if override else [])
    check_noisy_mask_config(cfg)
    ratio = float(override[0]) if override else 0.02
    evaluator = Trainer.build_evaluator(cfg, name, str(tmp_path / "inference"))
    evaluator.reset()
    evaluator.process([{"image_id": 1}], [{"instances": rod_instances(1)}])
    results = evaluator.evaluate()
    assert results["segm"]["AP"] == pytest.approx(80.0)
    assert results["boundary"]["AP"] == pytest.approx(boundary_ap)
    # recorded with the results (eval_results.json, metrics.json) and beside the PR data
    assert results["boundary"]["dilation_ratio"] == ratio
    index = load_pr_data(tmp_path / "inference")["index"]
    assert index["boundary_dilation_ratio"] == ratio
    assert index["boundary_band"]["dilation_ratio"] == ratio
    assert index["boundary_band"]["band_px"] == {0.02: 9, 0.0066: 3, 0.002: 1}[ratio]
