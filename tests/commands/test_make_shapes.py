"""The command that makes the shapes dataset: `python -m noisy_mask.data.shapes` and `main`,
their printed paths, the variant option and errors on bad arguments."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from samples import read_rgb

from noisy_mask.commands.make_shapes import main
from noisy_mask.data.shapes.writing import MANIFEST_NAME

ROOT = Path(__file__).resolve().parents[2]


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-m", "noisy_mask.data.shapes", "--output", str(out)]
        + ["--num-train", "3", "--num-val", "2", "--image-size", "128", "--seed", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "found in sys.modules" not in done.stderr  # runpy's warning of a double import
    printed = dict(line.split(": ", 1) for line in done.stdout.strip().splitlines())
    assert printed["train_json"] == str(out / "annotations" / "instances_train.json")
    train = json.loads(Path(printed["train_json"]).read_text())
    val = json.loads(Path(printed["val_json"]).read_text())
    assert len(train["images"]) == 3 and len(val["images"]) == 2
    assert train["images"][0]["width"] == 128
    assert read_rgb(Path(printed["val_images"]) / "000002.png").shape == (128, 128, 3)

    assert main(["--output", str(tmp_path / "bad"), "--num-train", "-1"]) == 2
    assert "num_train" in capsys.readouterr().err


def test_command_line_variant(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["--output", str(out), "--num-train", "2", "--num-val", "1", "--image-size", "96"]
    assert main(argv + ["--variant", "hard"]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    assert printed["val_json"] == str(out / "annotations" / "instances_val.json")
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["params"]["variant"] == "hard" and manifest["params"]["image_size"] == 96
    with pytest.raises(SystemExit):
        main(argv + ["--variant", "cluttered"])
    assert "invalid choice" in capsys.readouterr().err
