"""`python -m noisy_mask.refine`: the corrected copy of a hand-made audited file, its report, what
stays as it was, the output's validity, and the errors."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from refine_cases import CATEGORIES, hand_case, write_case
from samples import ROOT, heavy, modules_loaded_by_import, polygons_mask
from samples import coco_dict, rle, square, square_annotation, square_result, uncompressed_rle

from noisy_mask.coco.io import AnnotationError
from noisy_mask.refine.apply import RefineOptions, refine_file
from noisy_mask.refine.classes import sign_test
from noisy_mask.commands.refine import main

# The images show each square where it is annotated (1, 3) or where the star is predicted.
OBJECTS = {1: [(10, 10), (40, 40)], 2: [(40, 10), (10, 40)]}


@pytest.fixture
def case(tmp_path):
    return write_case(tmp_path, *hand_case(), OBJECTS)


def run(case, *extra):
    return main(["--annotations", str(case["gt"]), str(case["images"]), "--audit",
                 str(case["audit"]), "--output", str(case["out"]), *extra])  # fmt: skip


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def by_id(coco):
    return {a["id"]: a for a in coco["annotations"]}


def test_the_damaged_mask_and_box_become_the_prediction(case, capsys):
    before = digest(case["gt"])
    assert run(case, "--source", "prediction") == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line == (
        "3 annotations, 1 suspicious (audited mask IoU in [0.5, 0.8)): 1 mask from prediction "
        "(given: --source prediction); 0 classes corrected"
    )
    assert digest(case["gt"]) == before  # the input, byte for byte
    gt, out = json.loads(case["gt"].read_text()), json.loads(case["out"].read_text())
    old, new = by_id(gt), by_id(out)
    # annotation 1 (x 10..29) takes the prediction's square 4 px to the right: x 14..33, y 10..29
    mask = polygons_mask(new[1]["segmentation"], 64, 64)
    assert np.array_equal(mask, square(64, 64, 10, 14, 20))
    assert new[1]["bbox"] == [14.0, 10.0, 20.0, 20.0]
    assert new[1]["area"] == 400.0
    assert {k: v for k, v in new[1].items() if k not in ("segmentation", "bbox")} == {
        k: v for k, v in old[1].items() if k not in ("segmentation", "bbox")
    }
    assert new[2] == old[2] and new[3] == old[3]  # IoU 1: not suspicious; classes kept
    assert {k: v for k, v in out.items() if k != "annotations"} == {
        k: v for k, v in gt.items() if k != "annotations"
    }

    report = json.loads(case["out"].with_suffix(".refine_report.json").read_text())
    assert report["choice"]["source"] == "prediction" and report["choice"]["how"] == "given"
    assert report["counts"] == {"annotations": 3, "suspicious": 1, "masks": 1, "classes": 0,
                                "added": 0}  # fmt: skip
    [change] = report["changes"]
    assert change["id"] == 1 and change["source"] == "prediction"
    assert change["changed"] == ["segmentation", "bbox", "area"]
    assert change["bbox"] == {"old": [10.0, 10.0, 20.0, 20.0], "new": [14.0, 10.0, 20.0, 20.0]}
    assert change["area"] == {"old": 400.0, "new": 400.0}
    # IoU with the prediction 2/3 before, 1 after; old vs new: 16 x 20 / (24 x 20) = 2/3
    assert change["mask"] == {"iou_with_prediction": {"old": 0.666667, "new": 1.0},
                              "iou_old_new": 0.666667}  # fmt: skip


def test_the_output_validates(case):
    assert run(case, "--source", "prediction", "--add-missing") == 0
    done = subprocess.run(
        [sys.executable, "-m", "noisy_mask.validate", str(case["out"]), str(case["images"])],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("ok: 2 images, 4 annotations")


def test_a_class_flip_is_corrected_only_when_asked_and_above_the_threshold(case):
    # annotation 2: a circle that the model sees as a star at 0.8 and as a circle at 0.2
    assert run(case, "--source", "none") == 0  # classes are kept by default
    assert by_id(json.loads(case["out"].read_text()))[2]["category_id"] == 1
    assert run(case, "--source", "none", "--fix-classes", "--class-score", "0.8") == 0
    assert by_id(json.loads(case["out"].read_text()))[2]["category_id"] == 2
    report = json.loads(case["out"].with_suffix(".refine_report.json").read_text())
    assert report["changes"] == [{
        "id": 2, "image_id": 1, "changed": ["category_id"],
        "category_id": {"old": 1, "new": 2, "old_score": 0.2, "new_score": 0.8, "source": "audit"},
    }]  # fmt: skip
    assert run(case, "--source", "none", "--fix-classes", "--class-score", "0.81") == 0
    assert by_id(json.loads(case["out"].read_text()))[2]["category_id"] == 1


def flip_case(root, num_images):
    """`num_images` images of one circle at 40..59 x 40..59 each (annotation id = image id), which
    the model predicts exactly as a star (0.8) and as a circle (0.2): a class it disputes."""
    annotations = [square_annotation(i, i, 40, 40, category_id=1)
                   for i in range(1, num_images + 1)]  # fmt: skip
    results = []
    for i in range(1, num_images + 1):
        results += [square_result(i, 40, 40, 0.8, category_id=2),
                    square_result(i, 40, 40, 0.2, category_id=1)]  # fmt: skip
    gt = coco_dict(annotations, num_images=num_images, categories=CATEGORIES)
    objects = {i: [(40, 40)] for i in range(1, num_images + 1)}
    return write_case(root, gt, results, objects)


@pytest.mark.parametrize(
    "reference_classes, corrected, p_value",
    [
        ([2, 2, 2, 2, 2], True, "0.031"),  # 5 fixed: 1 / 32
        ([2, 2, 2, 2, 1], False, "0.19"),  # 4 fixed, 1 broken: (5 + 1) / 32
        ([2], False, "0.5"),  # 1 fixed: no evidence
        ([1, 1, 1], False, "1"),  # 3 broken
    ],
)
def test_with_a_reference_classes_are_corrected_only_where_it_shows_a_gain(
    tmp_path, capsys, reference_classes, corrected, p_value
):
    """The reference annotates each image's circle as a star (the model's class: fixed) or a
    circle (the annotation's: broken); the corrections are made only when the sign test of fixed
    against broken gives p <= 0.05."""
    case = flip_case(tmp_path, 5)
    capsys.readouterr()  # the audit's lines
    gt = json.loads(case["gt"].read_text())
    count = len(reference_classes)
    reference = dict(gt, images=gt["images"][:count],
                     annotations=[dict(a, category_id=c)
                                  for a, c in zip(gt["annotations"], reference_classes)])
    reference_path = case["gt"].with_name("reference.json")
    reference_path.write_text(json.dumps(reference))
    assert run(case, "--source", "none", "--fix-classes", "--reference", str(reference_path)) == 0
    line = capsys.readouterr().out.splitlines()[0]
    fixed = reference_classes.count(2)
    broken = count - fixed
    reason = (f"on the reference the model disputes {count} of {count} classes at >= 0.7: its "
              f"class would fix {fixed}, break {broken} (sign test p = {p_value})"
              + ("" if corrected else ": classes kept"))
    changed = 5 if corrected else 0
    assert line.endswith(f"; {changed} class{'' if changed == 1 else 'es'} corrected ({reason})")
    classes = {a["category_id"] for a in json.loads(case["out"].read_text())["annotations"]}
    assert classes == ({2} if corrected else {1})
    report = json.loads(case["out"].with_suffix(".refine_report.json").read_text())
    assert report["classes"] == {"fix": corrected, "reason": reason, "paired": count,
                                 "disputed": count, "fixed": fixed, "broken": broken,
                                 "other": 0, "p_value": pytest.approx(float(p_value), abs=6e-3)}


def test_sign_test_by_hand():
    # P(Bin(n, 1/2) >= k): 5 of 5 = 1/32; 8 of 9 = (9 + 1) / 512; 6 of 8 = (28 + 8 + 1) / 256
    assert sign_test(5, 0) == 1 / 32 and sign_test(4, 0) == 1 / 16
    assert sign_test(8, 1) == 10 / 512 and sign_test(6, 2) == 37 / 256
    assert sign_test(0, 0) == 1.0 and sign_test(0, 3) == 1.0


def test_add_missing_adds_the_confident_predictions_with_new_ids(case):
    assert run(case, "--source", "none") == 0
    assert len(json.loads(case["out"].read_text())["annotations"]) == 3  # off by default
    assert run(case, "--source", "none", "--add-missing") == 0
    out = json.loads(case["out"].read_text())
    # the star at 10..29 x 40..59 (0.9), not the circle of 0.6 < 0.7; ids from max id 3 + 1
    added = out["annotations"][3:]
    assert [(a["id"], a["image_id"], a["category_id"]) for a in added] == [(4, 2, 2)]
    assert added[0]["bbox"] == [10.0, 40.0, 20.0, 20.0] and added[0]["area"] == 400.0
    assert np.array_equal(polygons_mask(added[0]["segmentation"], 64, 64),
                          square(64, 64, 40, 10, 20))  # fmt: skip
    assert run(case, "--source", "none", "--add-missing", "--missing-score", "0.5") == 0
    out = json.loads(case["out"].read_text())
    assert [(a["id"], a["category_id"]) for a in out["annotations"][3:]] == [(4, 2), (5, 1)]


def test_rle_masks_stay_rle_of_their_kind(tmp_path):
    gt, results = hand_case()
    gt["annotations"][0]["segmentation"] = uncompressed_rle(square(64, 64, 10, 10, 20))
    gt["annotations"][2]["segmentation"] = rle(square(64, 64, 10, 40, 20))
    case = write_case(tmp_path, gt, results, OBJECTS)
    assert run(case, "--source", "prediction", "--add-missing") == 0
    new = by_id(json.loads(case["out"].read_text()))
    assert new[1]["segmentation"] == uncompressed_rle(square(64, 64, 10, 14, 20))
    assert new[1]["bbox"] == [14.0, 10.0, 20.0, 20.0]
    assert new[4]["segmentation"] == rle(square(64, 64, 40, 10, 20))  # not all polygons: RLE


def test_grabcut_finds_the_square_the_image_shows(tmp_path):
    gt, results = hand_case()
    # annotation 1 drawn 3 px too large all round (26 x 26 at 7, 7): IoU 400 / 676 with the square
    # the image shows at 10, 10, and 0.62 with the prediction
    gt["annotations"][0]["segmentation"] = [[7, 7, 33, 7, 33, 33, 7, 33]]
    case = write_case(tmp_path, gt, results, OBJECTS)
    assert run(case, "--source", "grabcut") == 0
    mask = polygons_mask(by_id(json.loads(case["out"].read_text()))[1]["segmentation"], 64, 64)
    truth = square(64, 64, 10, 10, 20)
    assert (mask & truth).sum() / (mask | truth).sum() >= 0.95


def test_predictions_of_a_model_are_read_from_the_audit_folder(case, tmp_path):
    audit_json = case["audit"] / "audit.json"
    audit = json.loads(audit_json.read_text())
    audit["predictions"] = {"source": "folds", "config": "c.yaml", "folds": 2}
    audit_json.write_text(json.dumps(audit))
    with pytest.raises(FileNotFoundError, match="predictions.json; pass them with --detections"):
        refine_file(case["gt"], case["images"], case["audit"], case["out"])
    (case["audit"] / "predictions.json").write_bytes(case["results"].read_bytes())
    result = refine_file(case["gt"], case["images"], case["audit"], case["out"],
                         options=RefineOptions(source="prediction"))  # fmt: skip
    assert result["report"]["counts"]["masks"] == 1 and result["report"]["cross_fitted"]


def test_the_models_class_probabilities_are_read_back_and_decide_the_class(case):
    """An audit that read the classes from the model at the boxes (class_scores
    box_probabilities): refine scores it again with class_probabilities.json, not with the
    detections. There annotation 2 (circle) is a star at 0.9 (the detections: 0.8), annotation 1
    (circle, whose detection agrees) a star at 0.7: with --class-score 0.85 only 2 changes, its
    new score 0.9; at 0.65 both. Without the file, the error names it."""
    audit_json = case["audit"] / "audit.json"
    audit = json.loads(audit_json.read_text())
    audit["class_scores"] = "box_probabilities"
    audit_json.write_text(json.dumps(audit))
    probs_path = case["audit"] / "class_probabilities.json"
    with pytest.raises(FileNotFoundError, match="class_probabilities.json, which is missing"):
        refine_file(case["gt"], case["images"], case["audit"], case["out"])
    probs = {"1": {"1": 0.3, "2": 0.7}, "2": {"1": 0.1, "2": 0.9}, "3": {"1": 0.0, "2": 1.0}}
    probs_path.write_text(json.dumps(probs))
    for threshold, changed in (("0.85", {2}), ("0.65", {1, 2})):
        assert run(case, "--source", "none", "--fix-classes", "--class-score", threshold) == 0
        report = json.loads(case["out"].with_suffix(".refine_report.json").read_text())
        assert {c["id"] for c in report["changes"]} == changed
        two = next(c for c in report["changes"] if c["id"] == 2)["category_id"]
        assert (two["old_score"], two["new_score"]) == (0.1, 0.9)


def test_errors_name_the_file_and_the_annotation(case, tmp_path, capsys):
    gt = json.loads(case["gt"].read_text())
    gt["annotations"][0]["segmentation"] = [[10, 10, 31, 10, 31, 29, 10, 29]]  # changed since
    case["gt"].write_text(json.dumps(gt))
    with pytest.raises(AnnotationError) as error:
        refine_file(case["gt"], case["images"], case["audit"], case["out"])
    assert str(error.value).startswith(
        f"{case['gt']}: annotation 1 (image 1): mask IoU with its best match"
    )
    assert "changed since the audit" in str(error.value)
    assert run(case) == 2
    assert capsys.readouterr().err.startswith(f"error: {case['gt']}: annotation 1 (image 1)")
    assert not case["out"].exists() and not case["out"].with_suffix(".refine_report.json").exists()

    gt["annotations"][1]["segmentation"] = [[40, 40, 60, 40, 60]]  # odd number of coordinates
    case["gt"].write_text(json.dumps(gt))
    assert run(case) == 2
    assert capsys.readouterr().err.startswith(f"error: {case['gt']}: annotation 2 (image 1):")

    extra = json.loads(case["gt"].read_text())
    extra["annotations"] = [a for a in extra["annotations"] if a["id"] != 2]
    case["gt"].write_text(json.dumps(extra))
    with pytest.raises(AnnotationError, match="annotation 2 .* is not in the file"):
        refine_file(case["gt"], case["images"], case["audit"], case["out"])


def test_the_input_is_never_the_output(case):
    with pytest.raises(ValueError, match="would overwrite the input"):
        refine_file(case["gt"], case["images"], case["audit"], case["gt"])
    with pytest.raises(ValueError, match="output folder does not exist"):
        refine_file(case["gt"], case["images"], case["audit"], case["out"].parent / "no" / "o.json")


def test_the_refinement_imports_neither_torch_nor_detectron2():
    assert not heavy(modules_loaded_by_import("noisy_mask.refine.apply"))
