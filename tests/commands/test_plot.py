"""`python -m noisy_mask.plot`: both figures from run folders, labels, errors that name the folder
and the file, and what its --help imports."""

import runpy
import sys

import pytest
from samples import png_size

from noisy_mask.commands.plot import main
from noisy_mask.utils.run_folders import default_labels
from noisy_mask.viz.curves import LOSS_FILE, PR_FILE, plot_pr_curves


def test_command_writes_both_figures_deterministically(plot_run_dirs, tmp_path):
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    assert main([*map(str, plot_run_dirs), "--output", str(out_a)]) == 0
    assert main([*map(str, plot_run_dirs), "--output", str(out_b)]) == 0
    assert png_size(out_a / PR_FILE) == (1350, 800)  # 13.5 x 8 in at 100 dpi
    assert png_size(out_a / LOSS_FILE) == (1200, 450)  # 12 x 4.5 in at 100 dpi
    for name in (PR_FILE, LOSS_FILE):
        assert (out_a / name).read_bytes() == (out_b / name).read_bytes()
        assert b"Software" not in (out_a / name).read_bytes()
    assert sorted(p.name for p in out_a.iterdir()) == sorted([PR_FILE, LOSS_FILE])


def test_same_bytes_as_the_functions_with_the_same_labels(plot_run_dirs, tmp_path):
    labels = ["BCE", "Dice"]
    pr_path = plot_pr_curves(plot_run_dirs, tmp_path / "out" / PR_FILE, labels=labels)
    # Same bytes as the command line with the same labels.
    assert (
        main([*map(str, plot_run_dirs), "--output", str(tmp_path / "cli"), "--labels", *labels])
        == 0
    )
    assert (tmp_path / "cli" / PR_FILE).read_bytes() == pr_path.read_bytes()


def test_missing_files_are_named(plot_run_dirs, tmp_path, capsys):
    (plot_run_dirs[1] / "metrics.json").unlink()
    assert main([*map(str, plot_run_dirs), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(plot_run_dirs[1]) in err and "metrics.json" in err

    no_pr = tmp_path / "no_pr"
    no_pr.mkdir()
    (no_pr / "metrics.json").write_text('{"iteration": 0, "loss_mask": 0.7}\n')
    assert main([str(plot_run_dirs[0]), str(no_pr), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(no_pr) in err and "pr_data.json" in err
    assert not (tmp_path / "out").exists()


def test_bad_metrics_line_is_named(plot_run_dirs, tmp_path, capsys):
    with open(plot_run_dirs[0] / "metrics.json", "a") as f:
        f.write("{not json\n")
    assert main([*map(str, plot_run_dirs), "--output", str(tmp_path / "out")]) == 1
    assert "metrics.json, line 5" in capsys.readouterr().err


def test_labels_must_match_the_runs(plot_run_dirs, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([*map(str, plot_run_dirs), "--output", str(tmp_path), "--labels", "only-one"])
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
