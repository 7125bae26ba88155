"""Where a grid's seed spread comes from: each run on both halves of the validation images."""
import json
import math
import os

import pytest

from noisy_mask.experiments.split_half import (
    HALVES_FILE, half_aps, run_half_aps, split_images, spread_lines, spread_sources)
from tests.samples import coco_dict, square_annotation, square_result, write_run_folder

# COCO AP when half of the instances are found, the found ones first: precision 1 at the 51
# recall points 0, 0.01, ..., 0.5 of 101, 0 beyond.
HALF_FOUND = 100 * 51 / 101


def four_images():
    """(ground truth, results): four 64 x 64 images with a 20 x 20 square each. Half A (images 1
    and 3): image 1 found exactly (score 0.9), image 3 shifted 4 px (score 0.8; box and mask IoU
    2/3, boundary IoU below 0.5). Half B (images 2 and 4): image 2 found exactly, image 4 not."""
    gt = coco_dict([square_annotation(i, i, 10, 10) for i in range(1, 5)], num_images=4)
    results = [square_result(1, 10, 10, 0.9), square_result(3, 14, 10, 0.8),
               square_result(2, 10, 10, 0.9)]
    return gt, results


def test_split_images_alternates_the_images_in_id_order():
    gt = coco_dict([square_annotation(10 + i, i, 10, 10) for i in (7, 3, 9, 1, 5)], num_images=0)
    gt["images"] = [{"id": i, "height": 64, "width": 64, "file_name": f"{i}.png"}
                    for i in (7, 3, 9, 1, 5)]
    first, second = split_images(gt)
    assert sorted(i["id"] for i in first["images"]) == [1, 5, 9]
    assert sorted(a["id"] for a in first["annotations"]) == [11, 15, 19]
    assert sorted(i["id"] for i in second["images"]) == [3, 7]
    assert sorted(a["id"] for a in second["annotations"]) == [13, 17]
    assert len(gt["images"]) == 5  # the input is not changed


def test_half_aps_match_the_hand_computed_ap():
    gt, results = four_images()
    first, second = half_aps(results, gt, "val.json")
    # half A: both found at IoU thresholds 0.5-0.65 (AP 100 there), only image 1 from 0.7 on
    shifted = (4 * 100 + 6 * HALF_FOUND) / 10
    assert first["bbox"] == pytest.approx(shifted)
    assert first["segm"] == pytest.approx(shifted)
    assert first["boundary"] == pytest.approx(HALF_FOUND)
    assert second == pytest.approx({"bbox": HALF_FOUND, "segm": HALF_FOUND,
                                    "boundary": HALF_FOUND})


def test_run_half_aps_are_kept_in_the_run_folder_until_the_detections_change(tmp_path):
    gt, results = four_images()
    val = tmp_path / "val.json"
    val.write_text(json.dumps(gt))
    run = write_run_folder(tmp_path / "run", detections=results)
    halves = run_half_aps(run, val, gt)
    assert halves == half_aps(results, gt, "val.json")
    cache = run / HALVES_FILE
    saved = json.loads(cache.read_text())
    saved["halves"][0]["bbox"] = -1.0  # a value no evaluation gives: read from the file
    cache.write_text(json.dumps(saved))
    assert run_half_aps(run, val, gt)[0]["bbox"] == -1.0
    detections = run / "inference" / "shapes_val" / "coco_instances_results.json"
    later = cache.stat().st_mtime_ns + 10**9
    os.utime(detections, ns=(later, later))  # the run evaluated again
    assert run_half_aps(run, val, gt) == halves


def record(level, loss, halves):
    """A grid record whose run has AP `halves` = (on half A, on half B) for every iou type."""
    first, second = halves
    return {"level": level, "loss": loss,
            "halves": [dict.fromkeys(("bbox", "segm", "boundary"), first),
                       dict.fromkeys(("bbox", "segm", "boundary"), second)]}


def test_spread_sources_pool_the_cells_with_seeds():
    records = [record("mid", "bce", h) for h in ((10, 12), (14, 12), (12, 12))]
    records += [record("mid", "dice", h) for h in ((20, 20), (22, 22))]
    records.append(record("clean", "bce", (50, 10)))  # one seed: no spread
    sources = spread_sources(records)
    # mid/bce: whole-set APs 11, 13, 12 (variance 1), differences -2, 2, 0 (variance 4, / 4: 1);
    # mid/dice: 20, 22 (variance 2), differences 0, 0 (0)
    for iou_type in ("bbox", "segm", "boundary"):
        assert sources[iou_type]["seed_std"] == pytest.approx(math.sqrt(1.5))
        assert sources[iou_type]["eval_std"] == pytest.approx(math.sqrt(0.5))
        assert sources[iou_type]["cells"] == 2
    lines = spread_lines(sources, 150)
    assert "both halves of the 150 validation images; 2 cells" in lines[0]
    assert lines[2] == ("- box AP: seed std 1.22, of which the validation images 0.71 (33% of "
                        "the variance): the models differ from seed to seed: more validation "
                        "images would not narrow it much")
    one = spread_sources([record("mid", "bce", (10, 12))])
    assert one["bbox"]["cells"] == 0 and math.isnan(one["bbox"]["seed_std"])
    assert spread_lines(one, 150) == ["Where the seed spread comes from: needs 2 or more seeds, "
                                      "and instances in both halves of the validation images."]
    # a half without annotations has no AP: that run is left out of its cell
    records.append(record("mid", "bce", (math.nan, 12)))
    assert spread_sources(records)["bbox"]["seed_std"] == pytest.approx(math.sqrt(1.5))
    records[-3:] = [record("mid", "dice", (math.nan, 20))]
    assert spread_sources(records)["bbox"]["cells"] == 1  # mid/dice has one known run left


def test_spread_lines_say_when_the_validation_images_make_most_of_it():
    records = [record("mid", "bce", h) for h in ((10, 12), (14, 12), (12, 12))]
    lines = spread_lines(spread_sources(records), 40)
    assert lines[3] == ("- mask AP: seed std 1.00, of which the validation images 1.00 (100% of "
                        "the variance): more validation images would narrow it")


def test_spread_lines_say_when_there_is_no_spread():
    records = [record("mid", "bce", (0.0, 0.0)) for _ in range(2)]  # e.g. boundary AP 0 on all
    lines = spread_lines(spread_sources(records), 4)
    assert lines[2:] == ["- box AP: no spread between seeds (seed std 0.00)",
                         "- mask AP: no spread between seeds (seed std 0.00)",
                         "- boundary AP: no spread between seeds (seed std 0.00)"]
