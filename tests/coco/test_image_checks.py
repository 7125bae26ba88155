"""The checks of the image files a COCO json lists, through the validator on small datasets
written to tmp_path: missing, truncated, unreadable, of another size, EXIF rotation; none with
the json only."""

import json

import pytest
from coco_cases import check_case, lines, set_value
from PIL import Image
from samples import small_dataset, write_dataset

from noisy_mask.coco.checks import validate_coco


def _truncate_a(data, image_dir):
    path = image_dir / "a.png"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])


def _text_as_c(data, image_dir):
    (image_dir / "sub/c.png").write_text("not an image\n")


def _remove_b(data, image_dir):
    (image_dir / "b.png").unlink()


CASES = {
    "image file missing": (_remove_b, ["b.png: image 2: not found in {image_dir}"]),
    "image truncated": (
        _truncate_a, ["a.png: image 1: cannot be decoded: OSError: image file is truncated"],
    ),
    "not an image": (_text_as_c, ["sub/c.png: image 3: is not an image file PIL can read"]),
    "image size differs": (
        set_value("images.0.width", 41),
        ["a.png: image 1: is 40x30 (width x height), but the json says 41x30"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_defect_is_reported_exactly(tmp_path, case):
    check_case(tmp_path, *CASES[case])


def test_exif_rotation_is_applied_before_comparing_sizes(tmp_path):
    """A 40 x 30 PNG tagged orientation 6 (rotate 90) reads as 30 x 40, as detectron2 loads it."""
    data = small_dataset()
    json_path, image_dir = write_dataset(tmp_path, data)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 30)).save(image_dir / "a.png", exif=exif)
    assert lines(json_path, image_dir) == [
        "a.png: image 1: is 30x40 (width x height) after its EXIF rotation, but the json says 40x30"
    ]
    data["images"][0].update(width=30, height=40)
    data["annotations"][0]["bbox"] = [5, 5, 10, 10]
    json_path.write_text(json.dumps(data))
    assert lines(json_path, image_dir) == []


def test_json_only_skips_the_image_files(tmp_path):
    json_path, image_dir = write_dataset(tmp_path, small_dataset())
    (image_dir / "a.png").unlink()
    assert validate_coco(str(json_path), str(image_dir), check_images=False) == []
    assert validate_coco(str(json_path)) == []
    assert [p.file for p in validate_coco(str(json_path), str(image_dir))] == ["a.png"]
