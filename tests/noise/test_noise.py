"""Tests of the mask-noise tool: each model on hand-made masks, counts, determinism, files, CLI."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from noisy_mask.noise.apply import (
    EXIT_BAD_INPUT,
    PRESETS,
    AnnotationError,
    NoiseParams,
    add_mask_noise,
    main,
    make_params,
    noise_file,
    report_path,
    rle_string_counts,
    round_half_up_count,
)
from noisy_mask.noise.models import (
    instance_sizes,
    jitter_polygon,
    mask_to_polygons,
    morph_mask,
    rasterize_polygons,
    simplify_polygon,
)

REPO = Path(__file__).resolve().parents[2]
SQUARE = [10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]  # covers pixels 10..29: 20 x 20 = 400


def coco_of(segmentations, size=64, categories=(1, 2, 3)):
    """One image per segmentation, annotation ids 100, 101, ... (not the list positions)."""
    images = [{"id": i + 1, "height": size, "width": size} for i in range(len(segmentations))]
    annotations = [
        {
            "id": 100 + i,
            "image_id": i + 1,
            "category_id": categories[i % len(categories)],
            "segmentation": seg,
            "area": 0.0,
            "bbox": [0, 0, 0, 0],
            "iscrowd": 0,
        }
        for i, seg in enumerate(segmentations)
    ]
    return {
        "info": {"description": "test"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": f"c{c}"} for c in categories],
    }


def square_mask(size=64, lo=10, hi=30):
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[lo:hi, lo:hi] = 1
    return mask


def compressed_rle(mask):
    return {
        "size": list(mask.shape),
        "counts": mask_utils.encode(np.asfortranarray(mask))["counts"].decode(),
    }


def uncompressed_rle(mask):
    flat = mask.ravel(order="F")
    edges = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(edges).tolist()
    return {"size": list(mask.shape), "counts": counts if flat[0] == 0 else [0] + counts}


def shapes_coco(num_images=8, per_image=6, size=192, seed=0):
    """Circles and 5-point stars, 20 to 80 px across, on 192 x 192 images, 3 categories."""
    rng = np.random.default_rng(seed)
    segs, image_of = [], []
    for image in range(num_images):
        for _ in range(per_image):
            radius = rng.uniform(10, 40)
            center = rng.uniform(radius, size - radius, 2)
            if rng.random() < 0.5:
                angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
                radii = np.full(48, radius)
            else:
                angles = np.linspace(0, 2 * np.pi, 10, endpoint=False) + rng.uniform(0, 1)
                radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
            xy = center + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
            segs.append([np.round(xy, 2).reshape(-1).tolist()])
            image_of.append(image + 1)
    coco = coco_of(segs, size)
    coco["images"] = coco["images"][:num_images]
    for ann, image_id in zip(coco["annotations"], image_of):
        ann["image_id"] = image_id
    return coco


def write(path, obj):
    path.write_text(json.dumps(obj))
    return path


def rle_of(seg, size):
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, size, size))
    return mask_utils.frPyObjects(seg, size, size) if isinstance(seg["counts"], list) else seg


# ---------------------------------------------------------------------------------------------
# Sizes and counts.


def test_round_half_up_count():
    # 0.05 * 10 = 0.5 -> 1, 0.05 * 9 = 0.45 -> 0, 0.05 * 30 = 1.5 -> 2, 0.05 * 50 = 2.5 -> 3
    # (Python's round would give 0 and 2 for the two halves)
    assert [round_half_up_count(0.05, n) for n in (10, 9, 30, 50, 0)] == [1, 0, 2, 3, 0]


def test_instance_sizes_scale_floor_and_cap():
    big = 1e6  # area with a cap (0.25 * 1000 = 250 px) that never binds
    # 640 px: sizes unchanged; radius of 5 = max(1, round_half_up((5 - 1) / 2)) = 2 -> 5
    assert instance_sizes(10, 3, 5, 640, big) == (10.0, 3.0, 5, False)
    # 1280 px, s = 2: 20, 6; kernel radius round_half_up((10 - 1) / 2 = 4.5) = 5 -> 11
    assert instance_sizes(10, 3, 5, 1280, big) == (20.0, 6.0, 11, False)
    # 192 px, s = 0.3: 15 * 0.3 = 4.5, 4 * 0.3 = 1.2; radius round_half_up((2.1 - 1) / 2) = 1 -> 3
    sizes = instance_sizes(15, 4, 7, 192, big)
    assert (sizes.tolerance, sizes.sigma, sizes.kernel) == (
        pytest.approx(4.5),
        pytest.approx(1.2),
        3,
    )
    # 64 px, s = 0.1: 5 * 0.1 = 0.5 and 2 * 0.1 = 0.2 -> floor 0.5; kernel 3 * 0.1 -> floor 3
    sizes = instance_sizes(5, 2, 3, 64, big)
    assert (sizes.tolerance, sizes.sigma, sizes.kernel) == (pytest.approx(0.5), 0.5, 3)
    # a 20 x 20 instance: cap 0.25 * 20 = 5 px; radius 3 <= 5 stays
    assert instance_sizes(10, 3, 7, 640, 400) == (5.0, 3.0, 7, True)
    # a 10 x 10 instance: cap 2.5 px, kernel radius <= floor(2.5) = 2 -> 5
    assert instance_sizes(10, 3, 7, 640, 100) == (2.5, 2.5, 5, True)
    # a 2 x 2 instance: cap 0.5 px, kernel radius <= max(1, 0) -> 3, sigma 0.5
    assert instance_sizes(10, 3, 7, 640, 4) == (0.5, 0.5, 3, True)
    # switched off stays off
    assert instance_sizes(0, 0, 0, 640, big) == (0.0, 0.0, 0, False)


def test_params_check_and_overrides():
    assert make_params("hard", kernel=0, jitter_sigma=None) == NoiseParams(15.0, 4.0, 0, 0.05, 0.05)
    for bad in ({"kernel": 4}, {"kernel": 1}, {"delete_fraction": 1.5}, {"jitter_sigma": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            make_params("mid", **bad)
    with pytest.raises(ValueError, match="valid presets: easy, mid, hard"):
        make_params("medium")


# ---------------------------------------------------------------------------------------------
# The models on hand-made masks.


@pytest.mark.parametrize("kernel,grown,shrunk", [(3, 22 * 22, 18 * 18), (5, 24 * 24, 16 * 16)])
def test_morph_mask_moves_edges_by_half_the_kernel(kernel, grown, shrunk):
    # a k x k square moves each edge of the 20 x 20 square by (k - 1) / 2 px
    mask = square_mask()
    assert morph_mask(mask, kernel, grow=True).sum() == grown
    assert morph_mask(mask, kernel, grow=False).sum() == shrunk
    np.testing.assert_array_equal(morph_mask(mask, 3, True), square_mask(lo=9, hi=31))


def test_trace_rasterizes_back_to_the_same_mask():
    # pixel (row 3, column 2) is traced to a square a quarter pixel inside it:
    # x in 2.25..2.75, y in 3.25..3.75
    pixel = np.zeros((6, 6), dtype=np.uint8)
    pixel[3, 2] = 1
    (polygon,) = mask_to_polygons(pixel)
    assert sorted(map(tuple, polygon)) == [(2.25, 3.25), (2.25, 3.75), (2.75, 3.25), (2.75, 3.75)]
    # random masks, holes included: pycocotools gives back exactly the mask
    rng = np.random.default_rng(0)
    for _ in range(30):
        mask = (rng.random((25, 31)) < 0.5).astype(np.uint8)
        polygons = mask_to_polygons(mask, holes=True)
        np.testing.assert_array_equal(rasterize_polygons(polygons, 25, 31, even_odd=True), mask)


def test_simplify_reduces_vertices():
    # a square with 10 collinear points per side is 4 vertices to Douglas-Peucker
    t = np.linspace(0, 1, 10, endpoint=False)
    side = [
        np.stack([10 + 20 * t, np.full(10, 10.0)], 1),
        np.stack([np.full(10, 30.0), 10 + 20 * t], 1),
    ]
    side += [
        np.stack([30 - 20 * t, np.full(10, 30.0)], 1),
        np.stack([np.full(10, 10.0), 30 - 20 * t], 1),
    ]
    square = np.concatenate(side)
    simplified = simplify_polygon(square, 0.5)
    assert len(square) == 40 and len(simplified) == 4
    assert sorted(map(tuple, simplified)) == [(10, 10), (10, 30), (30, 10), (30, 30)]
    # a 64-gon of radius 30: a 2 px tolerance keeps between 4 and 63 of its vertices,
    # and each kept vertex is one of the input's
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    circle = 40 + 30 * np.stack([np.cos(angles), np.sin(angles)], 1)
    simplified = simplify_polygon(circle, 2.0)
    assert 4 <= len(simplified) < 64
    assert (
        np.abs(simplified[:, None, :] - circle[None].astype(np.float32)).sum(2).min(1).max() < 1e-4
    )


def test_jitter_sigma_zero_is_identity_and_sigma_sets_the_spread():
    polygon = np.random.default_rng(0).uniform(0, 100, (2000, 2))
    np.testing.assert_array_equal(jitter_polygon(polygon, 0.0, np.random.default_rng(1)), polygon)
    moved = jitter_polygon(polygon, 2.0, np.random.default_rng(1)) - polygon
    # 4000 N(0, 2^2) draws: sample std within 5% of 2 (its standard error is 2 / sqrt(8000))
    assert np.std(moved) == pytest.approx(2.0, rel=0.05)
    assert abs(np.mean(moved)) < 0.1


# ---------------------------------------------------------------------------------------------
# Whole files.


def kernel_only(kernel=3):
    return NoiseParams(kernel=kernel)


@pytest.mark.parametrize("kind", ["polygon", "rle", "rle_uncompressed"])
def test_dilation_and_erosion_of_squares_exact(kind):
    # 40 squares of 20 x 20 on 64 px images; kernel 3 stays 3 (floor) -> 22 x 22 or 18 x 18
    make = {"polygon": lambda: [SQUARE], "rle": lambda: compressed_rle(square_mask())}
    make["rle_uncompressed"] = lambda: uncompressed_rle(square_mask())
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
        else:
            counts = ann["segmentation"]["counts"]
            assert isinstance(counts, str if kind == "rle" else list)
    # IoU: 400 / 484 when dilated, 324 / 400 when eroded
    expected = (report["dilated"] * 400 / 484 + report["eroded"] * 324 / 400) / 40
    assert report["mask_iou"]["mean"] == pytest.approx(expected, abs=1e-6)
    assert report["mask_iou"]["p5"] == pytest.approx(324 / 400, abs=1e-6)
    assert report["mask_iou"]["p95"] == pytest.approx(400 / 484, abs=1e-6)


def test_rle_hole_survives_dilation_and_erosion():
    # a 30 x 30 ring with a 10 x 10 hole (800 px):
    # dilated 32^2 - 8^2 = 960, eroded 28^2 - 12^2 = 640
    ring = square_mask(lo=10, hi=40) - square_mask(lo=20, hi=30)
    coco = coco_of([compressed_rle(ring) for _ in range(12)])
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
    for ann in coco["annotations"]:  # the input's own boxes and areas, told apart from the noisy ones
        ann["bbox"], ann["area"] = [1.0, 2.0, 3.0, 4.0], 5.0
    both, both_report = add_mask_noise(coco, PRESETS["mid"], seed=3)
    params = {apply_to: dataclasses.replace(PRESETS["mid"], apply_to=apply_to)
              for apply_to in ("masks", "boxes")}
    masks, masks_report = add_mask_noise(coco, params["masks"], seed=3)
    boxes, boxes_report = add_mask_noise(coco, params["boxes"], seed=3)
    clean = {a["id"]: a for a in coco["annotations"]}
    # Same draw: the same instances deleted and flipped in all three.
    for noisy, report in ((masks, masks_report), (boxes, boxes_report)):
        assert [(a["id"], a["category_id"]) for a in noisy["annotations"]] == [
            (a["id"], a["category_id"]) for a in both["annotations"]]
        assert report["deleted_ids"] == both_report["deleted_ids"] == [
            i for i in clean if i not in {a["id"] for a in both["annotations"]}]
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
    source = write(tmp_path / "in.json", shapes_coco(num_images=20, per_image=8))  # 160 instances
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
        coco = coco_of([[SQUARE], [SQUARE], compressed_rle(square_mask())])
        mutate(coco)
        return coco

    return make


def set_seg(index, seg):
    return bad(lambda c: c["annotations"][index].update(segmentation=seg))


BAD_INPUTS = {
    "missing_key": (bad(lambda c: c.pop("categories")), "missing top-level key 'categories'"),
    "two_points": (
        set_seg(1, [[1, 2, 3, 4]]),
        "annotation 101: 'segmentation' polygon 0 has 2 points",
    ),
    "odd_count": (
        set_seg(1, [SQUARE + [5.0]]),
        "annotation 101: 'segmentation' polygon 0 has 9 coordinates",
    ),
    "nan": (
        set_seg(1, [SQUARE[:-1] + [float("nan")]]),
        "annotation 101: 'segmentation' polygon 0 has NaN",
    ),
    "text": (
        set_seg(1, [SQUARE[:-1] + ["7"]]),
        "annotation 101: 'segmentation' polygon 0 has non-numeric",
    ),
    "image": (
        bad(lambda c: c["annotations"][1].update(image_id=99)),
        "annotation 101: 'image_id' 99",
    ),
    "category": (
        bad(lambda c: c["annotations"][1].update(category_id=9)),
        "annotation 101: 'category_id' 9",
    ),
    "rle_size": (
        set_seg(2, compressed_rle(square_mask(size=32))),
        "annotation 102: 'segmentation' RLE 'size'",
    ),
    "rle_text": (
        set_seg(2, {"size": [64, 64], "counts": "Y1~~"}),
        "annotation 102: 'segmentation' RLE 'counts'",
    ),
    "rle_sum": (
        set_seg(2, {"size": [64, 64], "counts": [10, 20]}),
        "annotation 102: 'segmentation' RLE 'counts' sum",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, name, capsys):
    make, message = BAD_INPUTS[name]
    source = write(tmp_path / "in.json", make())
    with pytest.raises(AnnotationError) as error:
        noise_file(source, tmp_path / "out.json", "mid", seed=0)
    assert str(error.value).startswith(f"{source}: ") and message in str(error.value)
    assert main(["--input", str(source), "--output", str(tmp_path / "out.json")]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"error: {error.value}"
    assert sorted(os.listdir(tmp_path)) == ["in.json"]


def test_not_json_and_overwriting_the_input_are_refused(tmp_path, capsys):
    source = tmp_path / "in.json"
    source.write_text("{not json")
    assert main(["--input", str(source), "--output", str(tmp_path / "out.json")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {source}: not valid JSON")
    write(source, coco_of([[SQUARE]]))
    assert main(["--input", str(source), "--output", str(source)]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert (
        main(["--input", str(source), "--output", str(tmp_path / "o.json"), "--kernel", "4"]) == 2
    )
    assert "kernel must be 0 (off) or an odd integer >= 3, got 4" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["in.json"]


def test_cli_writes_output_report_and_one_line(tmp_path, capsys):
    source = write(tmp_path / "in.json", shapes_coco(num_images=3))
    args = ["--input", str(source), "--output", str(tmp_path / "out.json"), "--preset", "hard"]
    assert (
        main(args + ["--seed", "5", "--kernel", "0", "--flip-fraction", "0.5", "--no-progress"])
        == 0
    )
    line = capsys.readouterr().out.strip()
    report = json.loads((tmp_path / "out.noise_report.json").read_text())
    # N = 18: round_half_up(0.05 * 18 = 0.9) = 1 deleted, round_half_up(0.5 * 18) = 9 flipped
    assert (report["instances"], report["deleted"], report["flipped"]) == (18, 1, 9)
    assert report["params"] == {
        "simplify_tolerance": 15.0,
        "jitter_sigma": 4.0,
        "kernel": 0,
        "delete_fraction": 0.05,
        "flip_fraction": 0.5,
        "apply_to": "both",
    }
    assert report["dilated"] == report["eroded"] == 0
    assert line.startswith("18 instances: 1 deleted, 9 flipped") and line.endswith("out.json")
    assert "\n" not in line and f"mean {report['mask_iou']['mean']:.3f}" in line


def test_help_says_how_sizes_scale(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "longer image side / 640" in text and "keeps its original mask" in text


def test_module_entry_point_exit_code(tmp_path):
    coco = coco_of([[SQUARE], [[1, 2, 3, 4]]])
    source = write(tmp_path / "in.json", coco)
    command = [sys.executable, "-m", "noisy_mask.noise", "--input", str(source)]
    result = subprocess.run(
        command + ["--output", str(tmp_path / "out.json")], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {source}: annotation 101: 'segmentation' polygon 0 has 2 points; "
        "a polygon needs at least 3"
    )
    assert sorted(os.listdir(tmp_path)) == ["in.json"]


def test_rle_string_counts_matches_pycocotools():
    mask = square_mask(size=16, lo=3, hi=9)
    counts = rle_string_counts(compressed_rle(mask)["counts"])
    assert counts == uncompressed_rle(mask)["counts"] and sum(counts) == 256
