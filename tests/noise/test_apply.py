"""The mask noise on whole COCO dicts and files: exact dilation and erosion of squares, holes,
counts of deleted and flipped instances, what `apply_to` changes, determinism, and bad input."""

import dataclasses
import json
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from samples import (
    SQUARE,
    coco_of,
    rle,
    shapes_coco,
    square,
    uncompressed_rle,
    write_json,
)

from noisy_mask.coco.io import AnnotationError
from noisy_mask.noise.apply import add_mask_noise, noise_file, round_half_up_count
from noisy_mask.commands.noise import EXIT_BAD_INPUT, main
from noisy_mask.noise.params import PRESETS, NoiseParams, make_params
from noisy_mask.noise.report import format_report, report_path


def rle_of(seg, size):
    """pycocotools' RLE of a segmentation of a size x size image (the reference of the areas)."""
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, size, size))
    return mask_utils.frPyObjects(seg, size, size) if isinstance(seg["counts"], list) else seg


def test_round_half_up_count():
    # 0.05 * 10 = 0.5 -> 1, 0.05 * 9 = 0.45 -> 0, 0.05 * 30 = 1.5 -> 2, 0.05 * 50 = 2.5 -> 3
    # (Python's round would give 0 and 2 for the two halves)
    assert [round_half_up_count(0.05, n) for n in (10, 9, 30, 50, 0)] == [1, 0, 2, 3, 0]


def kernel_only(kernel=3):
    return NoiseParams(kernel=kernel)


@pytest.mark.parametrize("kind", ["polygon", "rle", "rle_uncompressed"])
def test_dilation_and_erosion_of_squares_exact(kind):
    # 40 squares of 20 x 20 on 64 px images; kernel 3 stays 3 (floor) -> 22 x 22 or 18 x 18
    make = {
        "polygon": lambda: [SQUARE],
        "rle": lambda: rle(square(64, 64, 10, 10, 20).astype(np.uint8)),
    }
    make["rle_uncompressed"] = lambda: uncompressed_rle(square(64, 64, 10, 10, 20).astype(np.uint8))
    coco = coco_of([make[kind]() for _ in range(40)])
    noisy, report = add_mask_noise(coco, kernel_only(), seed=0)
    areas = [ann["area"] for ann in noisy["annotations"]]
    assert set(areas) == {484.0, 324.0}
    assert (
        areas.count(484.0) == report["dilated"] > 0 and areas.count(324.0) == report["eroded"] > 0
    )
    for ann in noisy["annotations"]:
        assert ann["bbox"] == (
            [9.0, 9.0, 22.0, 22.0] if ann["area"] == 484 else [11.0] * 2 + [18.0] * 2
        )
        assert mask_utils.area(rle_of(ann["segmentation"], 64)) == ann["area"]
        if kind == "polygon":
            # the traced 22 x 22 square: vertices a quarter pixel inside pixels 9 and 30
            xs = ann["segmentation"][0][0::2]
            assert len(ann["segmentation"]) == 1 and len(xs) == 4
            assert (min(xs), max(xs)) == ((9.25, 30.75) if ann["area"] == 484 else (11.25, 28.75))
        else:  # the same kind of RLE, of exactly the grown or shrunk square
            grown = ann["area"] == 484
            expected = square(64, 64, 9, 9, 22) if grown else square(64, 64, 11, 11, 18)
            written = (rle if kind == "rle" else uncompressed_rle)(expected.astype(np.uint8))
            assert ann["segmentation"] == written
    # IoU: 400 / 484 when dilated, 324 / 400 when eroded
    expected = (report["dilated"] * 400 / 484 + report["eroded"] * 324 / 400) / 40
    assert report["mask_iou"]["mean"] == pytest.approx(expected, abs=1e-6)
    assert report["mask_iou"]["p5"] == pytest.approx(324 / 400, abs=1e-6)
    assert report["mask_iou"]["p95"] == pytest.approx(400 / 484, abs=1e-6)


@pytest.mark.parametrize("writer", [rle, uncompressed_rle])
def test_rle_squares_at_the_image_corners_exact(writer):
    # 20 x 20 squares at the top-left and bottom-right corners of 64 px images, kernel 3: dilated
    # 21 x 21 (the border cuts the growth), eroded 19 x 19 (the border counts as foreground)
    corners = {0: (square(64, 64, 0, 0, 21), square(64, 64, 0, 0, 19)),
               44: (square(64, 64, 43, 43, 21), square(64, 64, 45, 45, 19))}  # fmt: skip
    coco = coco_of([writer(square(64, 64, c, c, 20).astype(np.uint8)) for c in (0, 44) * 10])
    noisy, report = add_mask_noise(coco, kernel_only(), seed=0)
    assert report["dilated"] > 0 and report["eroded"] > 0
    for k, ann in enumerate(noisy["annotations"]):
        dilated, eroded = corners[(0, 44)[k % 2]]
        expected = dilated if ann["area"] == 441 else eroded
        assert ann["area"] in (441.0, 361.0)
        assert ann["segmentation"] == writer(expected.astype(np.uint8))


def test_rle_hole_survives_dilation_and_erosion():
    # a 30 x 30 ring with a 10 x 10 hole (800 px):
    # dilated 32^2 - 8^2 = 960, eroded 28^2 - 12^2 = 640
    ring = (square(64, 64, 10, 10, 30) & ~square(64, 64, 20, 20, 10)).astype(np.uint8)
    coco = coco_of([rle(ring) for _ in range(12)])
    noisy, report = add_mask_noise(coco, kernel_only(), seed=3)
    assert {ann["area"] for ann in noisy["annotations"]} == {960.0, 640.0}
    # with outline noise too, the hole is still a hole (traced contours are combined by XOR)
    noisy, _ = add_mask_noise(coco, NoiseParams(simplify_tolerance=5, jitter_sigma=2), seed=3)
    for ann in noisy["annotations"]:
        mask = mask_utils.decode(ann["segmentation"])
        assert mask[25, 25] == 0 and mask[12, 25] == 1


def test_thin_instances_that_erosion_empties_keep_their_mask():
    # 2 px wide bars: cap 0.25 * sqrt(60) < 2 keeps kernel 3, whose erosion empties them
    bar = [10.0, 10.0, 40.0, 10.0, 40.0, 12.0, 10.0, 12.0]
    coco = coco_of([[bar] for _ in range(20)])
    noisy, report = add_mask_noise(coco, kernel_only(), seed=0)
    assert report["kept_original"] == report["eroded"] > 0
    kept = [ann for ann in noisy["annotations"] if ann["area"] == 60.0]
    assert len(kept) == report["eroded"] and all(ann["segmentation"] == [bar] for ann in kept)
    # dilated: 32 x 4
    assert {ann["area"] for ann in noisy["annotations"]} == {60.0, 128.0}


def test_all_models_off_and_zero_sigma_leave_masks_alone():
    coco = shapes_coco(num_images=2)
    noisy, report = add_mask_noise(coco, NoiseParams(jitter_sigma=0.0), seed=0)
    assert [a["segmentation"] for a in noisy["annotations"]] == [
        a["segmentation"] for a in coco["annotations"]
    ]
    assert report["mask_iou"]["mean"] == 1.0 and report["mask_iou"]["p5"] == 1.0


def test_simplification_alone_reduces_vertices_on_file():
    coco = shapes_coco(num_images=2)
    noisy, _ = add_mask_noise(coco, NoiseParams(simplify_tolerance=10), seed=0)
    before = sum(len(p) for a in coco["annotations"] for p in a["segmentation"])
    after = sum(len(p) for a in noisy["annotations"] for p in a["segmentation"])
    assert after < before
    for clean, new in zip(coco["annotations"], noisy["annotations"]):
        assert len(new["segmentation"][0]) <= len(clean["segmentation"][0])


def test_deletion_removes_the_rounded_fraction():
    coco = shapes_coco(num_images=5, per_image=5)  # N = 25
    noisy, report = add_mask_noise(coco, NoiseParams(delete_fraction=0.1), seed=0)
    # round_half_up(0.1 * 25 = 2.5) = 3
    assert report["deleted"] == 3 and len(report["deleted_ids"]) == 3
    kept_ids = [a["id"] for a in noisy["annotations"]]
    all_ids = [a["id"] for a in coco["annotations"]]
    assert kept_ids == [i for i in all_ids if i not in report["deleted_ids"]]
    assert set(report["deleted_ids"]) <= set(all_ids)
    assert noisy["images"] == coco["images"] and noisy["categories"] == coco["categories"]


def test_crowd_regions_are_written_as_they_are_and_not_counted():
    coco = shapes_coco(num_images=5, per_image=5)  # 25 annotations, 3 of them made crowd regions
    crowd_ids = [a["id"] for a in coco["annotations"][::10]]
    for ann in coco["annotations"][::10]:
        ann["iscrowd"] = 1
    params = NoiseParams(delete_fraction=0.1, flip_fraction=0.2, kernel=5, jitter_sigma=2.0)
    noisy, report = add_mask_noise(coco, params, seed=0)
    # N = 22 instances: round_half_up(2.2) = 2 deleted, round_half_up(4.4) = 4 flipped
    assert (report["instances"], report["crowd"], report["deleted"], report["flipped"]) == (
        22, 3, 2, 4)
    assert report["mask_iou"]["count"] == 20
    assert not set(crowd_ids) & {r["id"] for r in report["per_instance"]}
    clean = {a["id"]: a for a in coco["annotations"]}
    written = [a["id"] for a in noisy["annotations"]]
    assert written == [a["id"] for a in coco["annotations"] if a["id"] not in report["deleted_ids"]]
    assert all(noisy["annotations"][written.index(i)] == clean[i] for i in crowd_ids)
    assert format_report(report).startswith(
        "22 instances (and 3 crowd regions, as they are): 2 deleted, 4 flipped, ")
    # everything deleted: only the crowd regions are left
    noisy, report = add_mask_noise(coco, NoiseParams(delete_fraction=1.0), seed=0)
    assert [a["id"] for a in noisy["annotations"]] == crowd_ids and report["deleted"] == 22


def test_flips_change_the_rounded_fraction_to_another_category():
    coco = shapes_coco(num_images=5, per_image=8)  # N = 40, categories 1, 2, 3
    params = NoiseParams(flip_fraction=0.25, delete_fraction=0.05)
    noisy, report = add_mask_noise(coco, params, seed=4)
    clean = {a["id"]: a["category_id"] for a in coco["annotations"]}
    changed = {
        a["id"]: a["category_id"]
        for a in noisy["annotations"]
        if clean[a["id"]] != a["category_id"]
    }
    # round_half_up(0.25 * 40) = 10 flipped, round_half_up(0.05 * 40) = 2 deleted, disjoint
    assert report["flipped"] == len(changed) == 10 and report["deleted"] == 2
    assert set(changed.values()) <= {1, 2, 3}
    assert {int(k): v for k, v in report["flipped_ids"].items()} == {
        i: [clean[i], c] for i, c in changed.items()
    }
    assert not set(changed) & set(report["deleted_ids"])


def test_apply_to_splits_the_outline_noise_between_masks_and_boxes():
    coco = shapes_coco(num_images=4, per_image=5)  # N = 20
    for ann in coco[
        "annotations"
    ]:  # the input's own boxes and areas, told apart from the noisy ones
        ann["bbox"], ann["area"] = [1.0, 2.0, 3.0, 4.0], 5.0
    both, both_report = add_mask_noise(coco, PRESETS["mid"], seed=3)
    params = {
        apply_to: dataclasses.replace(PRESETS["mid"], apply_to=apply_to)
        for apply_to in ("masks", "boxes")
    }
    masks, masks_report = add_mask_noise(coco, params["masks"], seed=3)
    boxes, boxes_report = add_mask_noise(coco, params["boxes"], seed=3)
    clean = {a["id"]: a for a in coco["annotations"]}
    # Same draw: the same instances deleted and flipped in all three.
    for noisy, report in ((masks, masks_report), (boxes, boxes_report)):
        assert [(a["id"], a["category_id"]) for a in noisy["annotations"]] == [
            (a["id"], a["category_id"]) for a in both["annotations"]
        ]
        assert (
            report["deleted_ids"]
            == both_report["deleted_ids"]
            == [i for i in clean if i not in {a["id"] for a in both["annotations"]}]
        )
    for b, m, x in zip(both["annotations"], masks["annotations"], boxes["annotations"]):
        # masks: the noisy mask and its area, the input's bbox
        assert (m["segmentation"], m["area"]) == (b["segmentation"], b["area"])
        assert m["bbox"] == [1.0, 2.0, 3.0, 4.0]
        # boxes: the box of the noisy mask, the input's mask and area
        assert x["bbox"] == b["bbox"] != [1.0, 2.0, 3.0, 4.0]
        assert (x["segmentation"], x["area"]) == (clean[x["id"]]["segmentation"], 5.0)
    assert masks_report["mask_iou"] == both_report["mask_iou"]
    assert both_report["mask_iou"]["mean"] < 0.9 and boxes_report["mask_iou"]["mean"] == 1.0
    with pytest.raises(ValueError, match="apply_to must be one of both, masks, boxes, got 'mask'"):
        make_params("mid", apply_to="mask")


def test_presets_are_ordered_and_report_matches_a_reference():
    coco = shapes_coco()
    means = {}
    for preset in ("easy", "mid", "hard"):
        noisy, report = add_mask_noise(coco, PRESETS[preset], seed=0)
        means[preset] = report["mask_iou"]["mean"]
        # reference: pycocotools IoU between each written mask and its clean mask
        clean = {a["id"]: a["segmentation"] for a in coco["annotations"]}
        ious = [
            mask_utils.iou([rle_of(a["segmentation"], 192)], [rle_of(clean[a["id"]], 192)], [0])[
                0, 0
            ]
            for a in noisy["annotations"]
        ]
        assert report["mask_iou"]["mean"] == pytest.approx(np.mean(ious), abs=1e-6)
        assert report["mask_iou"]["p25"] == pytest.approx(np.percentile(ious, 25), abs=1e-6)
        for a in noisy["annotations"]:
            rle = rle_of(a["segmentation"], 192)
            assert a["area"] == mask_utils.area(rle)
            assert a["bbox"] == pytest.approx(mask_utils.toBbox(rle).tolist())
    assert 1.0 > means["easy"] > means["mid"] > means["hard"] > 0.3


def test_noise_file_is_byte_reproducible_untouched_input_and_any_worker_count(tmp_path):
    source = write_json(
        tmp_path / "in.json", shapes_coco(num_images=20, per_image=8)
    )  # 160 instances
    before, mtime = source.read_bytes(), source.stat().st_mtime_ns
    out = [tmp_path / f"out{i}.json" for i in range(4)]
    noise_file(source, out[0], "mid", seed=0)
    noise_file(source, out[1], "mid", seed=0, workers=2)  # 160 > 2 chunks of 64: two processes
    noise_file(source, out[2], "mid", seed=1)
    assert out[0].read_bytes() == out[1].read_bytes()
    assert out[0].read_bytes() != out[2].read_bytes()
    report = json.loads(report_path(out[0]).read_text())
    assert report_path(out[0]) == tmp_path / "out0.noise_report.json"
    assert report["seed"] == 0 and report["params"]["kernel"] == 5 and report["instances"] == 160
    assert source.read_bytes() == before and source.stat().st_mtime_ns == mtime
    noisy = json.loads(out[0].read_text())
    assert noisy["info"] == {"description": "test"}
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["in.json"]
        + [f"out{i}.json" for i in range(3)]
        + [f"out{i}.noise_report.json" for i in range(3)]
    )  # no temporary files left behind


def bad(mutate):
    def make():
        coco = coco_of([[SQUARE], [SQUARE], rle(square(64, 64, 10, 10, 20).astype(np.uint8))])
        mutate(coco)
        return coco

    return make


def set_seg(index, seg):
    return bad(lambda c: c["annotations"][index].update(segmentation=seg))


BAD_INPUTS = {
    "missing_key": (bad(lambda c: c.pop("categories")), "missing top-level key 'categories'"),
    "two_points": (
        set_seg(1, [[1, 2, 3, 4]]),
        "annotation 101 (image 2): 'segmentation' polygon 0 has 2 points",
    ),
    "odd_count": (
        set_seg(1, [SQUARE + [5.0]]),
        "annotation 101 (image 2): 'segmentation' polygon 0 has 9 coordinates",
    ),
    "nan": (
        set_seg(1, [SQUARE[:-1] + [float("nan")]]),
        "annotation 101 (image 2): 'segmentation' polygon 0 has NaN",
    ),
    "text": (
        set_seg(1, [SQUARE[:-1] + ["7"]]),
        "annotation 101 (image 2): 'segmentation' polygon 0 has non-numeric",
    ),
    "image": (
        bad(lambda c: c["annotations"][1].update(image_id=99)),
        "annotation 101 (image 99): image_id 99",
    ),
    "category": (
        bad(lambda c: c["annotations"][1].update(category_id=9)),
        "annotation 101 (image 2): category_id 9",
    ),
    "rle_size": (
        set_seg(2, rle(square(32, 32, 10, 10, 20).astype(np.uint8))),
        "annotation 102 (image 3): 'segmentation' RLE 'size'",
    ),
    "rle_text": (
        set_seg(2, {"size": [64, 64], "counts": "Y1~~"}),
        "annotation 102 (image 3): 'segmentation' RLE 'counts'",
    ),
    "rle_sum": (
        set_seg(2, {"size": [64, 64], "counts": [10, 20]}),
        "annotation 102 (image 3): 'segmentation' RLE 'counts' sum",
    ),
    "empty_list": (set_seg(1, []), "annotation 101 (image 2): segmentation is empty"),
    "negative_id": (
        bad(lambda c: c["annotations"][1].update(id=-1)),
        "annotation -1 (image 2): 'id' -1 is negative; the noise is seeded with ids >= 0",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, name, capsys):
    make, message = BAD_INPUTS[name]
    source = write_json(tmp_path / "in.json", make())
    with pytest.raises(AnnotationError) as error:
        noise_file(source, tmp_path / "out.json", "mid", seed=0)
    assert str(error.value).startswith(f"{source}: ") and message in str(error.value)
    assert main(["--input", str(source), "--output", str(tmp_path / "out.json")]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"error: {error.value}"
    assert sorted(os.listdir(tmp_path)) == ["in.json"]


def test_empty_masks_are_kept_as_they_are():
    # A zero-area polygon and an empty RLE are skippable for training but well formed: the noise
    # keeps them, counts them as empty_clean and leaves them out of the IoU statistics.
    empty_rle = {"size": [64, 64], "counts": [64 * 64]}
    coco = coco_of([[SQUARE], [[0, 0, 10, 10, 20, 20]], empty_rle])
    noisy, report = add_mask_noise(coco, NoiseParams(kernel=3), seed=0)
    assert [a["segmentation"] for a in noisy["annotations"][1:]] == [
        [[0, 0, 10, 10, 20, 20]],
        empty_rle,
    ]
    assert report["empty_clean"] == 2 and report["mask_iou"]["count"] == 1
