"""The dataset's files: plain output unchanged since before the variants, the same bytes for the
same seed, nothing written a second time, a dataset made again when its parameters or variant
change, and bad arguments named."""

import hashlib
import json
from pathlib import Path

import cv2
import pytest

from noisy_mask.data import generate_shapes_dataset
from noisy_mask.data.shapes.writing import GENERATOR_VERSION, MANIFEST_NAME


def files_under(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


def dataset_digest(root: Path) -> str:
    """sha256 of the annotation files' bytes and of every PNG's decoded pixels, by path.

    Pixels rather than PNG bytes, so that a new zlib or libpng does not fail the test.
    """
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if path.suffix == ".json" and name.startswith("annotations/"):
            digest.update(name.encode() + b"\0" + path.read_bytes())
        elif path.suffix == ".png":
            pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            digest.update(name.encode() + b"\0" + repr(pixels.shape).encode() + pixels.tobytes())
    return digest.hexdigest()


def test_plain_output_is_what_it_was_before_variants(tmp_path):
    # The expected digest was computed with dataset_digest on the dataset below, made by
    # noisy_mask/data/shapes.py as of commit 7a9ad41 (before variants existed).
    paths = generate_shapes_dataset(tmp_path, num_train=4, num_val=2, image_size=192, seed=3)
    assert dataset_digest(tmp_path) == (
        "08f2c58266dd4c1c03affbead3f4956b182fea4f11f9a8c17bb94872eb28961f"
    )
    assert "variant" not in json.loads(Path(paths["train_json"]).read_text())["info"]
    assert json.loads(Path(paths["manifest"]).read_text())["params"]["variant"] == "plain"


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    first = generate_shapes_dataset(tmp_path / "a", num_train=4, num_val=2, seed=7)
    second = generate_shapes_dataset(tmp_path / "b", num_train=4, num_val=2, seed=7)
    other = generate_shapes_dataset(tmp_path / "c", num_train=4, num_val=2, seed=8)
    files_a, files_b = files_under(Path(first["root"])), files_under(Path(second["root"]))
    files_c = files_under(Path(other["root"]))
    assert list(files_a) == list(files_b) and len(files_a) == 4 + 2 + 3
    for name in files_a:
        assert files_a[name].read_bytes() == files_b[name].read_bytes(), name
    pngs = [name for name in files_a if name.endswith(".png")]
    assert all(files_a[name].read_bytes() != files_c[name].read_bytes() for name in pngs)
    train_json = "annotations/instances_train.json"
    assert files_a[train_json].read_bytes() != files_c[train_json].read_bytes()
    # train and val draw from different streams
    assert files_a["train/000001.png"].read_bytes() != files_a["val/000001.png"].read_bytes()
    # image k depends on (seed, split, k) only, not on how many images there are
    fewer = generate_shapes_dataset(tmp_path / "d", num_train=2, num_val=1, seed=7)
    for name in ("train/000001.png", "train/000002.png", "val/000001.png"):
        assert (Path(fewer["root"]) / name).read_bytes() == files_a[name].read_bytes()


def test_second_call_writes_nothing_and_changed_parameters_rewrite(tmp_path):
    paths = generate_shapes_dataset(tmp_path, num_train=4, num_val=2, seed=1)
    before = {name: p.stat().st_mtime_ns for name, p in files_under(tmp_path).items()}
    assert not [name for name in before if Path(name).name.startswith(".")]  # no temp files
    manifest = json.loads(Path(paths["manifest"]).read_text())
    assert manifest["params"] == {
        "generator_version": GENERATOR_VERSION,
        "num_train": 4,
        "num_val": 2,
        "image_size": 192,
        "seed": 1,
        "variant": "plain",
    }

    assert generate_shapes_dataset(tmp_path, num_train=4, num_val=2, seed=1) == paths
    after = {name: p.stat().st_mtime_ns for name, p in files_under(tmp_path).items()}
    assert after == before

    # a missing image makes the folder incomplete: it is made again, with the same bytes
    lost = tmp_path / "train" / "000003.png"
    kept = lost.read_bytes()
    lost.unlink()
    generate_shapes_dataset(tmp_path, num_train=4, num_val=2, seed=1)
    assert lost.read_bytes() == kept

    # fewer images: the manifest follows and the extra images go
    generate_shapes_dataset(tmp_path, num_train=2, num_val=2, seed=1)
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["000001.png", "000002.png"]
    assert json.loads(Path(paths["manifest"]).read_text())["params"]["num_train"] == 2
    assert len(json.loads(Path(paths["train_json"]).read_text())["images"]) == 2


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"num_train": -1}, "num_train"),
        ({"num_val": 2.5}, "num_val"),
        ({"image_size": 32}, "image_size"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, key):
    with pytest.raises(ValueError, match=key):
        generate_shapes_dataset(tmp_path, **kwargs)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_variant_is_recorded_and_another_variant_remakes(tmp_path):
    def contents():
        files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
        return {p.relative_to(tmp_path).as_posix(): p.read_bytes() for p in files}

    def times():
        return {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}

    paths = generate_shapes_dataset(tmp_path, num_train=3, num_val=1, seed=2)
    plain = contents()
    pngs = [name for name in plain if name.endswith(".png")]
    assert len(pngs) == 4

    assert generate_shapes_dataset(tmp_path, 3, 1, seed=2, variant="hard") == paths
    assert json.loads(Path(paths["manifest"]).read_text())["params"]["variant"] == "hard"
    assert json.loads(Path(paths["val_json"]).read_text())["info"]["variant"] == "hard"
    hard = contents()
    assert list(hard) == list(plain) and all(hard[name] != plain[name] for name in pngs)

    # the same variant again: complete, nothing written
    before = times()
    generate_shapes_dataset(tmp_path, 3, 1, seed=2, variant="hard")
    assert times() == before

    # deterministic: another folder, the same bytes
    again = generate_shapes_dataset(tmp_path / "again", 3, 1, seed=2, variant="hard")
    for name in pngs + ["annotations/instances_train.json"]:
        assert (Path(again["root"]) / name).read_bytes() == hard[name], name

    # back to plain: the plain bytes again
    generate_shapes_dataset(tmp_path, num_train=3, num_val=1, seed=2)
    assert all((tmp_path / name).read_bytes() == plain[name] for name in plain)

    with pytest.raises(ValueError, match="plain, hard"):
        generate_shapes_dataset(tmp_path / "bad", variant="cluttered")
    assert not (tmp_path / "bad").exists()
