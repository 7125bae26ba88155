"""The plot command on recorded run folders: real-format PR data (written by save_pr_data from an
evaluation of hand-made squares) and detectron2-style metrics.json lines."""

import json
import runpy
import struct
import sys
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest

from noisy_mask.evaluation.coco_eval import evaluate_coco_json, save_pr_data
from noisy_mask.viz.plot import (
    LOSS_FILE,
    PR_FILE,
    as_runs,
    default_labels,
    find_pr_dir,
    load_run,
    loss_curve,
    loss_figure,
    main,
    plot_loss_curves,
    plot_pr_curves,
    pr_figure,
)


def square_case(shift: int):
    """A 20x20 ground-truth square in a 64x64 image and a prediction shifted by `shift` px."""
    gt = {
        "images": [{"id": 1, "height": 64, "width": 64, "file_name": "1.png"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
                "bbox": [10, 10, 20, 20],
                "area": 400,
                "iscrowd": 0,
            }
        ],
        "categories": [{"id": 1, "name": "cat"}],
    }
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[10:30, 10 + shift : 30 + shift] = 1
    segmentation = mask_util.encode(np.asfortranarray(mask))
    segmentation["counts"] = segmentation["counts"].decode("utf-8")
    result = {"image_id": 1, "category_id": 1, "segmentation": segmentation, "score": 0.9}
    return gt, [result]


# Losses logged every 20 iterations; "bce" decreases faster than "dice".
METRICS = {
    "bce": [(19, 0.60, 1.50), (39, 0.40, 1.10), (59, 0.30, 0.90)],
    "dice": [(19, 0.50, 1.40), (39, 0.45, 1.30), (59, 0.42, 1.20)],
}


def write_run(run_dir: Path, shift: int, losses, dataset: str = "shapes_val") -> Path:
    """A run folder like train_net's: metrics.json at the top, PR data in inference/<dataset>/.
    The prediction is the ground-truth square shifted by `shift` px (0: AP 100, 4: AP 40)."""
    save_pr_data(run_dir / "inference" / dataset, evaluate_coco_json(*square_case(shift)))
    rows = [{"iteration": i, "loss_mask": m, "total_loss": t, "lr": 0.01} for i, m, t in losses]
    rows.append({"iteration": 59, "segm/AP": 40.0})  # an evaluation row: no loss keys
    (run_dir / "metrics.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


@pytest.fixture
def run_dirs(tmp_path):
    return [
        write_run(tmp_path / "bce", 0, METRICS["bce"]),
        write_run(tmp_path / "dice", 4, METRICS["dice"]),
    ]


def png_size(path: Path):
    """(width, height) from the PNG's IHDR chunk: bytes 16-24 after the 8-byte signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_command_writes_both_figures_deterministically(run_dirs, tmp_path):
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert main([*map(str, run_dirs), "--output", str(out_a)]) == 0
    assert main([*map(str, run_dirs), "--output", str(out_b)]) == 0
    assert png_size(out_a / PR_FILE) == (1350, 800)  # 13.5 x 8 in at 100 dpi
    assert png_size(out_a / LOSS_FILE) == (1200, 450)  # 12 x 4.5 in at 100 dpi
    for name in (PR_FILE, LOSS_FILE):
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes()
        assert b"Software" not in (out_a / name).read_bytes()
    assert sorted(p.name for p in out_a.iterdir()) == sorted([PR_FILE, LOSS_FILE])


def test_pr_figure_lines_and_legend(run_dirs):
    runs = [load_run(d) for d in run_dirs]
    assert [r.label for r in runs] == ["bce", "dice"]
    fig = pr_figure(runs)
    axes = fig.axes
    assert len(axes) == 6  # rows segm, boundary x columns 0.50, 0.75, 0.50:0.95
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in axes]
    # Exact square: 100 everywhere. Square shifted by 4 px: mask IoU 2/3 -> AP50 100, AP75 0,
    # AP 40; boundary IoU 2/7 -> 0 (see test_evaluation).
    assert legends[:3] == [
        ["bce (AP50 100.0)", "dice (AP50 100.0)"],
        ["bce (AP75 100.0)", "dice (AP75 0.0)"],
        ["bce (AP 100.0)", "dice (AP 40.0)"],
    ]
    assert legends[3:] == [
        ["bce (AP50 100.0)", "dice (AP50 0.0)"],
        ["bce (AP75 100.0)", "dice (AP75 0.0)"],
        ["bce (AP 100.0)", "dice (AP 0.0)"],
    ]
    # The segm 0.50:0.95 curve of the shifted square: precision 1 at 4 of 10 thresholds -> 0.4.
    x, y = axes[2].lines[1].get_data()
    np.testing.assert_allclose(x, np.linspace(0, 1, 101))
    np.testing.assert_allclose(y, 0.4)
    assert axes[3].get_xlabel() == "recall" and axes[0].get_ylabel() == "precision"


def test_loss_figure_lines(run_dirs):
    fig = loss_figure([load_run(d) for d in run_dirs])
    mask_ax, total_ax = fig.axes
    assert mask_ax.get_xlabel() == "iteration"
    x, y = mask_ax.lines[0].get_data()
    np.testing.assert_array_equal(x, [19, 39, 59])
    np.testing.assert_allclose(y, [0.60, 0.40, 0.30])
    np.testing.assert_allclose(total_ax.lines[1].get_data()[1], [1.40, 1.30, 1.20])


def test_loss_curve_sorts_and_keeps_the_last_value_of_a_repeated_iteration():
    rows = [
        {"iteration": 39, "loss_mask": 0.5},
        {"iteration": 19, "loss_mask": 0.7},
        {"iteration": 39, "loss_mask": 0.4},  # resumed run logs iteration 39 again
        {"iteration": 59, "segm/AP": 12.0},
    ]
    iterations, values = loss_curve(rows, "loss_mask")
    np.testing.assert_array_equal(iterations, [19, 39])
    np.testing.assert_array_equal(values, [0.7, 0.4])


def test_functions_take_run_folders_and_labels(run_dirs, tmp_path):
    labels = ["BCE", "Dice"]
    assert [r.label for r in as_runs(run_dirs, labels)] == labels
    pr_path = plot_pr_curves(run_dirs, tmp_path / "out" / PR_FILE, labels=labels)
    loss_path = plot_loss_curves(run_dirs, tmp_path / "out" / LOSS_FILE, labels=labels)
    assert png_size(pr_path) == (1350, 800) and png_size(loss_path) == (1200, 450)
    # Same bytes as the command line with the same labels.
    assert main([*map(str, run_dirs), "--output", str(tmp_path / "cli"), "--labels", *labels]) == 0
    assert (tmp_path / "cli" / PR_FILE).read_bytes() == pr_path.read_bytes()


def test_pr_data_locations(tmp_path):
    run = write_run(tmp_path / "run", 0, METRICS["bce"], dataset="val_a")
    assert find_pr_dir(run) == run / "inference" / "val_a"
    save_pr_data(run / "inference" / "val_b", evaluate_coco_json(*square_case(4)))
    with pytest.raises(ValueError, match=r"\(val_a, val_b\); choose one with --dataset"):
        find_pr_dir(run)
    assert find_pr_dir(run, "val_b") == run / "inference" / "val_b"
    save_pr_data(run / "inference", evaluate_coco_json(*square_case(0)))
    assert find_pr_dir(run) == run / "inference"  # a folder's own data comes first


def test_missing_files_are_named(run_dirs, tmp_path, capsys):
    (run_dirs[1] / "metrics.json").unlink()
    assert main([*map(str, run_dirs), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(run_dirs[1]) in err and "metrics.json" in err

    no_pr = tmp_path / "no_pr"
    no_pr.mkdir()
    (no_pr / "metrics.json").write_text('{"iteration": 0, "loss_mask": 0.7}\n')
    assert main([str(run_dirs[0]), str(no_pr), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(no_pr) in err and "pr_data.json" in err
    assert not (tmp_path / "out").exists()


def test_bad_metrics_line_is_named(run_dirs, tmp_path, capsys):
    with open(run_dirs[0] / "metrics.json", "a") as f:
        f.write("{not json\n")
    assert main([*map(str, run_dirs), "--output", str(tmp_path / "out")]) == 1
    assert "metrics.json, line 5" in capsys.readouterr().err


def test_labels_must_match_the_runs(run_dirs, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, run_dirs), "--output", str(tmp_path), "--labels", "only-one"])
    assert exit_info.value.code == 2


def test_default_labels_disambiguate_equal_folder_names(tmp_path):
    assert default_labels([tmp_path / "a" / "out", tmp_path / "b" / "out", tmp_path / "c"]) == [
        str(tmp_path / "a" / "out"),
        str(tmp_path / "b" / "out"),
        "c",
    ]


@pytest.mark.filterwarnings("ignore:'noisy_mask.plot' found in sys.modules:RuntimeWarning")
def test_module_exits_non_zero_on_a_missing_run(tmp_path, monkeypatch, capsys):
    # As `python -m noisy_mask.plot`, in this process (a new interpreter would reimport torch).
    argv = ["noisy_mask.plot", str(tmp_path / "absent"), "--output", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("noisy_mask.plot", run_name="__main__")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "absent" in err and "does not exist" in err
