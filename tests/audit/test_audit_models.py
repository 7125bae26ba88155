"""The audit's own predictions (slow: trains tiny models a few iterations): a model's weights run
over the images, and K models cross-fitted on the audited file, each image predicted by the model
that did not train on it."""

import json
from pathlib import Path

import pytest

from noisy_mask.audit.cli import main
from noisy_mask.experiments.runner import run_train_net

pytestmark = pytest.mark.slow

# Tiny runs: 96 px images, 2 images a batch.
SMALL = ["SOLVER.IMS_PER_BATCH", "2", "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MIN_SIZE_TEST", "96"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from noisy_mask.data.shapes import generate_shapes_dataset

    root = tmp_path_factory.mktemp("audit_shapes")
    return generate_shapes_dataset(root / "shapes", num_train=8, num_val=6, image_size=96, seed=5)


def audit_args(shapes, output, *extra):
    return ["--annotations", shapes["val_json"], shapes["val_images"], "--output", str(output),
            *extra]  # fmt: skip


def test_weights_audit_writes_everything(shapes, tmp_path, capsys):
    run_dir = tmp_path / "run"
    datasets = [["tiny_train", shapes["train_json"], shapes["train_images"]]]
    opts = ["DATASETS.REGISTER_COCO", repr(datasets), "DATASETS.TRAIN", "('tiny_train',)",
            "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "100"]
    run_train_net(run_dir, [*opts, *SMALL], "the tiny model")
    weights = run_dir / "model_final.pth"
    out = tmp_path / "weights"
    # no --config: the built-in data takes the built-in config
    assert main(audit_args(shapes, out, "--weights", str(weights), *SMALL)) == 0
    line = capsys.readouterr().out.splitlines()[0]
    audit = json.loads((out / "audit.json").read_text())
    num_annotations = len(json.loads(Path(shapes["val_json"]).read_text())["annotations"])
    assert line.startswith(f"{num_annotations} annotations: ")
    assert audit["predictions"]["source"] == "weights"
    assert audit["predictions"]["config"].endswith("shapes/Base-Shapes-R18-FPN.yaml")
    assert len(audit["annotations"]) == num_annotations
    assert [r["rank"] for r in audit["annotations"]] == list(range(1, num_annotations + 1))
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions and {p["category_id"] for p in predictions} <= {1, 2, 3, 4}
    assert min(p["score"] for p in predictions) >= 0.05
    for name in ("audit.csv", "audit_suspects.png", "audit.html"):
        assert (out / name).is_file(), name
    assert len(list((out / "audit_thumbs").glob("a*.png"))) == num_annotations

    # The same predictions as a results file give the same audit.
    again = tmp_path / "detections"
    assert main(audit_args(shapes, again, "--detections", str(out / "predictions.json"))) == 0
    rows = json.loads((again / "audit.json").read_text())["annotations"]
    assert rows == audit["annotations"]


def test_two_folds_predict_each_image_with_the_model_that_did_not_train_on_it(
    shapes, tmp_path, capsys
):
    out = tmp_path / "folds"
    args = audit_args(shapes, out, "--folds", "2", "--max-iter", "4", "--jobs", "2", *SMALL)
    assert main(args) == 0
    audit = json.loads((out / "audit.json").read_text())
    gt = json.loads(Path(shapes["val_json"]).read_text())
    image_ids = {image["id"] for image in gt["images"]}

    folds = audit["folds"]
    assert [f["fold"] for f in folds] == [0, 1] and audit["predictions"]["folds"] == 2
    predicted = [set(f["predicted_images"]) for f in folds]
    assert predicted[0] | predicted[1] == image_ids and not predicted[0] & predicted[1]
    assert {len(p) for p in predicted} == {3}  # 6 images, 2 folds
    for fold, held_out in zip(folds, predicted):
        # the model trained on the other fold only: its training file and its log say so
        assert set(fold["train_images"]) == image_ids - held_out
        fold_dir = Path(fold["run_dir"]).parent
        train = json.loads((fold_dir / "train.json").read_text())
        assert {image["id"] for image in train["images"]} == image_ids - held_out
        assert {a["image_id"] for a in train["annotations"]} <= image_ids - held_out
        results = Path(fold["run_dir"]) / "inference" / f"audit_fold{fold['fold']}_heldout"
        assert {r["image_id"] for r in json.loads((results / "coco_instances_results.json")
                                                  .read_text())} <= held_out  # fmt: skip
    fold_of = {i: f["fold"] for f in folds for i in f["predicted_images"]}
    assert all(row["fold"] == fold_of[row["image_id"]] for row in audit["annotations"])
    assert len(audit["annotations"]) == len(gt["annotations"])

    # A second audit with the same folds trains nothing again.
    weights = [Path(f["run_dir"]) / "model_final.pth" for f in folds]
    stamps = [w.stat().st_mtime_ns for w in weights]
    capsys.readouterr()
    assert main(args) == 0
    assert [w.stat().st_mtime_ns for w in weights] == stamps
    assert json.loads((out / "audit.json").read_text())["annotations"] == audit["annotations"]
