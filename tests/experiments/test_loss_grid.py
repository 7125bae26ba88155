"""The robustness grid: resuming a grid whose runs are finished, what is trained where, the split
levels, and fine-tuning from the pretrained detector."""
import json
from pathlib import Path

import pytest

from noisy_mask.experiments import loss_grid
from noisy_mask.experiments.levels import builtin_splits, prepare_data
from noisy_mask.experiments.options import FINETUNE_CONFIG, Grid
from noisy_mask.engine.launcher import Schedule
from noisy_mask.utils.run_folders import EVAL_RESULTS_FILE


def test_finished_runs_are_not_repeated(tmp_path):
    """Every run folder of the grid already holds its results: run_grid trains nothing."""
    schedule = Schedule(num_train=3, num_val=2, max_iter=1)
    expected = {}
    for level in ("clean", "mid"):
        for loss, folder in (("bce", "bce"), ("bce+dice", "bce_plus_dice")):
            run_dir = tmp_path / "runs" / level / "seed0" / folder
            run_dir.mkdir(parents=True)
            expected[level, loss] = {"segm": {"AP": len(expected) + 1.0}}
            (run_dir / EVAL_RESULTS_FILE).write_text(json.dumps(expected[level, loss]))
    grid = Grid(tmp_path, builtin_splits(tmp_path, schedule), ["bce", "bce+dice"], ["clean", "mid"],
                [0], schedule)
    records = loss_grid.run_grid(grid)
    assert {(r["level"], r["loss"]): r["results"] for r in records} == expected
    assert not list(tmp_path.glob("runs/*/*/*/train_net.out"))
    assert (tmp_path / "dataset" / "instances_train_mid_seed0.json").exists()


def test_clean_losses_limit_what_is_trained_on_clean_masks(tmp_path):
    schedule = Schedule(num_train=3, num_val=2, max_iter=1)
    for level, loss in (("clean", "bce"), ("mid", "bce"), ("mid", "gce")):
        run_dir = tmp_path / "runs" / level / "seed0" / loss
        run_dir.mkdir(parents=True)
        (run_dir / EVAL_RESULTS_FILE).write_text(json.dumps({"segm": {"AP": 1.0}}))
    grid = Grid(tmp_path, builtin_splits(tmp_path, schedule), ["bce", "gce"], ["clean", "mid"],
                [0], schedule, clean_losses=["bce"])
    records = loss_grid.run_grid(grid)
    assert [(r["level"], r["loss"]) for r in records] == [("clean", "bce"), ("mid", "bce"), ("mid", "gce")]


def test_split_levels_write_their_part_of_mid(tmp_path):
    schedule = Schedule(num_train=4, num_val=2, max_iter=1)
    load = lambda paths: {a["id"]: a for a in json.loads(Path(paths["train_json"]).read_text())["annotations"]}
    clean = load(prepare_data(tmp_path, "clean", schedule, 0))
    mid = load(prepare_data(tmp_path, "mid", schedule, 0))
    outlines = load(prepare_data(tmp_path, "mid_outlines", schedule, 0))
    no_outlines = load(prepare_data(tmp_path, "mid_no_outlines", schedule, 0))
    assert len(mid) < len(clean) and set(outlines) == set(clean) and set(no_outlines) == set(mid)
    for i, ann in outlines.items():  # mid's outlines on clean boxes, instances and classes
        assert (ann["bbox"], ann["category_id"]) == (clean[i]["bbox"], clean[i]["category_id"])
        if i in mid:
            assert ann["segmentation"] == mid[i]["segmentation"]
    for i, ann in no_outlines.items():  # the rest of mid on clean masks
        assert (ann["bbox"], ann["category_id"]) == (mid[i]["bbox"], mid[i]["category_id"])
        assert (ann["segmentation"], ann["area"]) == (clean[i]["segmentation"], clean[i]["area"])
    assert sum(outlines[i]["segmentation"] != clean[i]["segmentation"] for i in clean) > len(clean) // 2


@pytest.mark.slow
def test_runs_fine_tune_the_pretrained_detector_without_its_mask_head(tmp_path):
    import torch

    from noisy_mask.engine.launcher import pretrain_detector, train_and_evaluate

    weights = pretrain_detector(tmp_path, Schedule(num_train=4, num_val=0, max_iter=10), seed=1,
                                config=FINETUNE_CONFIG)
    pretrained = torch.load(weights, weights_only=False)["model"]
    assert any(k.startswith("backbone.bottom_up.") for k in pretrained)
    assert any(k.startswith("roi_heads.box_predictor.") for k in pretrained)
    assert not any(k.startswith("roi_heads.mask_head.") for k in pretrained)
    # Kept weights are returned without training again.
    stamp = weights.stat().st_mtime_ns
    assert pretrain_detector(tmp_path, Schedule(4, 0, 10), 1, FINETUNE_CONFIG) == weights
    assert weights.stat().st_mtime_ns == stamp

    # A run with a learning rate of 0 ends with exactly the pretrained weights outside the
    # mask head: they were loaded, not drawn anew.
    schedule = Schedule(num_train=4, num_val=2, max_iter=10)
    data = prepare_data(tmp_path, "mid", schedule, 0)
    run_dir = tmp_path / "run"
    results = train_and_evaluate(run_dir, "bce+pairwise_color", data, schedule, 0,
                                 ["MODEL.WEIGHTS", str(weights), "SOLVER.BASE_LR", "0.0"],
                                 config=FINETUNE_CONFIG)
    assert {"bbox", "segm", "boundary"} <= set(results)
    # The intermediate checkpoints (every 3 of the 10 iterations) are gone, the final one kept.
    assert sorted(p.name for p in run_dir.glob("*.pth")) == ["model_final.pth"]
    final = torch.load(run_dir / "model_final.pth", weights_only=False)["model"]
    assert any(k.startswith("roi_heads.mask_head.") for k in final)
    for key, value in pretrained.items():
        assert torch.equal(torch.as_tensor(final[key]), torch.as_tensor(value)), key


@pytest.mark.parametrize("max_iter, steps", [(300, "(240, 279)"), (10, "(8, 9)"), (4, "(3,)"),
                                             (1, "()")])
def test_learning_rate_drops_stay_before_the_last_iteration(max_iter, steps):
    # 0.8 and 0.93 of the run: 240 and 279 of 300; of 4, round(3.2) = 3 and round(3.72) = 4,
    # which detectron2 rejects (a drop must come before the last iteration): one drop at 3.
    opts = Schedule(num_train=1, num_val=1, max_iter=max_iter).solver_opts()
    assert opts[opts.index("SOLVER.STEPS") + 1] == steps


@pytest.mark.parametrize("argv, error", [
    (["--val-images", "0"], "--val-images must be at least 1"),
    (["--train", "t.json", "t", "--val", "v.json", "v", "--val-images", "300"],
     "--val-images is for the built-in data; not with --train"),
])
def test_val_images_flag_is_checked(argv, error, tmp_path, capsys):
    from noisy_mask.commands.robustness import main

    with pytest.raises(SystemExit):
        main(["--output", str(tmp_path / "grid"), *argv])
    assert error in capsys.readouterr().err
    assert not (tmp_path / "grid").exists()  # refused before anything is written
