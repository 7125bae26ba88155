"""The audit's own predictions (slow: trains tiny models a few iterations): a model's weights run
over the images, and K models cross-fitted on the audited file, each image predicted by the model
that did not train on it."""

import json
from pathlib import Path

import numpy as np
import pytest

from noisy_mask.commands.audit import main
from noisy_mask.engine.launcher import run_train_net

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


@pytest.fixture(scope="module")
def tiny_weights(shapes, tmp_path_factory):
    """A model of the built-in config trained 4 iterations on the tiny training split."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    datasets = [["tiny_train", shapes["train_json"], shapes["train_images"]]]
    opts = ["DATASETS.REGISTER_COCO", repr(datasets), "DATASETS.TRAIN", "('tiny_train',)",
            "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "100"]
    run_train_net(run_dir, [*opts, *SMALL], "the tiny model")
    return run_dir / "model_final.pth"


def test_weights_audit_writes_everything(shapes, tiny_weights, tmp_path, capsys):
    weights = tiny_weights
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

    # The same predictions as a results file give the same matches; the class scores come from
    # the detections there, from the model's probabilities at the boxes here.
    again = tmp_path / "detections"
    assert main(audit_args(shapes, again, "--detections", str(out / "predictions.json"))) == 0
    from_file = json.loads((again / "audit.json").read_text())
    assert (audit["class_scores"], from_file["class_scores"]) == ("box_probabilities", "detections")
    match_columns = ("id", "pred_category_id", "pred_score", "mask_iou", "boundary_iou", "matched")
    by_id = {row["id"]: row for row in from_file["annotations"]}
    for row in audit["annotations"]:
        assert {k: row[k] for k in match_columns} == {k: by_id[row["id"]][k] for k in match_columns}


def test_image_model_is_default_predictor_and_reads_classes_as_detectron2_scores_proposals(
    shapes, tiny_weights
):
    """ImageModel gives DefaultPredictor's instances exactly; at a box, the class probabilities
    are those detectron2's own inference gives the box as a precomputed proposal (one proposal a
    call, score threshold 0, no suppression: one detection per class, scored p(k)), over the
    foreground classes. The test size 128 px on 96 px images: boxes scaled by 4/3, here by hand."""
    import torch
    from detectron2.engine import DefaultPredictor
    from detectron2.structures import Boxes, Instances

    from noisy_mask.audit.predict import ImageModel, annotation_boxes, predictor_config
    from noisy_mask.coco.io import read_image
    from noisy_mask.engine.launcher import SHAPES_CONFIG

    gt = json.loads(Path(shapes["val_json"]).read_text())
    opts = [*SMALL, "INPUT.MIN_SIZE_TEST", "128"]
    cfg = predictor_config(SHAPES_CONFIG, str(tiny_weights), opts, min_score=0.0)
    ours, default = ImageModel(cfg), DefaultPredictor(cfg)
    reference = ImageModel(cfg)
    reference.model.proposal_generator = None  # the proposals come with the input
    predictor = reference.model.roi_heads.box_predictor
    predictor.test_score_thresh, predictor.test_nms_thresh = 0.0, 1.0
    boxes = annotation_boxes(gt)
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    compared = 0
    for image in gt["images"][:3]:
        rgb = read_image(shapes["val_images"], image)
        ids, image_boxes = boxes[image["id"]]
        instances, probs = ours(rgb, image_boxes)
        expected = default(np.ascontiguousarray(rgb[:, :, ::-1]))["instances"]
        assert len(expected) > 0
        for field in ("pred_boxes", "scores", "pred_classes", "pred_masks"):
            a, b = instances.get(field), expected.get(field)
            a, b = (a.tensor, b.tensor) if field == "pred_boxes" else (a, b)
            assert torch.equal(a, b), field
        assert probs.shape == (len(ids), num_classes)
        pixels = np.ascontiguousarray(rgb[:, :, ::-1]) if cfg.INPUT.FORMAT == "BGR" else rgb
        resized = reference.resize.get_transform(pixels).apply_image(pixels)
        pixels = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        for box, row in zip(image_boxes, probs):
            proposal = Instances(resized.shape[:2])
            proposal.proposal_boxes = Boxes(torch.as_tensor(box[None] * 128 / 96))
            proposal.objectness_logits = torch.zeros(1)
            inputs = {"image": pixels, "height": 96, "width": 96, "proposals": proposal}
            with torch.no_grad():
                detected = reference.model([inputs])[0]["instances"]
            scores = torch.zeros(num_classes)
            scores[detected.pred_classes] = detected.scores
            assert sorted(detected.pred_classes.tolist()) == list(range(num_classes))
            assert torch.allclose(row, scores / scores.sum(), atol=1e-5)
            compared += 1
    assert compared >= 3


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
    # The class scores: the probabilities at each box of the model that predicted the image.
    from noisy_mask.audit.predict import fold_class_probabilities, predict_images

    assert audit["class_scores"] == "box_probabilities"
    read = fold_class_probabilities(gt, shapes["val_images"], folds)
    assert set(read) == {a["id"] for a in gt["annotations"]}
    for fold in folds:
        # the full prediction of the held-out images, by this fold's model and by the other's
        held_out = set(fold["predicted_images"])
        images = dict(gt, images=[i for i in gt["images"] if i["id"] in held_out],
                      annotations=[a for a in gt["annotations"] if a["image_id"] in held_out])
        own, other = [
            predict_images(images, shapes["val_images"], Path(f["run_dir"]) / "config.yaml",
                           str(Path(f["run_dir"]) / "model_final.pth"))[1]
            for f in (fold, folds[1 - fold["fold"]])
        ]  # fmt: skip
        ids = [a["id"] for a in gt["annotations"] if a["image_id"] in held_out]
        assert {i: read[i] for i in ids} == own and own != other
    assert len(audit["annotations"]) == len(gt["annotations"])

    # A second audit with the same folds trains nothing again.
    weights = [Path(f["run_dir"]) / "model_final.pth" for f in folds]
    stamps = [w.stat().st_mtime_ns for w in weights]
    capsys.readouterr()
    assert main(args) == 0
    assert [w.stat().st_mtime_ns for w in weights] == stamps
    assert json.loads((out / "audit.json").read_text())["annotations"] == audit["annotations"]
