"""Scores of the audit on hand-made squares: IoUs, class agreement, suspicion, ranks, possibly
missing instances; the contour bands against faster-coco-eval's on the whole image; and the
scores against a known clean file."""

import json
import math

import cv2
import numpy as np
import pytest
from faster_coco_eval.core.mask import rleToBoundary
from pycocotools import mask as mask_utils
from audit_cases import hand_case, write_case
from samples import (
    coco_dict,
    hand_made_noise,
    masks_coco,
    pycocotools_rle,
    rle,
    square,
    square_annotation,
    square_result,
)

from noisy_mask.audit.scores import AuditOptions, audit_annotations, band_iou, contour_band
from noisy_mask.audit.truth import (
    auroc,
    average_ranks,
    deleted_instances,
    missing_found,
    score_against_truth,
    spearman,
    truth_from_clean,
    truth_from_report,
)
from noisy_mask.coco.rle import mask_iou
from noisy_mask.evaluation.detections import read_detections


def audit_of(tmp_path, gt, results, **options):
    _, _, results_path = write_case(tmp_path, gt, results)
    opts = AuditOptions(**options)
    return audit_annotations(gt, read_detections(results_path, gt, opts.min_score), opts)


def test_hand_made_case_scores_and_ranks(tmp_path):
    gt, results = hand_case()
    audit = audit_of(tmp_path, gt, results)
    by_id = {s.id: s for s in audit.annotations}

    # Annotation 1: columns 10..29 against 14..33, rows 10..29: |A & P| = 16 x 20 = 320,
    # |A | P| = 400 + 400 - 320 = 480, mask IoU 2/3. Boundary: d = round(0.02 x 64 sqrt 2 = 1.81)
    # = 2 px, so each band is the square minus its 16 x 16 inside, 400 - 256 = 144 px. The bands
    # share rows 10-11 and 28-29 over columns 14..29 (4 x 16 = 64 px) and nothing in rows
    # 12..27 (columns 10, 11, 28, 29 against 14, 15, 32, 33): 64 / (288 - 64) = 2/7.
    one = by_id[1]
    assert one.mask_iou == pytest.approx(2 / 3)
    assert one.boundary_iou == pytest.approx(2 / 7)
    assert (one.pred_category_id, one.pred_score, one.class_agrees) == (1, 0.9, True)
    assert (one.same_class_score, one.other_class_score) == (0.9, 0.0)
    assert one.suspicion == pytest.approx(1 / 3)  # 1 - 2/3 x (1 - 0)

    # Annotation 2: the star and the circle both cover it exactly (IoU 1); the tie goes to the
    # higher score, the star 0.8. The model prefers star 0.8 to circle 0.2: doubt 0.6,
    # suspicion 1 - 1 x (1 - 0.6) = 0.6.
    two = by_id[2]
    assert (two.pred_category_id, two.pred_score, two.mask_iou, two.boundary_iou) == (2, 0.8, 1, 1)
    assert (two.same_class_score, two.other_class_score, two.other_category_id) == (0.2, 0.8, 2)
    assert two.class_agrees is False
    assert two.suspicion == pytest.approx(0.6)

    # Annotation 3: its only prediction has score 0.01 < min_score 0.05: no match, suspicion 1.
    three = by_id[3]
    assert (three.matched, three.mask_iou, three.suspicion, three.pred_category_id) == (
        False, 0.0, 1.0, None,
    )  # fmt: skip
    assert three.class_agrees is None

    # Annotation 4: predicted exactly with its class: suspicion 0.
    four = by_id[4]
    assert (four.mask_iou, four.boundary_iou, four.class_agrees, four.suspicion) == (1, 1, True, 0)

    assert [(s.rank, s.id) for s in audit.annotations] == [(1, 3), (2, 2), (3, 1), (4, 4)]

    # The star at 10..29 x 40..59 overlaps no annotation; the circle 2 px right of it (IoU
    # 18 x 20 / (800 - 360) = 0.82 with it) is the same object; the circle of 0.3 is not confident.
    assert len(audit.missing) == 1
    missing = audit.missing[0]
    assert (missing.rank, missing.image_id, missing.pred_category_id, missing.pred_score) == (
        1, 2, 2, 0.7,
    )  # fmt: skip
    assert (missing.max_iou, missing.bbox, missing.area) == (0.0, [10, 40, 20, 20], 400)


def test_class_probabilities_at_the_box_replace_the_detections_class_scores(tmp_path):
    """The hand case with the model's class probabilities at the annotations' boxes. Annotation 1
    (circle): circle 0.3, star 0.7: same 0.3, other 0.7 (star), doubt 0.4, suspicion
    1 - 2/3 x 0.6 = 0.6, where the detections (a circle of 0.9) agreed. Annotation 2 (circle,
    predicted as a star 0.8 and a circle 0.2): circle 0.9, star 0.1: it agrees, suspicion 1 - 1 x 1
    = 0. Annotation 3 has none (matched by nothing: suspicion 1 either way); annotation 4 none
    either: its class scores come from the detections (circle 0.95). Masks and IoUs unchanged."""
    gt, results = hand_case()
    _, _, results_path = write_case(tmp_path, gt, results)
    detections = read_detections(results_path, gt, 0.05)
    plain = audit_annotations(gt, detections)
    probs = {1: {1: 0.3, 2: 0.7}, 2: {1: 0.9, 2: 0.1}, 3: {1: 0.5, 2: 0.5}}
    audit = audit_annotations(gt, detections, class_probs=probs)
    assert (plain.class_scores, audit.class_scores) == ("detections", "box_probabilities")
    by_id = {s.id: s for s in audit.annotations}
    one, two = by_id[1], by_id[2]
    assert (one.same_class_score, one.other_class_score, one.other_category_id) == (0.3, 0.7, 2)
    assert one.class_agrees is False and one.suspicion == pytest.approx(0.6)
    assert (two.same_class_score, two.other_class_score, two.other_category_id) == (0.9, 0.1, 2)
    assert two.class_agrees is True and two.suspicion == pytest.approx(0.0)
    assert (by_id[3].matched, by_id[3].suspicion, by_id[3].class_agrees) == (False, 1.0, None)
    assert (by_id[4].same_class_score, by_id[4].other_class_score) == (0.95, 0.0)
    for score in plain.annotations:
        assert (by_id[score.id].mask_iou, by_id[score.id].boundary_iou) == (
            score.mask_iou, score.boundary_iou,
        )  # fmt: skip
    assert [s.id for s in audit.annotations] == [3, 1, 2, 4]  # ties: lower IoU, then lower id


def test_options_change_what_counts(tmp_path):
    gt, results = hand_case()
    # min_score 0.005 lets the 0.01 prediction match annotation 3 (IoU 1, its own class).
    audit = audit_of(tmp_path, gt, results, min_score=0.005)
    three = next(s for s in audit.annotations if s.id == 3)
    assert (three.matched, three.suspicion, three.pred_score) == (True, 0.0, 0.01)
    # match_iou 0.7 leaves annotation 1 (IoU 2/3) without a match, and its prediction (0.9)
    # without an annotation; missing_score 0.65 keeps the star of 0.7, not the circle of 0.6.
    audit = audit_of(tmp_path, gt, results, match_iou=0.7, missing_score=0.65)
    one = next(s for s in audit.annotations if s.id == 1)
    assert (one.matched, one.suspicion, one.class_agrees) == (False, 1.0, None)
    assert one.mask_iou == pytest.approx(2 / 3)  # the best match is still reported
    missing = [(m.image_id, m.pred_category_id, m.pred_score) for m in audit.missing]
    assert missing == [(1, 1, 0.9), (2, 2, 0.7)]
    assert audit.missing[0].max_iou == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="match_iou must be in"):
        AuditOptions(match_iou=1.5).check()


def test_neighbours_crowd_regions_and_empty_masks(tmp_path):
    """A neighbour's prediction is not the object's; a crowd region covers a prediction; an
    annotation with an empty mask is unmatched."""
    gt = coco_dict(
        [
            square_annotation(1, 1, 10, 10, category_id=1),
            {**square_annotation(2, 1, 36, 36, category_id=1), "iscrowd": 1},
            {"id": 3, "image_id": 1, "category_id": 2, "iscrowd": 0, "bbox": [0, 0, 0, 0],
             "area": 0, "segmentation": rle(square(64, 64, 0, 0, 0))},
        ],
        categories=((1, "circle"), (2, "star")),
    )  # fmt: skip
    results = [
        square_result(1, 10, 10, 0.9, category_id=1),
        # a star to the right overlapping annotation 1 by 4 columns: IoU 80 / 720 = 0.11, over
        # match_iou but under 0.5 x the best match's IoU of 1: not a guess at this object
        square_result(1, 26, 10, 0.95, category_id=2),
        # a star inside the crowd region (rows and columns 36..55): covered, not missing
        square_result(1, 38, 38, 0.9, category_id=2),
    ]
    audit = audit_of(tmp_path, gt, results)
    assert audit.crowd == 1 and len(audit.annotations) == 2
    one = next(s for s in audit.annotations if s.id == 1)
    assert (one.class_agrees, one.other_class_score, one.suspicion) == (True, 0.0, 0.0)
    empty = next(s for s in audit.annotations if s.id == 3)
    assert (empty.matched, empty.suspicion, empty.rank) == (False, 1.0, 1)
    # the star at 26..45 overlaps annotation 1 (IoU 0.11 >= match_iou): not missing either
    assert audit.missing == []


def test_ranks_auroc_and_spearman_by_hand():
    assert average_ranks([0.3, 0.1, 0.3, 0.2]).tolist() == [3.5, 1, 3.5, 2]
    # positives 0.9 and 0.3 against negatives 0.8 and 0.1: 3 of the 4 pairs ordered right
    assert auroc([0.9, 0.8, 0.3, 0.1], [True, False, True, False]) == 0.75
    assert auroc([0.5, 0.5], [True, False]) == 0.5  # a tie counts one half
    assert math.isnan(auroc([0.5, 0.4], [True, True]))
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    # ranks (1, 2.5, 2.5, 4) and (1, 2, 3, 4), centred: (-1.5, 0, 0, 1.5) . (-1.5, -.5, .5, 1.5)
    # = 4.5, over sqrt(4.5 x 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))


def test_scores_against_the_clean_file_and_the_noise_report(tmp_path):
    """hand_made_noise: annotation 1 moved 5 px (true IoU 15 x 20 / (800 - 300) = 0.6), 2 deleted,
    3 flipped from star to circle. The model finds the clean squares: annotation 1's audited IoU
    is the true one, 0.6; annotation 3 is predicted as the star it was (0.9): doubt 0.9,
    suspicion 1 - 1 x 0.1 = 0.9, above annotation 1's 0.4. The suspicion ranks the flip first,
    though its outline is the better one: its rank correlation with the true IoU is -1 here.
    Both squares are 20 x 20: size alone ranks nothing (n/a)."""
    clean, noisy = hand_made_noise()
    results = [
        square_result(1, 10, 10, 0.9, category_id=1),
        square_result(1, 40, 40, 0.9, category_id=2),
    ]
    audit = audit_of(tmp_path, noisy, results)
    by_id = {s.id: s for s in audit.annotations}
    assert by_id[1].mask_iou == pytest.approx(0.6) and by_id[3].suspicion == pytest.approx(0.9)
    expected = {
        "annotations": 2, "flipped": 1, "flip_auroc": 1.0, "class_auroc": 1.0, "iou_spearman": 1.0,
        "suspicion_spearman": -1.0, "area_spearman": None, "median_true_iou": 0.8,
    }  # fmt: skip
    assert score_against_truth(audit, truth_from_clean(clean, noisy)) == expected
    report = {"per_instance": [
        {"id": 1, "action": "kept", "mask_iou": 0.6},
        {"id": 2, "action": "deleted", "mask_iou": None},
        {"id": 3, "action": "flipped", "mask_iou": 1.0},
    ]}  # fmt: skip
    assert score_against_truth(audit, truth_from_report(report)) == expected
    json.dumps(expected)  # plain numbers, for audit.json
    with pytest.raises(ValueError, match="old.json: no 'per_instance' list"):
        truth_from_report({"instances": 3}, "old.json")


def test_deleted_instances_found_among_the_possibly_missing(tmp_path):
    """Clean: image 1 squares 1 (10, 10) and 2 (40, 40); image 2 squares 3 (10, 10) and 4 (40, 10).
    The noisy copy lost 2 and 4. Missing predictions, by score: (40, 40) on image 1 finds 2 (IoU 1);
    (10, 40) on image 2 finds nothing; (42, 10) on image 2 finds 4 (IoU 18 x 20 / (800 - 360) =
    0.818). Down the list: found 1/1, 1/2, 2/3; at 50% precision all 2 deleted are found, at 70%
    only the first (the top 1: 1 of 2)."""
    clean = coco_dict([square_annotation(1, 1, 10, 10), square_annotation(2, 1, 40, 40),
                       square_annotation(3, 2, 10, 10), square_annotation(4, 2, 40, 10)],
                      num_images=2)
    noisy = dict(clean, annotations=[a for a in clean["annotations"] if a["id"] in (1, 3)])
    results = [square_result(1, 10, 10, 0.95), square_result(2, 10, 10, 0.95),
               square_result(1, 40, 40, 0.9), square_result(2, 10, 40, 0.8),
               square_result(2, 42, 10, 0.7)]
    audit = audit_of(tmp_path, noisy, results)
    assert [(m.image_id, m.pred_score) for m in audit.missing] == [(1, 0.9), (2, 0.8), (2, 0.7)]
    deleted = deleted_instances(clean, noisy)
    assert {image_id: len(masks) for image_id, masks in deleted.items()} == {1: 1, 2: 1}
    found = missing_found(audit, deleted)
    assert (found["deleted"], found["reported"], found["found"]) == (2, 3, 2)
    assert found["recall_at_precision"] == 1.0
    assert missing_found(audit, deleted, precision=0.7)["recall_at_precision"] == 0.5
    # (42, 10) no longer counts at IoU 0.85: only the first
    assert missing_found(audit, deleted, found_iou=0.85)["found"] == 1
    assert missing_found(audit, {})["recall_at_precision"] is None


def test_object_size_baseline_ranks_the_true_iou_by_the_annotations_area(tmp_path):
    """Squares of sides 10, 20 and 30 (areas 100, 400, 900) with true IoUs 0.9, 0.5, 0.7: area
    ranks (1, 2, 3) against IoU ranks (3, 1, 2), centred (-1, 0, 1) . (1, -1, 0) = -1 over
    sqrt(2 x 2): -0.5, whatever the model predicts (here nothing)."""
    gt = masks_coco([[square(64, 64, 2, 2, 10), square(64, 64, 2, 20, 20),
                      square(64, 64, 30, 30, 30)]])
    audit = audit_of(tmp_path, gt, [])
    report = {"per_instance": [{"id": i, "action": "kept", "mask_iou": iou}
                               for i, iou in ((1, 0.9), (2, 0.5), (3, 0.7))]}
    scores = score_against_truth(audit, truth_from_report(report))
    assert scores["area_spearman"] == pytest.approx(-0.5)
    assert [s.area for s in sorted(audit.annotations, key=lambda s: s.id)] == [100, 400, 900]


def random_blob(rng, height: int, width: int) -> np.ndarray:
    """An ellipse anywhere, possibly cut by the image's border, sometimes with specks."""
    mask = np.zeros((height, width), dtype=np.uint8)
    centre = (int(rng.integers(-10, width + 10)), int(rng.integers(-10, height + 10)))
    axes = (int(rng.integers(1, max(2, width // 3))), int(rng.integers(1, max(2, height // 3))))
    cv2.ellipse(mask, centre, axes, int(rng.integers(0, 180)), 0, 360, 1, -1)
    if rng.random() < 0.3:
        mask[rng.random((height, width)) < 0.02] = 1
    return mask.astype(bool)


@pytest.mark.parametrize("ratio", [0.02, 0.005, 0.05])
def test_contour_band_equals_faster_coco_eval_on_the_whole_image(ratio):
    """The band computed on the window around the mask is faster-coco-eval's band of the whole
    image, pixel for pixel (masks at the border, specks, empty ones), and the IoU of two bands
    is the IoU of faster-coco-eval's."""
    rng = np.random.default_rng(7)
    for trial in range(60):
        height, width = (int(v) for v in rng.integers(8, 400, size=2))
        masks = [random_blob(rng, height, width) for _ in range(2)]
        if trial == 0:
            masks[1][:] = False
        rles = [pycocotools_rle(mask) for mask in masks]
        band = contour_band(rles[0], ratio)
        whole = np.zeros((height, width), dtype=bool)
        rows, cols = band.pixels.shape
        whole[band.top : band.top + rows, band.left : band.left + cols] = band.pixels
        assert np.array_equal(whole, mask_utils.decode(rleToBoundary(rles[0], ratio)) > 0)
        expected = mask_iou(*(rleToBoundary(r, ratio) for r in rles))
        got = band_iou(*(contour_band(r, ratio) for r in rles))
        if math.isnan(expected):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(expected, abs=1e-12)


def test_band_iou_by_hand():
    # a 10 x 10 square in a 200 x 200 image, d = round(0.02 x 282.8) = 6 px: the band is the whole
    # square (it is 10 px wide); shifted by 5 columns, the two bands share 50 of 150 pixels
    a, b = np.zeros((200, 200), dtype=bool), np.zeros((200, 200), dtype=bool)
    a[50:60, 50:60] = True
    b[50:60, 55:65] = True
    bands = [contour_band(pycocotools_rle(m)) for m in (a, b)]
    assert (bands[0].top, bands[0].left, bands[0].pixels.sum()) == (43, 43, 100)
    assert band_iou(*bands) == pytest.approx(50 / 150)
    empty = contour_band(pycocotools_rle(np.zeros((200, 200), dtype=bool)))
    assert math.isnan(band_iou(empty, empty)) and band_iou(bands[0], empty) == 0
