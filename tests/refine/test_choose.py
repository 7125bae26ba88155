"""`--source auto`: the choice with a reference (the source closer to it, or none) and without
(the triangulation), on hand-made squares; the gains, the bootstrap and the pairing with a
reference by hand."""

import json

import numpy as np
import pytest
from refine_cases import CATEGORIES, outline_case, write_case
from samples import coco_dict, pycocotools_rle, square, square_annotation

from noisy_mask.coco.io import AnnotationError
from noisy_mask.refine.apply import RefineOptions, refine_file
from noisy_mask.refine.choose import ChoiceOptions, bootstrap_lower, choose_label_free, judge
from noisy_mask.refine.choose import label_free_gains, pair_reference, reference_gains


def refine(tmp_path, by, shift, image_shift=0, reference=True, **options):
    """Refine `outline_case(by, shift)` (images showing the squares `image_shift` px to the right)
    with --source auto and the clean file as the reference, or none; the report."""
    gt, results, extra = outline_case(by, shift)
    objects = {i: [(x + image_shift, y) for x, y in c] for i, c in extra["objects"].items()}
    case = write_case(tmp_path, gt, results, objects)
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(extra["clean"]))
    result = refine_file(case["gt"], case["images"], case["audit"], case["out"],
                         reference=clean if reference else None, clean=clean,
                         options=RefineOptions(**options))  # fmt: skip
    return result["report"]


def evidence(report, source):
    return next(e for e in report["choice"]["evidence"] if e["source"] == source)


def test_with_a_reference_grabcut_wins_where_the_image_shows_the_outline(tmp_path):
    # annotations 2 px too large (IoU 400 / 576 = 0.694 with the truth), predictions 4 px to the
    # right (0.667): GrabCut finds the square the image shows; the vote of the three is the truth
    # and the overlap of annotation and prediction, 22 x 20 (0.909)
    report = refine(tmp_path, by=2, shift=4)
    assert report["choice"]["source"] == "grabcut" and report["choice"]["how"] == "reference"
    assert evidence(report, "prediction")["mean_gain"] == pytest.approx(2 / 3 - 400 / 576, abs=1e-4)
    assert evidence(report, "agreement")["mean_gain"] == pytest.approx(400 / 440 - 400 / 576,
                                                                       abs=1e-4)  # fmt: skip
    assert evidence(report, "grabcut")["mean_gain"] > 0.25
    assert report["counts"]["masks"] == 6
    assert report["truth"]["grabcut"]["mean_iou"] > 0.95 > report["truth"]["none"]["mean_iou"]
    assert report["choice"]["reference"] == {
        "images": 3, "instances": 6, "paired_by_id": 6, "paired_by_iou": 0,
        "file": str(tmp_path / "clean.json"), "suspicious": 6,
    }  # fmt: skip


def test_max_iou_1_puts_the_well_matched_annotations_in_reach(tmp_path):
    # annotations 1 px too large, predictions exact: audited and true IoU 400 / 484 = 0.826, above
    # the default 0.8, so nothing is suspicious; with max_iou 1 all six are, and each source is
    # judged on them: the prediction gains 1 - 400 / 484 on every one
    kept = refine(tmp_path / "default", by=1, shift=0, source="prediction")
    assert kept["counts"]["suspicious"] == 0 and kept["counts"]["masks"] == 0
    report = refine(tmp_path / "wide", by=1, shift=0, source="prediction", max_iou=1.0)
    assert report["counts"]["suspicious"] == 6 and report["counts"]["masks"] == 6
    assert evidence(report, "prediction")["mean_gain"] == pytest.approx(1 - 400 / 484, abs=1e-4)
    assert report["truth"]["none"]["mean_iou"] == pytest.approx(400 / 484, abs=1e-4)
    assert report["truth"]["prediction"]["mean_iou"] == pytest.approx(1.0)
    boxes = {c["id"]: c["bbox"]["new"] for c in report["changes"]}
    assert boxes == {2 * i + k: [x, x, 20.0, 20.0]
                     for i in (1, 2, 3) for k, x in enumerate((8.0, 36.0))}  # fmt: skip
    assert RefineOptions().iou_range() == "[0.5, 0.8)"
    assert RefineOptions(max_iou=1.0).iou_range() == "[0.5, 1]"
    # max_iou 1 includes IoU 1 itself: exact annotations are in reach, and kept as they are
    exact = refine(tmp_path / "exact", by=0, shift=0, source="prediction", max_iou=1.0)
    assert exact["counts"]["suspicious"] == 6 and exact["counts"]["masks"] == 0
    assert {k["reason"] for k in exact["kept"]} == {"prediction gives the same mask"}


def test_with_a_reference_the_prediction_wins_where_the_image_is_off(tmp_path):
    # the image shows each square 3 px right of the truth; the predictions are exact
    report = refine(tmp_path, by=2, shift=0, image_shift=3)
    assert report["choice"]["source"] == "prediction"
    assert evidence(report, "prediction")["mean_gain"] == pytest.approx(1 - 400 / 576, abs=1e-4)
    gains = {s: evidence(report, s)["mean_gain"] for s in ("prediction", "grabcut")}
    assert 0 < gains["grabcut"] < gains["prediction"]
    assert report["truth"]["prediction"]["mean_iou"] == 1.0


def test_with_a_reference_none_when_no_source_beats_the_annotations(tmp_path):
    # exact annotations, predictions 4 px off, GrabCut finds the annotations again
    report = refine(tmp_path, by=0, shift=4)
    assert report["choice"]["source"] == "none"
    assert report["choice"]["reason"].startswith("no source beats the annotations as they are")
    assert evidence(report, "prediction")["mean_gain"] < 0
    assert not evidence(report, "grabcut")["qualifies"]
    assert report["counts"]["masks"] == 0 and report["changes"] == []


def test_with_too_small_a_reference_none(tmp_path):
    report = refine(tmp_path, by=2, shift=4, choice=ChoiceOptions(min_instances=7))
    assert report["choice"]["source"] == "none"
    assert evidence(report, "grabcut")["why_not"] == "6 annotations, fewer than 7"


def test_without_a_reference_prediction_and_grabcut_outvote_the_annotation(tmp_path):
    # annotations 2 px too large; exact predictions, and GrabCut agrees with them
    report = refine(tmp_path, by=2, shift=0, reference=False)
    assert report["choice"]["how"] == "label-free"
    assert report["choice"]["source"] in ("prediction", "grabcut")
    assert evidence(report, "agreement")["why_not"].endswith("no independent referee")
    assert report["truth"][report["choice"]["source"]]["mean_iou"] > 0.95


def test_without_a_reference_none_when_the_prediction_is_the_odd_one_out(tmp_path):
    report = refine(tmp_path, by=0, shift=4, reference=False)
    assert report["choice"]["source"] == "none"
    assert evidence(report, "prediction")["mean_gain"] < 0
    assert abs(evidence(report, "grabcut")["mean_gain"]) < 0.02


# ---------------------------------------------------------------------------------------------
# The pieces, by hand.


def masks(**squares):
    """RLEs of 20 x 20 squares in a 64 x 64 image at the given left columns (row 10)."""
    return {name: pycocotools_rle(square(64, 64, 10, x, 20)) for name, x in squares.items()}


def test_gains_by_hand():
    # annotation at x 10, prediction at 14, GrabCut at 12: IoU(A, G) = 18/22, IoU(P, G) = 18/22,
    # IoU(A, P) = 16/24
    candidates = {1: masks(annotation=10, prediction=14, grabcut=12)}
    assert label_free_gains(candidates, "prediction")[0] == pytest.approx(0.0)
    expected = (1 - 16 / 24) - (1 - 18 / 22)
    assert label_free_gains(candidates, "grabcut")[0] == pytest.approx(expected)
    reference = {1: masks(r=13)["r"]}  # IoU(A, R) = 17/23, IoU(P, R) = 19/21
    expected = 19 / 21 - 17 / 23
    assert reference_gains(candidates, reference, "prediction")[0] == pytest.approx(expected)
    candidates[1]["grabcut"] = None  # no mask: the annotation stays, gain 0; no referee for P
    assert reference_gains(candidates, reference, "grabcut")[0] == 0.0
    assert label_free_gains(candidates, "prediction").size == 0


def test_bootstrap_and_judge():
    gains = np.array([0.1] * 10)
    assert bootstrap_lower(gains, 0.025) == pytest.approx(0.1)  # no spread
    mixed = np.array([0.3, -0.2, 0.25, -0.25, 0.2, -0.3, 0.05])  # mean 0.007: no sure gain
    evidence = judge("grabcut", mixed, 3, ChoiceOptions(min_gain=0.0))
    assert not evidence.qualifies and evidence.lower_bound < 0 < evidence.mean_gain
    assert (evidence.better, evidence.worse) == (4, 3)
    assert judge("grabcut", gains, 3, ChoiceOptions()).qualifies
    assert not judge("grabcut", gains, 3, ChoiceOptions(min_gain=0.2)).qualifies


def test_label_free_picks_the_larger_gain():
    # A at 10; P at 16 and G at 17 agree (IoU 19/21) and disagree with A (14/26 and 13/27)
    candidates = {i: masks(annotation=10, prediction=16, grabcut=17) for i in range(6)}
    choice = choose_label_free(candidates, ("prediction", "grabcut", "agreement"))
    gains = {e.source: e.mean_gain for e in choice.evidence}
    assert gains["prediction"] == pytest.approx((1 - 13 / 27) - (1 - 19 / 21))
    assert gains["grabcut"] == pytest.approx((1 - 14 / 26) - (1 - 19 / 21))
    assert choice.source == "prediction"


def test_the_reference_pairs_by_id_then_by_iou():
    gt = coco_dict(
        [
            square_annotation(1, 1, 10, 10),
            square_annotation(2, 1, 40, 40),
            square_annotation(3, 2, 10, 10),
        ],
        num_images=2,
        categories=CATEGORIES,
    )
    ref = coco_dict(
        [
            square_annotation(1, 1, 11, 10),
            square_annotation(70, 1, 42, 40, category_id=2),
            square_annotation(71, 1, 10, 40),
        ],
        num_images=1,
        categories=CATEGORIES,
    )
    paired, counts, classes = pair_reference(gt, ref, "gt.json", "ref.json")
    # 1 by id; 70 by IoU with 2 (18/22); 71 overlaps nothing
    assert sorted(paired) == [1, 2]
    assert counts == {"images": 1, "instances": 3, "paired_by_id": 1, "paired_by_iou": 1}
    assert classes == {1: 1, 2: 2}  # the reference's class of each paired annotation
    ref["images"][0]["file_name"] = "9.png"
    with pytest.raises(AnnotationError, match=r"^ref.json: image 1 \('9.png'\) is not an image"):
        pair_reference(gt, ref, "gt.json", "ref.json")
    ref["images"][0].update(file_name="1.png", width=32)
    with pytest.raises(AnnotationError, match=r"^ref.json: image 1 is 32x64, but 64x64 in gt.json"):
        pair_reference(gt, ref, "gt.json", "ref.json")
