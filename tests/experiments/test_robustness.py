"""The robustness benchmark's bookkeeping: means over seeds, the recovered share, the goal verdict,
and resuming a grid whose runs are finished."""
import json
import math
from pathlib import Path

import pytest

from noisy_mask.experiments.runner import Schedule, prepare_data
from noisy_mask.utils.run_folders import EVAL_RESULTS_FILE



@pytest.fixture(scope="module")
def robustness():
    from noisy_mask.experiments import robustness

    return robustness


def record(level, loss, seed, boundary_ap, mask_ap=30.0):
    results = {"segm": {"AP": mask_ap, "AP75": mask_ap - 5}, "boundary": {"AP": boundary_ap}}
    return dict(level=level, loss=loss, seed=seed, results=results)


def grid(bce_clean, bce_mid, other_mid, loss="svls"):
    """Records of three seeds: bce clean, bce mid and `loss` mid, boundary AP per seed."""
    records = []
    for seed in range(3):
        records.append(record("clean", "bce", seed, bce_clean[seed]))
        records.append(record("mid", "bce", seed, bce_mid[seed]))
        records.append(record("mid", loss, seed, other_mid[seed]))
    return records


def test_summary_is_mean_and_sample_std_over_seeds(robustness):
    summary = robustness.summarize(grid([10, 12, 14], [8, 8, 8], [9, 9, 9]))
    cell = summary["clean"]["bce"]["boundary/AP"]
    assert cell["n"] == 3
    assert cell["mean"] == pytest.approx(12.0)
    assert cell["std"] == pytest.approx(2.0)  # sqrt(((-2)^2 + 0 + 2^2) / (3 - 1))
    assert summary["mid"]["svls"]["segm/AP75"]["mean"] == pytest.approx(25.0)


def test_non_finite_metrics_are_left_out(robustness):
    records = [record("clean", "bce", 0, float("nan")), record("clean", "bce", 1, 4.0)]
    cell = robustness.summarize(records)["clean"]["bce"]["boundary/AP"]
    assert cell["n"] == 1 and cell["mean"] == 4.0 and math.isnan(cell["std"])


def test_recovered_share_is_the_share_of_the_loss_to_noise(robustness):
    # BCE loses 12 - 9 = 3 points; the loss gets back 10.5 - 9 = 1.5 of them.
    summary = robustness.summarize(grid([12, 12, 12], [9, 9, 9], [10.5, 10.5, 10.5]))
    assert robustness.recovered_share(summary, "mid", "svls", "boundary/AP") == pytest.approx(0.5)
    assert robustness.recovered_share(summary, "mid", "bce", "boundary/AP") == pytest.approx(0.0)
    assert robustness.recovered_share(summary, "hard", "svls", "boundary/AP") is None


def test_goal_needs_the_share_and_a_gain_beyond_seed_noise(robustness):
    # Share 1.5 / 3 = 50 %, gain 1.5 > 2 x pooled std 0.5 = 1.0 (std of [8.5, 9, 9.5] is 0.5).
    met = robustness.summarize(grid([12, 12, 12], [8.5, 9, 9.5], [10, 10.5, 11]))
    assert robustness.beats_bce(met, "mid", "svls") is True
    # The same means with a seed-to-seed std of 1.5: 1.5 > 2 x 1.5 fails.
    noisy = robustness.summarize(grid([12, 12, 12], [7.5, 9, 10.5], [9, 10.5, 12]))
    assert robustness.beats_bce(noisy, "mid", "svls") is False
    # Beyond the noise but recovering only 0.6 / 3 = 20 % of the loss.
    small = robustness.summarize(grid([12, 12, 12], [9, 9, 9], [9.6, 9.6, 9.6]))
    assert robustness.beats_bce(small, "mid", "svls") is False
    # BCE loses nothing to noise: no share, no verdict.
    none = robustness.summarize(grid([9, 9, 9], [9, 9, 9], [10, 10, 10]))
    assert robustness.beats_bce(none, "mid", "svls") is None


def test_goal_needs_two_seeds(robustness):
    records = [record("clean", "bce", 0, 12), record("mid", "bce", 0, 9), record("mid", "svls", 0, 12)]
    assert robustness.beats_bce(robustness.summarize(records), "mid", "svls") is None


def test_paired_gains_are_per_seed_differences(robustness):
    records = grid([12, 12, 12], [8, 9, 13], [9, 11, 13])
    assert robustness.paired_gains(records, "mid", "svls") == [1, 2, 0]
    # A seed that only one of the two ran is left out.
    assert robustness.paired_gains(records[:-1], "mid", "svls") == [1, 2]


def test_markdown_reports_share_and_verdict(robustness):
    records = grid([12, 12, 12], [8.5, 9, 9.5], [10, 10.5, 11])
    text = robustness.markdown(robustness.summarize(records), ["bce", "svls"], ["clean", "mid"], records)
    svls_row = next(line for line in text.splitlines() if line.startswith("| svls"))
    assert svls_row.split(" | ")[1:] == [
        "30.0 ± 0.0", "25.0 ± 0.0", "10.5 ± 0.5", "+1.5 ± 0.0", "", "50%", "met", "3 |"]


def test_markdown_lists_every_seed(robustness):
    records = grid([12, 12, 12], [8.5, 9, 9.5], [10, 10.5, 11])[:-1]  # svls mid seed 2 missing
    records[0]["results"]["bbox"] = {"AP": 40.31}
    text = robustness.markdown(robustness.summarize(records), ["bce", "svls"], ["clean", "mid"], records)
    rows = text.split("Per seed, box AP / mask AP / boundary AP:")[1].strip().splitlines()
    assert rows[0] == "| noise | loss | seed 0 | seed 1 | seed 2 |"
    assert rows[2] == "| clean | bce | 40.3 / 30.0 / 12.0 | n/a / 30.0 / 12.0 | n/a / 30.0 / 12.0 |"
    assert rows[4] == "| mid | svls | n/a / 30.0 / 10.0 | n/a / 30.0 / 10.5 |  |"
    assert len(rows) == 5


def test_mask_loss_ceiling_is_the_share_clean_masks_win_back(robustness):
    records = grid([12, 14, 16], [8, 9, 10], [9, 9, 9])
    summary = robustness.summarize(records)
    assert robustness.mask_loss_ceiling(summary) is None  # no mid_no_outlines yet
    records += [record("mid_no_outlines", "bce", seed, ap) for seed, ap in enumerate([9, 10, 11])]
    summary = robustness.summarize(records)
    # BCE: clean 14, mid 9, mid_no_outlines 10 -> (10 - 9) / (14 - 9) = 20%
    assert robustness.mask_loss_ceiling(summary) == pytest.approx(0.2)
    text = robustness.markdown(summary, ["bce", "svls"], ["clean", "mid", "mid_no_outlines"], records)
    assert "recovers n/a of the mask AP and 20% of the boundary AP that BCE loses at mid" in text


def test_finished_runs_are_not_repeated(robustness, tmp_path):
    """Every run folder of the grid already holds its results: run_grid trains nothing."""
    schedule = Schedule(num_train=3, num_val=2, max_iter=1)
    expected = {}
    for level in ("clean", "mid"):
        for loss, folder in (("bce", "bce"), ("bce+dice", "bce_plus_dice")):
            run_dir = tmp_path / "runs" / level / "seed0" / folder
            run_dir.mkdir(parents=True)
            expected[level, loss] = {"segm": {"AP": len(expected) + 1.0}}
            (run_dir / EVAL_RESULTS_FILE).write_text(json.dumps(expected[level, loss]))
    records = robustness.run_grid(tmp_path, ["bce", "bce+dice"], ["clean", "mid"], [0], schedule, 1)
    assert {(r["level"], r["loss"]): r["results"] for r in records} == expected
    assert not list(tmp_path.glob("runs/*/*/*/train_net.out"))
    assert (tmp_path / "dataset" / "instances_train_mid_seed0.json").exists()


def test_clean_losses_limit_what_is_trained_on_clean_masks(robustness, tmp_path):
    schedule = Schedule(num_train=3, num_val=2, max_iter=1)
    for level, loss in (("clean", "bce"), ("mid", "bce"), ("mid", "gce")):
        run_dir = tmp_path / "runs" / level / "seed0" / loss
        run_dir.mkdir(parents=True)
        (run_dir / EVAL_RESULTS_FILE).write_text(json.dumps({"segm": {"AP": 1.0}}))
    records = robustness.run_grid(tmp_path, ["bce", "gce"], ["clean", "mid"], [0], schedule, 1,
                                  clean_losses=["bce"])
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
def test_runs_fine_tune_the_pretrained_detector_without_its_mask_head(robustness, tmp_path):
    import torch

    from noisy_mask.experiments.runner import pretrain_detector, train_and_evaluate

    weights = pretrain_detector(tmp_path, Schedule(num_train=4, num_val=0, max_iter=10), seed=1,
                                config=robustness.FINETUNE_CONFIG)
    pretrained = torch.load(weights, weights_only=False)["model"]
    assert any(k.startswith("backbone.bottom_up.") for k in pretrained)
    assert any(k.startswith("roi_heads.box_predictor.") for k in pretrained)
    assert not any(k.startswith("roi_heads.mask_head.") for k in pretrained)
    # Kept weights are returned without training again.
    stamp = weights.stat().st_mtime_ns
    assert pretrain_detector(tmp_path, Schedule(4, 0, 10), 1, robustness.FINETUNE_CONFIG) == weights
    assert weights.stat().st_mtime_ns == stamp

    # A run with a learning rate of 0 ends with exactly the pretrained weights outside the
    # mask head: they were loaded, not drawn anew.
    schedule = Schedule(num_train=4, num_val=2, max_iter=10)
    data = prepare_data(tmp_path, "mid", schedule, 0)
    run_dir = tmp_path / "run"
    results = train_and_evaluate(run_dir, "bce+pairwise_color", data, schedule, 0,
                                 ["MODEL.WEIGHTS", str(weights), "SOLVER.BASE_LR", "0.0"],
                                 config=robustness.FINETUNE_CONFIG)
    assert {"bbox", "segm", "boundary"} <= set(results)
    # The intermediate checkpoints (every 3 of the 10 iterations) are gone, the final one kept.
    assert sorted(p.name for p in run_dir.glob("*.pth")) == ["model_final.pth"]
    final = torch.load(run_dir / "model_final.pth", weights_only=False)["model"]
    assert any(k.startswith("roi_heads.mask_head.") for k in final)
    for key, value in pretrained.items():
        assert torch.equal(torch.as_tensor(final[key]), torch.as_tensor(value)), key
