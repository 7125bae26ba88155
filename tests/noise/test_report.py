"""The noise report: what was done to each instance (`per_instance`), and the class flips skipped on
a file of one category (the presets) or refused (an explicit --flip-fraction)."""

import json
import os

import numpy as np
import pytest
from samples import SQUARE, coco_of, rle, square, uncompressed_rle, write_json

from noisy_mask.coco.io import AnnotationError
from noisy_mask.noise.apply import add_mask_noise, noise_file
from noisy_mask.commands.noise import EXIT_BAD_INPUT, main
from noisy_mask.noise.matching import match_noise
from noisy_mask.noise.params import PRESETS, NoiseParams
from noisy_mask.noise.report import report_path, report_text

# A 2 px wide bar, 30 px long (60 px): eroding it by 3 x 3 empties it, dilating gives 32 x 4.
BAR = [10.0, 40.0, 40.0, 40.0, 40.0, 42.0, 10.0, 42.0]


def one_category_rle_file(tmp_path, size, compressed=True, n=20):
    """n squares of side size // 6 as RLEs on one size x (size + 37) image, all of category 7."""
    side = size // 6
    encode = rle if compressed else uncompressed_rle
    annotations = [
        {
            "id": 100 + i,
            "image_id": 1,
            "category_id": 7,
            "segmentation": encode(square(size, size + 37, 2 + i * (size // 25), 3 * i, side)),
            "area": 0.0,
            "bbox": [0, 0, 1, 1],
            "iscrowd": 0,
        }
        for i in range(n)
    ]
    coco = {
        "images": [{"id": 1, "height": size, "width": size + 37, "file_name": "1.png"}],
        "annotations": annotations,
        "categories": [{"id": 7, "name": "rod"}],
    }
    return write_json(tmp_path / f"one_category_{size}.json", coco)


# ---------------------------------------------------------------------------------------------
# One category: no flips.


@pytest.mark.parametrize("size, compressed", [(128, True), (1000, False)])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_skip_the_flips_on_one_category_and_say_so(
    tmp_path, capsys, preset, size, compressed
):
    source = one_category_rle_file(tmp_path, size, compressed)
    out = tmp_path / "out.json"
    assert (
        main(["--input", str(source), "--output", str(out), "--preset", preset, "--no-progress"])
        == 0
    )
    line = capsys.readouterr().out
    report = json.loads(report_path(out).read_text())
    # N = 20: round_half_up(0.05 * 20) = 1 deleted; 0 flipped although flip_fraction is 0.05
    assert report["params"]["flip_fraction"] == 0.05
    assert (report["instances"], report["deleted"], report["flipped"]) == (20, 1, 0)
    assert report["flips_skipped"] == "one category" and report["flipped_ids"] == {}
    assert line.startswith("20 instances: 1 deleted, 0 flipped (flips skipped: one category), ")
    noisy = json.loads(out.read_text())
    assert {a["category_id"] for a in noisy["annotations"]} == {7}
    assert all(isinstance(a["segmentation"]["counts"], str if compressed else list)
               for a in noisy["annotations"])  # fmt: skip
    actions = [r["action"] for r in report["per_instance"]]
    assert actions.count("deleted") == 1 and actions.count("kept") == 19


def test_an_explicit_flip_fraction_on_one_category_is_an_error_naming_file_and_option(
    tmp_path, capsys
):
    source = one_category_rle_file(tmp_path, 128)
    out = tmp_path / "out.json"
    with pytest.raises(AnnotationError) as error:
        noise_file(source, out, "mid", seed=0, flip_fraction=0.1)
    assert str(error.value) == (
        f"{source}: flip_fraction 0.1 (--flip-fraction) asks for class flips, but the file has "
        "one category (id 7): there is no other category to flip to. Set it to 0, or leave it "
        "unset (the presets skip the flips on a file of one category)"
    )
    args = ["--input", str(source), "--output", str(out), "--no-progress"]
    assert main(args + ["--flip-fraction", "0.1"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip() == f"error: {error.value}"
    assert sorted(os.listdir(tmp_path)) == [source.name]  # nothing written
    # 0 asked explicitly: nothing to skip
    report = noise_file(source, out, "mid", seed=0, flip_fraction=0)
    assert report["flipped"] == 0 and report["flips_skipped"] is None


def test_the_python_api_skips_flips_on_one_category_unless_they_are_required():
    coco = coco_of([[SQUARE]] * 4, categories=(3,))
    params = NoiseParams(flip_fraction=0.5)
    noisy, report = add_mask_noise(coco, params, seed=0)
    assert report["flips_skipped"] == "one category" and report["flipped"] == 0
    assert [a["category_id"] for a in noisy["annotations"]] == [3] * 4
    with pytest.raises(AnnotationError, match="^in.json: flip_fraction 0.5 .* one category"):
        add_mask_noise(coco, params, seed=0, name="in.json", require_flips=True)
    # two categories: flips as usual, round_half_up(0.5 * 4) = 2
    _, report = add_mask_noise(coco_of([[SQUARE]] * 4, categories=(3, 4)), params, seed=0)
    assert report["flips_skipped"] is None and report["flipped"] == 2


# ---------------------------------------------------------------------------------------------
# What was done to each instance.


def hand_made_coco():
    """Four instances of a 64 x 64 image, categories 1 and 2: id 3 an empty RLE (category 2),
    id 5 a 20 x 20 polygon square (1), id 9 the same square as an RLE (2), id 17 BAR (1)."""
    coco = coco_of(
        [rle(np.zeros((64, 64), dtype=np.uint8)), [SQUARE], rle(square(64, 64, 40, 10, 20)), [BAR]],
        categories=(2, 1, 2, 1),
    )
    coco["categories"] = [{"id": 1, "name": "c1"}, {"id": 2, "name": "c2"}]
    for ann, new_id in zip(coco["annotations"], (3, 5, 9, 17)):
        ann["id"], ann["image_id"] = new_id, 1
    coco["images"] = coco["images"][:1]
    return coco


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_instance_records_the_action_and_a_hand_computed_iou(seed):
    coco = hand_made_coco()
    clean = {a["id"]: a for a in coco["annotations"]}
    # N = 4: round_half_up(0.25 * 4) = 1 deleted, then 1 flipped among the 3 others
    params = NoiseParams(kernel=3, delete_fraction=0.25, flip_fraction=0.25)
    noisy, report = add_mask_noise(coco, params, seed=seed)
    records = report["per_instance"]
    assert [r["id"] for r in records] == [3, 5, 9, 17]  # by id
    assert [r["category_id"] for r in records] == [2, 1, 2, 1]
    assert all(r["image_id"] == 1 for r in records)
    by_action = {
        a: [r for r in records if r["action"] == a] for a in ("kept", "deleted", "flipped")
    }
    assert (len(by_action["deleted"]), len(by_action["flipped"]), len(by_action["kept"])) == (
        1,
        1,
        2,
    )

    (deleted,) = by_action["deleted"]
    assert report["deleted_ids"] == [deleted["id"]]
    assert deleted["id"] not in {a["id"] for a in noisy["annotations"]}
    assert (deleted["new_category_id"], deleted["mask_iou"], deleted["kept_original"]) == (
        None, None, False,
    )  # fmt: skip

    (flipped,) = by_action["flipped"]
    other = 3 - flipped["category_id"]  # 1 <-> 2: the only other category
    assert flipped["new_category_id"] == other
    assert report["flipped_ids"] == {str(flipped["id"]): [flipped["category_id"], other]}

    written = {a["id"]: a for a in noisy["annotations"]}
    for record in by_action["kept"] + by_action["flipped"]:
        ann = written[record["id"]]
        assert record["new_category_id"] == ann["category_id"]
        if record["id"] == 3:  # empty clean mask: IoU undefined
            assert record["mask_iou"] is None and ann["segmentation"] == clean[3]["segmentation"]
        elif record["id"] in (5, 9):
            # the 20 x 20 square dilated to 22 x 22 (IoU 400 / 484) or eroded to 18 x 18 (324 / 400)
            assert ann["area"] in (484.0, 324.0)
            expected = 400 / 484 if ann["area"] == 484.0 else 324 / 400
            assert record["mask_iou"] == pytest.approx(expected, abs=1e-6)
            assert record["kept_original"] is False
        else:
            # the bar dilated to 32 x 4 (IoU 60 / 128), or eroded to nothing: kept as it was
            assert ann["area"] in (128.0, 60.0)
            assert record["kept_original"] is (ann["area"] == 60.0)
            expected = 60 / 128 if ann["area"] == 128.0 else 1.0
            assert record["mask_iou"] == pytest.approx(expected, abs=1e-6)
    assert report["kept_original"] == sum(r["kept_original"] for r in records)


def test_per_instance_agrees_with_matching_the_written_file(tmp_path):
    # The report's actions and IoUs are what `match_noise` finds comparing the two files.
    coco = coco_of([[SQUARE], rle(square(64, 64, 30, 30, 25)), [BAR]] * 8)
    for image in coco["images"]:
        image["file_name"] = f"{image['id']}.png"  # the matching reads it
    source = write_json(tmp_path / "in.json", coco)
    out = tmp_path / "out.json"
    report = noise_file(source, out, "hard", seed=3, flip_fraction=0.2, delete_fraction=0.2)
    matches = match_noise(source, out)
    assert [r["id"] for r in report["per_instance"]] == [m.ann_id for m in matches]
    assert [r["action"] for r in report["per_instance"]] == [m.status for m in matches]
    assert [r["new_category_id"] for r in report["per_instance"]] == [
        m.new_category_id for m in matches
    ]
    for record, match in zip(report["per_instance"], matches):
        if match.iou is None:
            assert record["mask_iou"] is None
        else:
            assert record["mask_iou"] == pytest.approx(match.iou, abs=1e-6)
    # N = 24: round_half_up(0.2 * 24 = 4.8) = 5 deleted and 5 flipped
    actions = [r["action"] for r in report["per_instance"]]
    assert (actions.count("deleted"), actions.count("flipped")) == (5, 5)


def test_the_report_file_is_json_with_one_line_per_instance(tmp_path):
    source = write_json(tmp_path / "in.json", coco_of([[SQUARE]] * 6))
    out = tmp_path / "out.json"
    report = noise_file(source, out, "mid", seed=0)
    text = report_path(out).read_text()
    assert json.loads(text) == report
    lines = text.splitlines()
    start = lines.index('  "per_instance": [')
    assert [json.loads(line.strip().rstrip(",")) for line in lines[start + 1 : start + 7]] == (
        report["per_instance"]
    )
    assert lines[start + 7 :] == ["  ]", "}"]
    assert json.loads(report_text({"seed": 0, "per_instance": []})) == {
        "seed": 0,
        "per_instance": [],
    }
