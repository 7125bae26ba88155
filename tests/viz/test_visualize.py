"""The visualize command: the per-instance noise list against hand-made and noise_file-made
annotations, the noise cell's pixels, the choice of images, the detections read from results files
in train_net's format, and the PNGs (size, layout, same bytes twice) drawn from a 6-image shapes
dataset and its noisy copy."""

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest

from noisy_mask.data.shapes import generate_shapes_dataset
from noisy_mask.viz.drawing import hatch, hex_to_rgb, outline
from noisy_mask.viz.layout import GAP_X, MARGIN
from noisy_mask.noise.matching import (
    DELETED,
    FLIPPED,
    KEPT,
    InstanceNoise,
    choose_noise_images,
    match_noise,
)
from noisy_mask.noise.apply import AnnotationError, noise_file
from noisy_mask.evaluation.detections import (
    Detection,
    choose_by_spread,
    find_results_file,
    ground_truth_rles,
    image_ious,
    mean_best_iou,
    read_detections,
    read_mask_ap,
)
from noisy_mask.viz.pictures import (
    CLEAN_COLOUR,
    DASH,
    MAX_LINES,
    NOISY_COLOUR,
    draw_noise_grid,
    draw_predictions_grid,
    instance_text,
    main,
    noise_cell,
)


def square(height, width, top, left, side):
    mask = np.zeros((height, width), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def rle(mask):
    encoded = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    encoded["counts"] = encoded["counts"].decode("ascii")
    return encoded


def rle_bytes(mask):
    """pycocotools' own RLE (bytes counts), None for None."""
    return None if mask is None else mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))


def png_pixels(path):
    """(H, W, 3) RGB of a PNG written by matplotlib (RGBA, opaque)."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert pixels.shape[2] == 4 and np.all(pixels[..., 3] == 255)
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)


# ---------------------------------------------------------------------------------------------
# What the noise did.

SQUARE = [10, 10, 30, 10, 30, 30, 10, 30]  # pycocotools rasterizes it as rows/cols 10..29


def shifted(polygon, dx):
    return [v + dx if k % 2 == 0 else v for k, v in enumerate(polygon)]


def hand_made_pair():
    """Clean: three 20x20 squares on a 64x64 image. Noisy: 1 moved 5 px right (kept), 2 deleted,
    3 unchanged but flipped from star to circle."""
    clean = {
        "images": [{"id": 1, "height": 64, "width": 64, "file_name": "1.png"}],
        "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "star"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [SQUARE]},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [shifted(SQUARE, 30)]},
            {
                "id": 3,
                "image_id": 1,
                "category_id": 2,
                "segmentation": rle(square(64, 64, 40, 40, 20)),
            },
        ],
    }
    noisy = json.loads(json.dumps(clean))
    noisy["annotations"] = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [shifted(SQUARE, 5)]},
        {
            "id": 3,
            "image_id": 1,
            "category_id": 1,
            "segmentation": clean["annotations"][2]["segmentation"],
        },
    ]
    return clean, noisy


def test_match_noise_hand_made():
    clean, noisy = hand_made_pair()
    matches = match_noise(clean, noisy)
    # Square 1 moved by 5 px: overlap 15 x 20 = 300, union 400 + 400 - 300 = 500, IoU 0.6.
    assert [(m.ann_id, m.status) for m in matches] == [(1, KEPT), (2, DELETED), (3, FLIPPED)]
    assert matches[0].iou == pytest.approx(0.6, abs=1e-12)
    assert matches[1].iou is None and matches[1].new_category_id is None
    assert matches[2].iou == 1.0 and (matches[2].category_id, matches[2].new_category_id) == (2, 1)

    names = {1: "circle", 2: "star"}
    assert instance_text(matches[0], names) == "circle  IoU 0.60"
    assert instance_text(matches[1], names) == "circle  deleted"
    assert instance_text(matches[2], names) == "flip: star\u2192circle  IoU 1.00"


def test_noise_cell_marks_deleted_and_flipped():
    clean, noisy = hand_made_pair()
    matches = match_noise(clean, noisy)
    masks = {
        1: (square(64, 64, 10, 10, 20), square(64, 64, 10, 15, 20)),
        2: (square(64, 64, 10, 40, 20), None),
        3: (square(64, 64, 40, 40, 20), square(64, 64, 40, 40, 20)),
    }
    instances = [(m, rle_bytes(masks[m.ann_id][0]), rle_bytes(masks[m.ann_id][1])) for m in matches]
    image = np.full((64, 64, 3), 128, dtype=np.uint8)
    cell = noise_cell(image, clean["images"][0], instances, {1: "circle", 2: "star"}, cell=64)
    assert cell.lines == [
        "1. circle  IoU 0.60",
        "2. circle  deleted",
        "3. flip: star\u2192circle  IoU 1.00",
    ]
    assert cell.heading == "image 1 (1.png), mean IoU 0.80"  # (0.6 + 1.0) / 2
    # The deleted square gets a dashed clean outline and hatching in the clean colour, and no
    # noisy outline (its tag is drawn later, as text, not into the canvas).
    deleted = masks[2][0]
    is_clean = np.all(cell.image == hex_to_rgb(CLEAN_COLOUR), axis=2)
    np.testing.assert_array_equal(is_clean & deleted, outline(deleted, 3, DASH) | hatch(deleted))
    assert not np.any(np.all(cell.image == hex_to_rgb(NOISY_COLOUR), axis=2) & deleted)
    # Square 3 has the same clean and noisy mask: the noisy 2-px outline covers the outer two
    # pixels of the clean 3-px one, whose inner pixel stays visible.
    kept = masks[3][0]
    is_noisy = np.all(cell.image == hex_to_rgb(NOISY_COLOUR), axis=2)
    np.testing.assert_array_equal(is_noisy & kept, outline(kept, 2))
    np.testing.assert_array_equal(is_clean & kept, outline(kept, 3) & ~outline(kept, 2))
    assert [t[2] for t in cell.tags] == ["1", "2", "3"]


def test_match_noise_rejects_a_foreign_annotation(tmp_path):
    clean, noisy = hand_made_pair()
    noisy["annotations"][0]["id"] = 99
    path = tmp_path / "noisy.json"
    path.write_text(json.dumps(noisy))
    with pytest.raises(AnnotationError, match=r"noisy\.json: annotation 99 is not in"):
        match_noise(clean, path)
    clean, noisy = hand_made_pair()
    noisy["annotations"][1]["segmentation"] = [[1, 2, 3]]
    with pytest.raises(ValueError, match=r"annotation 3 \(image 1\): 'segmentation'.*odd"):
        match_noise(clean, noisy)


def test_choose_noise_images():
    def m(image_id, status):
        return InstanceNoise(image_id, 1.0, status, image_id, 1, 1)

    matches = [m(i, KEPT) for i in range(1, 9)] + [m(3, DELETED), m(7, FLIPPED)]
    chosen = choose_noise_images(matches, 4, seed=0)
    # 4 // 2 = 2 slots for the images with a mark: both 3 and 7; 2 more from the other six.
    assert len(chosen) == 4 and {3, 7} <= set(chosen) and chosen == sorted(chosen)
    assert choose_noise_images(matches, 4, seed=0) == chosen
    assert choose_noise_images(matches, 20, seed=5) == list(range(1, 9))


# ---------------------------------------------------------------------------------------------
# Files: a 6-image shapes dataset, its noisy copy, and results json in train_net's format.


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("vis")
    paths = generate_shapes_dataset(root / "shapes", num_train=0, num_val=6, image_size=96)
    noisy = root / "val_noisy.json"
    report = noise_file(paths["val_json"], noisy, preset="hard", seed=0)
    return {**paths, "root": root, "noisy": noisy, "report": report}


def test_match_noise_agrees_with_the_noise_report(shapes):
    matches = match_noise(shapes["val_json"], shapes["noisy"])
    report = shapes["report"]
    assert len(matches) == report["instances"]
    assert [m.ann_id for m in matches if m.status == DELETED] == report["deleted_ids"]
    flips = {
        str(m.ann_id): [m.category_id, m.new_category_id] for m in matches if m.status == FLIPPED
    }
    assert flips == report["flipped_ids"]
    assert report["deleted"] >= 1 and report["flipped"] >= 1  # both kinds are exercised
    # noise_file measures the same IoU (clean vs noisy mask) with its own code.
    ious = [m.iou for m in matches if m.iou is not None]
    assert np.mean(ious) == pytest.approx(report["mask_iou"]["mean"], abs=1e-6)


def test_noise_grid_png(shapes, tmp_path):
    args = (shapes["val_json"], shapes["noisy"], shapes["val_images"])
    first = draw_noise_grid(*args, tmp_path / "a" / "noise.png", num=6, seed=0)
    second = draw_noise_grid(*args, tmp_path / "b.png", num=6, seed=0)
    assert first.read_bytes() == second.read_bytes()
    assert sorted(p.name for p in first.parent.iterdir()) == ["noise.png"]  # no temporary left
    pixels = png_pixels(first)
    # 3 columns of 360 px: 16 + 3 * 360 + 2 * 16 + 16 = 1144 px wide; two rows of 360 px images.
    assert pixels.shape[1] == 2 * MARGIN + 3 * 360 + 2 * GAP_X == 1144
    assert pixels.shape[0] > 2 * 360
    # Both outline colours are in the picture.
    for colour in (CLEAN_COLOUR, NOISY_COLOUR):
        assert np.all(pixels == hex_to_rgb(colour), axis=2).sum() > 500
    third = draw_noise_grid(*args, tmp_path / "c.png", num=6, seed=0, image_ids=[2, 4], columns=2)
    assert png_pixels(third).shape[1] == 2 * MARGIN + 2 * 360 + GAP_X


def write_run(root, name, gt, transform, ap=None, dataset="shapes_val"):
    """A run folder as train_net.py leaves it: inference/<dataset>/coco_instances_results.json and
    eval_results.json. `transform(ann, mask)` -> [(category_id, mask, score), ...]."""
    folder = root / name / "inference" / dataset
    folder.mkdir(parents=True)
    images = {image["id"]: image for image in gt["images"]}
    results = []
    for ann in gt["annotations"]:
        image = images[ann["image_id"]]
        rles = mask_util.frPyObjects(ann["segmentation"], image["height"], image["width"])
        mask = mask_util.decode(mask_util.merge(rles)).astype(bool)
        for category_id, new_mask, score in transform(ann, mask):
            results.append(
                {
                    "image_id": ann["image_id"],
                    "category_id": category_id,
                    "segmentation": rle(new_mask),
                    "score": score,
                    "bbox": [0.0, 0.0, 1.0, 1.0],
                }
            )
    (folder / "coco_instances_results.json").write_text(json.dumps(results))
    if ap is not None:
        metrics = {"bbox": {"AP": ap + 1}, "segm": {"AP": ap}, "boundary": {"AP": ap - 1}}
        (root / name / "eval_results.json").write_text(json.dumps(metrics))
    return root / name


@pytest.fixture(scope="module")
def runs(shapes):
    """bce: the ground truth itself. dice: the same, but on image 3 every mask moved 6 px right,
    plus a wrong-class copy at score 0.3 (under the threshold) everywhere."""
    gt = json.loads(Path(shapes["val_json"]).read_text())
    root = shapes["root"] / "runs"

    def dice(ann, mask):
        moved = np.roll(mask, 6, axis=1) if ann["image_id"] == 3 else mask
        return [(ann["category_id"], moved, 0.8), (ann["category_id"] % 4 + 1, mask, 0.3)]

    bce = write_run(root, "bce", gt, lambda ann, mask: [(ann["category_id"], mask, 0.9)], 81.25)
    return {"gt": gt, "bce": bce, "dice": write_run(root, "dice", gt, dice, 64.5)}


def test_mean_best_iou_hand_made():
    gt_a, gt_b = square(64, 64, 10, 10, 20), square(64, 64, 40, 40, 10)
    to_rle = rle_bytes
    moved = Detection(1, 0.9, to_rle(square(64, 64, 10, 20, 20)))
    other_class = Detection(2, 0.9, to_rle(gt_a))
    # Moved 10 px: overlap 10 x 20 = 200, union 600, IoU 1/3; the exact copy has the wrong class;
    # gt_b has no detection of its class: 0. Mean (1/3 + 0) / 2 = 1/6.
    value = mean_best_iou([to_rle(gt_a), to_rle(gt_b)], [1, 1], [moved, other_class])
    assert value == pytest.approx(1 / 6, abs=1e-12)
    assert mean_best_iou([to_rle(gt_a)], [2], [moved, other_class]) == 1.0
    assert mean_best_iou([to_rle(gt_a)], [1], []) == 0.0
    assert math.isnan(mean_best_iou([], [], [moved]))


def test_choose_by_spread():
    per_run = {1: [0.9, 0.9], 2: [0.2, 0.8], 3: [0.5, 0.6], 4: [math.nan, 1.0], 5: [0.4, 0.3]}
    # spreads 0, 0.6, 0.1, left out, 0.1 (ties 3 and 5: lower mean 0.35 first)
    assert choose_by_spread(per_run, 3) == [2, 5, 3]
    # One run: every spread is 0, the lowest values first.
    assert choose_by_spread({1: [0.9], 2: [0.1], 3: [0.5]}, 2) == [2, 3]


def test_image_ious_pick_the_image_where_runs_differ(runs):
    gt = runs["gt"]
    detections = [
        read_detections(find_results_file(runs[name]), gt, 0.5) for name in ("bce", "dice")
    ]
    assert sum(len(v) for v in detections[1].values()) == len(gt["annotations"])  # 0.3 dropped
    ious = image_ious(ground_truth_rles(gt), detections)
    # Reference: numpy IoU of each ground-truth mask with itself moved by 6 px on image 3.
    images = {image["id"]: image for image in gt["images"]}
    expected = []
    for ann in gt["annotations"]:
        if ann["image_id"] == 3:
            image = images[3]
            rles = mask_util.frPyObjects(ann["segmentation"], image["height"], image["width"])
            mask = mask_util.decode(mask_util.merge(rles)).astype(bool)
            moved = np.roll(mask, 6, axis=1)
            expected.append((mask & moved).sum() / (mask | moved).sum())
    assert ious[3][0] == pytest.approx(1.0)
    assert ious[3][1] == pytest.approx(np.mean(expected), abs=1e-12)
    assert all(v == pytest.approx([1.0, 1.0]) for k, v in ious.items() if k != 3)
    assert choose_by_spread(ious, 1) == [3]


def test_predictions_grid_png(shapes, runs, tmp_path):
    args = ([runs["bce"], runs["dice"]], shapes["val_images"], shapes["val_json"])
    first = draw_predictions_grid(*args, tmp_path / "p1.png", labels=["BCE", "Dice"], num=3)
    second = draw_predictions_grid(*args, tmp_path / "p2.png", labels=["BCE", "Dice"], num=3)
    assert first.read_bytes() == second.read_bytes()
    pixels = png_pixels(first)
    # A ground-truth column and two runs of 288 px: 16 + 3 * 288 + 2 * 16 + 16 = 928 px.
    assert pixels.shape[1] == 2 * MARGIN + 3 * 288 + 2 * GAP_X == 928
    assert pixels.shape[0] > 3 * 288
    by_id = draw_predictions_grid(*args, tmp_path / "p3.png", image_ids=[1], score_threshold=0.2)
    assert png_pixels(by_id).shape[1] == 928


def test_read_mask_ap_and_results_file(tmp_path):
    run = tmp_path / "run"
    (run / "inference" / "a").mkdir(parents=True)
    assert read_mask_ap(run) is None
    (run / "eval_results.json").write_text(json.dumps({"segm": {"AP": 12.5}}))
    assert read_mask_ap(run) == 12.5
    (run / "eval_results.json").write_text(json.dumps({"a": {"segm": {"AP": 1}}, "b": {}}))
    assert read_mask_ap(run, "a") == 1.0 and read_mask_ap(run) is None  # which dataset?

    with pytest.raises(FileNotFoundError, match=r"'.*run' has no detections: missing coco_inst"):
        find_results_file(run)
    (run / "inference" / "a" / "coco_instances_results.json").write_text("[]")
    assert find_results_file(run) == run / "inference" / "a" / "coco_instances_results.json"
    (run / "inference" / "b").mkdir()
    (run / "inference" / "b" / "coco_instances_results.json").write_text("[]")
    with pytest.raises(ValueError, match="several datasets .a, b.; choose one with --dataset"):
        find_results_file(run)
    assert find_results_file(run, "b").parent.name == "b"


def test_bad_results_are_named(tmp_path, shapes):
    gt = json.loads(Path(shapes["val_json"]).read_text())
    path = tmp_path / "coco_instances_results.json"
    path.write_text(json.dumps([{"image_id": 1, "category_id": 1, "score": 0.9}]))
    with pytest.raises(ValueError, match=r"results\.json: result #0 has no 'segmentation'"):
        read_detections(path, gt, 0.5)
    path.write_text(
        json.dumps([{"image_id": 1, "category_id": 9, "score": 0.9, "segmentation": []}])
    )
    with pytest.raises(ValueError, match=r"result #0 \(image 1\): 'category_id' 9 is not among"):
        read_detections(path, gt, 0.5)


def test_cli(shapes, runs, tmp_path, capsys):
    out = tmp_path / "noise.png"
    code = main(
        [
            "noise",
            "--clean",
            shapes["val_json"],
            "--noisy",
            str(shapes["noisy"]),
            "--images",
            shapes["val_images"],
            "--output",
            str(out),
            "--num",
            "2",
        ]
    )
    assert code == 0 and out.is_file() and capsys.readouterr().out.strip() == str(out)

    # A run folder without coco_instances_results.json: the folder and the file are named,
    # exit status 1, and no picture is written.
    empty = tmp_path / "untrained"
    empty.mkdir()
    out = tmp_path / "pred.png"
    code = main(
        [
            "predictions",
            str(runs["bce"]),
            str(empty),
            "--images",
            shapes["val_images"],
            "--annotations",
            shapes["val_json"],
            "--output",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert f"run folder '{empty}'" in err and "missing coco_instances_results.json" in err

    code = main(
        [
            "noise",
            "--clean",
            str(tmp_path / "nope.json"),
            "--noisy",
            str(shapes["noisy"]),
            "--images",
            shapes["val_images"],
            "--output",
            str(out),
        ]
    )
    assert code == 1 and "nope.json: no such file" in capsys.readouterr().err


def test_noise_cell_sums_up_instances_beyond_the_line_limit():
    # 10 instances (4x4 squares along a diagonal), the last one deleted: lines 1..7 are listed,
    # the 8th line sums up instances 8, 9 and 10.
    image = {"id": 7, "height": 64, "width": 64, "file_name": "7.png"}
    instances = []
    for k in range(10):
        status = DELETED if k == 9 else KEPT
        match = InstanceNoise(k + 1, None if k == 9 else 1.0, status, 7, 1, None if k == 9 else 1)
        mask = rle_bytes(square(64, 64, 6 * k, 6 * k, 4))
        instances.append((match, mask, None if k == 9 else mask))
    cell = noise_cell(np.zeros((64, 64, 3), np.uint8), image, instances, {1: "circle"}, cell=64)
    assert len(cell.lines) == MAX_LINES == 8
    assert cell.lines[6] == "7. circle  IoU 1.00"
    assert cell.lines[7] == "\u2026 3 more (1 deleted, 0 flipped)"
    assert len(cell.tags) == 10
