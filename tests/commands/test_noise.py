"""`python -m noisy_mask.noise`: the files and the line it writes, its errors and exit codes, its
help, and what its --help imports."""

import json
import os
import subprocess
import sys

import pytest
from samples import ROOT, SQUARE, coco_of, shapes_coco, write_json

from noisy_mask.commands.noise import main


def test_not_json_and_overwriting_the_input_are_refused(tmp_path, capsys):
    source = tmp_path / "in.json"
    source.write_text("{not json")
    assert main(["--input", str(source), "--output", str(tmp_path / "out.json")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {source}: not valid JSON")
    write_json(source, coco_of([[SQUARE]]))
    assert main(["--input", str(source), "--output", str(source)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert (
        main(["--input", str(source), "--output", str(tmp_path / "o.json"), "--kernel", "4"]) == 2
    )
    assert "kernel must be 0 (off) or an odd integer >= 3, got 4" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in.json"]


def test_cli_writes_output_report_and_one_line(tmp_path, capsys):
    source = write_json(tmp_path / "in.json", shapes_coco(num_images=3))
    args = ["--input", str(source), "--output", str(tmp_path / "out.json"), "--preset", "hard"]
    assert (
        main(args + ["--seed", "5", "--kernel", "0", "--flip-fraction", "0.5", "--no-progress"])
        == 0
    )
    line = capsys.readouterr().out.strip()
    report = json.loads((tmp_path / "out.noise_report.json").read_text())
    # N = 18: round_half_up(0.05 * 18 = 0.9) = 1 deleted, round_half_up(0.5 * 18) = 9 flipped
    assert (report["instances"], report["deleted"], report["flipped"]) == (18, 1, 9)
    assert report["params"] == {
        "simplify_tolerance": 15.0,
        "jitter_sigma": 4.0,
        "kernel": 0,
        "delete_fraction": 0.05,
        "flip_fraction": 0.5,
        "apply_to": "both",
    }
    assert report["dilated"] == report["eroded"] == 0
    assert line.startswith("18 instances: 1 deleted, 9 flipped") and line.endswith("out.json")
    assert "\n" not in line and f"mean {report['mask_iou']['mean']:.3f}" in line


def test_help_says_how_sizes_scale(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "longer image side / 640" in text and "keeps its original mask" in text


def test_module_entry_point_exit_code(tmp_path):
    coco = coco_of([[SQUARE], [[1, 2, 3, 4]]])
    source = write_json(tmp_path / "in.json", coco)
    command = [sys.executable, "-m", "noisy_mask.noise", "--input", str(source)]
    result = subprocess.run(
        command + ["--output", str(tmp_path / "out.json")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {source}: annotation 101 (image 2): 'segmentation' polygon 0 has 2 points; "
        "a polygon needs at least 3"
    )
    assert sorted(os.listdir(tmp_path)) == ["in.json"]
