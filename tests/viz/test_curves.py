"""The curves of recorded run folders: real-format PR data (written by save_pr_data from an
evaluation of hand-made squares) and detectron2-style metrics.json lines."""

import numpy as np
import pytest
from samples import (
    LOGGED_LOSSES,
    heavy,
    modules_loaded_by_import,
    png_size,
    square_case,
    write_plot_run,
)

from noisy_mask.evaluation.coco_eval import evaluate_coco_json
from noisy_mask.evaluation.pr_data import save_pr_data
from noisy_mask.viz.curves import (
    LOSS_FILE,
    PR_FILE,
    as_runs,
    find_pr_dir,
    load_run,
    loss_curve,
    loss_figure,
    plot_loss_curves,
    plot_pr_curves,
    pr_figure,
    write_plots,
)


def test_write_plots_draws_both_figures_deterministically(plot_run_dirs, tmp_path):
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert write_plots(plot_run_dirs, out_a) == [out_a / PR_FILE, out_a / LOSS_FILE]
    write_plots(plot_run_dirs, out_b)
    assert png_size(out_a / PR_FILE) == (1350, 800)  # 13.5 x 8 in at 100 dpi
    assert png_size(out_a / LOSS_FILE) == (1200, 450)  # 12 x 4.5 in at 100 dpi
    for name in (PR_FILE, LOSS_FILE):
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes()
        assert b"Software" not in (out_a / name).read_bytes()
    assert sorted(p.name for p in out_a.iterdir()) == sorted([PR_FILE, LOSS_FILE])


def test_pr_figure_lines_and_legend(plot_run_dirs):
    runs = [load_run(d) for d in plot_run_dirs]
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


def test_loss_figure_lines(plot_run_dirs):
    fig = loss_figure([load_run(d) for d in plot_run_dirs])
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


def test_functions_take_run_folders_and_labels(plot_run_dirs, tmp_path):
    labels = ["BCE", "Dice"]
    assert [r.label for r in as_runs(plot_run_dirs, labels)] == labels
    pr_path = plot_pr_curves(plot_run_dirs, tmp_path / "out" / PR_FILE, labels=labels)
    loss_path = plot_loss_curves(plot_run_dirs, tmp_path / "out" / LOSS_FILE, labels=labels)
    assert png_size(pr_path) == (1350, 800) and png_size(loss_path) == (1200, 450)


def test_pr_data_locations(tmp_path):
    run = write_plot_run(tmp_path / "run", 0, LOGGED_LOSSES["bce"], dataset="val_a")
    assert find_pr_dir(run) == run / "inference" / "val_a"
    save_pr_data(run / "inference" / "val_b", evaluate_coco_json(*square_case(4)))
    with pytest.raises(ValueError, match=r"\(val_a, val_b\); choose one with --dataset"):
        find_pr_dir(run)
    assert find_pr_dir(run, "val_b") == run / "inference" / "val_b"
    save_pr_data(run / "inference", evaluate_coco_json(*square_case(0)))
    assert find_pr_dir(run) == run / "inference"  # a folder's own data comes first


def test_missing_files_are_named(plot_run_dirs, tmp_path):
    (plot_run_dirs[1] / "metrics.json").unlink()
    with pytest.raises(FileNotFoundError) as error:
        load_run(plot_run_dirs[1])
    assert str(plot_run_dirs[1]) in str(error.value) and "metrics.json" in str(error.value)
    no_pr = tmp_path / "no_pr"
    no_pr.mkdir()
    (no_pr / "metrics.json").write_text('{"iteration": 0, "loss_mask": 0.7}\n')
    with pytest.raises(FileNotFoundError) as error:
        load_run(no_pr)
    assert str(no_pr) in str(error.value) and "pr_data.json" in str(error.value)


def test_bad_metrics_line_is_named(plot_run_dirs):
    with open(plot_run_dirs[0] / "metrics.json", "a") as f:
        f.write("{not json\n")
    with pytest.raises(ValueError, match="metrics.json, line 5: not valid json"):
        load_run(plot_run_dirs[0])


def test_imports_no_detectron2_nor_torch():
    assert not heavy(modules_loaded_by_import("noisy_mask.viz.curves"))
