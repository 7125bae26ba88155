"""The demo end to end in miniature: pretrained detector, clean reference, losses at mid, table."""
import pytest
import yaml

from noisy_mask.experiments.shapes_demo import DemoPlan, run_demo
from noisy_mask.engine.launcher import Launch, Schedule


@pytest.mark.slow
def test_demo_writes_the_grid_table_curves_and_pictures_and_reuses_its_detector(tmp_path):
    plan = DemoPlan(Schedule(num_train=4, num_val=3, max_iter=4),
                    Schedule(num_train=4, num_val=0, max_iter=4), caveat="Pipeline check only.")
    table = run_demo(tmp_path, ["bce", "dice"], "mid", plan, seed=0, launch=Launch(jobs=2)).read_text()
    assert table.startswith("**Pipeline check only.**")
    assert "### noise: clean" in table and "### noise: mid" in table
    # One row per run in the level tables: bce on clean masks, bce and dice at mid; and the
    # same three in the per-seed table.
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
    assert rows.count("| bce") == 2 and rows.count("| dice") == 1
    assert "| clean | bce |" in table and "| mid | dice |" in table
    for picture in ("pr_curves.png", "loss_curves.png", "noise.png", "predictions.png"):
        assert (tmp_path / picture).stat().st_size > 0
        assert f"]({picture})" in table
    weights = tmp_path / "pretrain" / "model_final.pth"
    assert weights.is_file()
    runs = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("runs/*/*/*"))
    assert runs == ["runs/clean/seed0/bce", "runs/mid/seed0/bce", "runs/mid/seed0/dice"]
    # The runs fine-tune on the detector's frozen ResNet; the detector itself trained all of it.
    assert [freeze_at(tmp_path / run) for run in runs] == [5, 5, 5]
    assert freeze_at(tmp_path / "pretrain") == 0
    assert "its ResNet frozen" in table

    # A second demo given that detector trains no detector of its own and names its weights.
    other = tmp_path / "reuse"
    table = run_demo(other, ["bce"], "mid", plan, launch=Launch(jobs=2),
                     pretrained=str(weights)).read_text()
    assert not (other / "pretrain").exists()
    assert f"fine-tuned from {weights}" in table and "Pipeline check only" not in table


def freeze_at(run_dir):
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    return config["MODEL"]["BACKBONE"]["FREEZE_AT"]
