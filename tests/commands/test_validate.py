"""`python -m noisy_mask.validate`: the lines and summary it prints, its exit codes, and what its
--help imports."""

import os
import subprocess
import sys

import pytest
from samples import ROOT, small_dataset, write_dataset

from noisy_mask.commands.validate import main

J = "instances.json"
A1 = f"{J}: annotation 1 (image 1)"


def test_prints_every_problem_then_the_summary(tmp_path, capsys):
    json_path, image_dir = write_dataset(tmp_path, small_dataset())
    assert main([str(json_path), str(image_dir)]) == 0
    assert capsys.readouterr().out == "ok: 3 images, 4 annotations\n"
    data = small_dataset()
    data["annotations"][0]["segmentation"] = [[5, 5, 15, 5, 15]]  # fatal
    data["annotations"][0]["bbox"] = [5, 5, -3, 10]  # skippable
    json_path, image_dir = write_dataset(tmp_path, data)
    assert main([str(json_path), str(image_dir)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{A1}: box [5, 5, -3, 10] has non-positive width or height [skippable]",
        f"{A1}: 'segmentation' polygon 0 has 5 coordinates (odd count)",
        "2 problems (1 error, 1 skippable) in 3 images, 4 annotations",
    ]


def _start_cli(*args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "noisy_mask.validate", *map(str, args)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env
    )


def test_command_line_exit_codes(tmp_path):
    clean_json, clean_images = write_dataset(tmp_path / "clean", small_dataset())
    data = small_dataset()
    data["annotations"][0]["segmentation"] = [[5, 5, 15, 5, 15]]
    bad_json, bad_images = write_dataset(tmp_path / "bad", data)
    missing_json = tmp_path / "nothing.json"
    # the three start together: most of each run is Python importing the package
    runs = [
        _start_cli(clean_json, clean_images),
        _start_cli(bad_json, bad_images),
        _start_cli(missing_json, clean_images),
    ]
    (clean_out, _), (bad_out, _), (missing_out, missing_err) = [
        r.communicate(timeout=300) for r in runs
    ]
    assert (runs[0].returncode, clean_out) == (0, "ok: 3 images, 4 annotations\n")
    assert runs[1].returncode == 1
    assert bad_out.splitlines() == [
        f"{A1}: 'segmentation' polygon 0 has 5 coordinates (odd count)",
        "1 problem (1 error, 0 skippable) in 3 images, 4 annotations",
    ]
    assert (runs[2].returncode, missing_out) == (2, "")
    assert f"{missing_json}: no such annotation file" in missing_err


def test_usage_errors_exit_2(tmp_path, capsys):
    json_path, image_dir = write_dataset(tmp_path, small_dataset())
    assert main([str(json_path), str(tmp_path / "no_dir")]) == 2
    assert f"{tmp_path / 'no_dir'}: no such image folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([str(json_path)])  # neither IMAGE_DIR nor --json-only
    assert exit_info.value.code == 2
    assert main([str(json_path), "--json-only"]) == 0
