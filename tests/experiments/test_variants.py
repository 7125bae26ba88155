"""Loss variants as practitioners set them: their references, their options reaching the config,
how much of its box a mask fills, and the table read from finished runs by hand."""
import json

import pytest

from noisy_mask.experiments.variants import (
    VARIANTS,
    annotation_box_fill,
    evaluate_at_thresholds,
    mask_box_fill,
    run_variants,
    with_references,
)
from noisy_mask.experiments.options import StartingPoint
from noisy_mask.engine.launcher import Launch, Schedule
from noisy_mask.utils.run_folders import DETECTIONS_FILE, EVAL_RESULTS_FILE


def test_each_variant_comes_after_its_reference_once():
    assert with_references(["dice_3x", "focal", "bce_3x"]) == ["bce_3x", "dice_3x", "bce", "focal"]
    with pytest.raises(ValueError, match="'dice_10x'"):
        with_references(["dice_10x"])


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_options_are_valid_config(name):
    from detectron2.config import get_cfg

    from noisy_mask.config import add_noisy_mask_config, mask_loss_from_config

    variant = VARIANTS[name]
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_list(["MODEL.ROI_MASK_HEAD.LOSS", variant.loss, *variant.options])
    loss, options, _ = mask_loss_from_config(cfg)
    assert loss == variant.loss
    if name == "focal_alpha_0.5":
        assert options == {"gamma": 2.0, "alpha": 0.5}
    if name == "focal_no_alpha":
        assert options["alpha"] == -1
    if name == "bce+dice_5_5":
        assert (options["bce.weight"], options["dice.weight"]) == (5.0, 5.0)


def _rle(mask_rows, height, width):
    """COCO RLE (compressed counts, as detectron2's results files hold) of a row-range mask."""
    import numpy as np
    from pycocotools import mask as mask_utils

    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    for rows, cols in mask_rows:
        mask[rows, cols] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def test_mask_box_fill_by_hand(tmp_path):
    detections = [
        # 5 of the 10 rows of a 10 x 10 box: 50 / 100
        {"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [0, 0, 10, 10],
         "segmentation": _rle([(slice(0, 5), slice(0, 10))], 20, 20)},
        # a full 4 x 4 box: 16 / 16
        {"image_id": 1, "category_id": 1, "score": 0.5, "bbox": [10, 10, 4, 4],
         "segmentation": _rle([(slice(10, 14), slice(10, 14))], 20, 20)},
        # below the score: left out
        {"image_id": 1, "category_id": 1, "score": 0.49, "bbox": [0, 0, 20, 20],
         "segmentation": _rle([(slice(0, 1), slice(0, 1))], 20, 20)},
    ]
    path = tmp_path / DETECTIONS_FILE
    path.write_text(json.dumps(detections))
    assert mask_box_fill(path) == pytest.approx((0.5 + 1.0) / 2)
    assert mask_box_fill(path, min_score=0.95) is None


def test_annotation_box_fill_by_hand(tmp_path):
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 20}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            # 20 pixels in a 5 x 8 box: 0.5
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 8], "area": 20,
             "iscrowd": 0, "segmentation": _rle([(slice(0, 4), slice(0, 5))], 20, 20)},
            # a rectangle polygon filling its box: 1
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 10, 6, 4], "area": 24,
             "iscrowd": 0, "segmentation": [[10, 10, 16, 10, 16, 14, 10, 14]]},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    assert annotation_box_fill(path) == pytest.approx((0.5 + 1.0) / 2)


def test_finished_variant_runs_are_read_into_a_paired_table(tmp_path):
    """Every run folder holds its results and detections: nothing is trained, and the table's
    gains are the per-seed differences with each variant's reference."""
    schedule = Schedule(num_train=3, num_val=2, max_iter=1)
    boundary = {("bce_3x", 0): 45.0, ("bce_3x", 1): 44.0,
                ("dice_3x", 0): 30.0, ("dice_3x", 1): 35.0}
    # A detection filling 3/4 of its box (dice_3x) or half of it (the others).
    fill_rows = {"dice_3x": slice(0, 3)}
    for (name, seed), value in boundary.items():
        run_dir = tmp_path / "runs" / "mid" / f"seed{seed}" / name
        (run_dir / "inference").mkdir(parents=True)
        results = {"segm": {"AP": value + 10}, "boundary": {"AP": value}, "bbox": {"AP": 50.0}}
        (run_dir / EVAL_RESULTS_FILE).write_text(json.dumps(results))
        rows = fill_rows.get(name, slice(0, 2))
        (run_dir / "inference" / DETECTIONS_FILE).write_text(json.dumps([
            {"image_id": 1, "category_id": 1, "score": 0.9, "bbox": [0, 0, 4, 4],
             "segmentation": _rle([(rows, slice(0, 4))], 8, 8)}]))
    text = run_variants(tmp_path, ["dice_3x"], ["mid"], [0, 1], launch=Launch(jobs=1),
                        schedule=schedule,
                        start=StartingPoint())
    assert not list(tmp_path.glob("runs/*/*/*/train_net.out"))
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| mid")}
    assert list(rows) == ["bce_3x", "dice_3x"]
    # dice_3x - bce_3x per seed: -15 and -9: mean -12, sample std 4.2
    assert "| -12.0 ± 4.2 vs bce_3x | -12.0 ± 4.2 vs bce_3x | 75 % | 2 |" in rows["dice_3x"]
    assert "| 3 | 50.0 ± 0.0 | 54.5 ± 0.7 | 44.5 ± 0.7 |" in rows["bce_3x"]
    assert "| 50 % | 2 |" in rows["bce_3x"]
    saved = json.loads((tmp_path / "loss_variants.json").read_text())
    assert {(r["variant"], r["seed"]) for r in saved["records"]} == set(boundary)
    assert (tmp_path / "loss_variants.md").read_text() == text

    # with bce's runs, bce_3x is compared with them: +5 and +2, a gain shown with its sign
    for seed, value in ((0, 40.0), (1, 42.0)):
        run_dir = tmp_path / "runs" / "mid" / f"seed{seed}" / "bce"
        (run_dir / "inference").mkdir(parents=True)
        (run_dir / EVAL_RESULTS_FILE).write_text(json.dumps(
            {"segm": {"AP": value + 10}, "boundary": {"AP": value}, "bbox": {"AP": 50.0}}))
        (run_dir / "inference" / DETECTIONS_FILE).write_text("[]")
    text = run_variants(tmp_path, ["dice_3x", "bce_3x"], ["mid"], [0, 1], launch=Launch(jobs=1),
                        schedule=schedule, start=StartingPoint())
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| mid")}
    assert list(rows) == ["bce_3x", "dice_3x", "bce"]
    assert "| +3.5 ± 2.1 vs bce | +3.5 ± 2.1 vs bce | 50 % | 2 |" in rows["bce_3x"]
    assert rows["bce"].endswith("| 41.0 ± 1.4 |  |  | n/a | 2 |")  # no detections: no fill


@pytest.mark.slow
def test_a_variant_trains_with_its_options_and_length(tmp_path):
    import yaml

    schedule = Schedule(num_train=4, num_val=2, max_iter=2)
    run_variants(tmp_path, ["focal_alpha_0.5"], ["mid"], [0], launch=Launch(jobs=1),
                 schedule=schedule,
                 start=StartingPoint())
    config = yaml.safe_load((tmp_path / "runs/mid/seed0/focal_alpha_0.5/config.yaml").read_text())
    assert config["MODEL"]["ROI_MASK_HEAD"]["LOSS"] == "focal"
    assert config["MODEL"]["ROI_MASK_HEAD"]["FOCAL_ALPHA"] == 0.5
    assert config["SOLVER"]["MAX_ITER"] == 2
    bce = yaml.safe_load((tmp_path / "runs/mid/seed0/bce/config.yaml").read_text())
    assert bce["MODEL"]["ROI_MASK_HEAD"]["FOCAL_ALPHA"] == 0.25
    assert "focal_alpha_0.5" in (tmp_path / "loss_variants.md").read_text()

    # Evaluated again at 0.5 the run's model gives the run's own numbers; at 0.9 its config
    # carries the threshold.
    run_dir = tmp_path / "runs/mid/seed0/bce"
    at_05, at_09 = evaluate_at_thresholds(run_dir, [0.5, 0.9])
    assert at_05["results"] == json.loads((run_dir / EVAL_RESULTS_FILE).read_text())
    config = yaml.safe_load((run_dir / "mask_threshold_0.9" / "config.yaml").read_text())
    assert config["MODEL"]["ROI_MASK_HEAD"]["MASK_THRESHOLD"] == 0.9
    assert at_09["threshold"] == 0.9 and "segm" in at_09["results"]


def test_the_3x_variants_train_three_times_the_grid_on_its_data():
    schedules = {v.name: v.schedule(Schedule(200, 150, 7)) for v in VARIANTS.values()}
    assert schedules["dice_3x"] == schedules["bce_3x"] == Schedule(200, 150, 21)
    assert schedules["dice"] == schedules["focal_no_alpha"] == Schedule(200, 150, 7)
    assert VARIANTS["dice_3x"].reference == "bce_3x" and VARIANTS["dice"].reference == "bce"
