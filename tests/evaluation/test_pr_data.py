"""The precision/recall data files: written by save_pr_data from an evaluation, read back the same
by load_pr_data, and a missing file named."""

import json

import numpy as np
import pytest
from samples import (
    coco_dict,
    heavy,
    modules_loaded_by_import,
    square_annotation,
    square_result,
)

from noisy_mask.evaluation.coco_eval import evaluate_coco_json
from noisy_mask.evaluation.pr_data import PR_INDEX, load_pr_data, pr_data_file, save_pr_data


def test_pr_data_written_and_reloaded(tmp_path):
    gt = coco_dict([square_annotation(1, 1, 4, 4), square_annotation(2, 1, 36, 36)])
    out = evaluate_coco_json(gt, [square_result(1, 4, 4)], ("segm", "boundary"))
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


def test_imports_no_detectron2_nor_torch():
    assert not heavy(modules_loaded_by_import("noisy_mask.evaluation.pr_data"))
