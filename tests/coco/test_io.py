"""Reading COCO files: the json's errors name the file; the first problem a tool cannot work with
is raised (read_coco, check_coco, segmentation_rle); an image is checked against its entry."""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from samples import SQUARE, rle, small_dataset, square

from noisy_mask.coco.io import (
    AnnotationError,
    annotation_rle,
    check_coco,
    coco_name,
    load_json,
    read_coco,
    read_image,
    segmentation_rle,
)


def test_load_json_reads_any_unicode_encoding_and_names_the_file(tmp_path):
    path = tmp_path / "in.json"
    path.write_bytes(json.dumps({"images": ["\u00e9"]}).encode("utf-16"))
    assert load_json(path) == {"images": ["\u00e9"]}
    path.write_text('{"images": [1,]}')
    with pytest.raises(AnnotationError) as error:
        load_json(path)
    assert (
        str(error.value) == f"{path}: not valid JSON: Expecting value: line 1 column 15 (char 14)"
    )
    with pytest.raises(FileNotFoundError) as missing:
        load_json(tmp_path / "nope.json")
    assert str(missing.value) == f"{tmp_path / 'nope.json'}: no such file"


def test_coco_name():
    assert coco_name("a/b.json", "clean annotations") == "a/b.json"
    assert coco_name({"images": []}, "clean annotations") == "clean annotations"


def test_read_image_is_rgb_and_checked_against_its_entry(tmp_path):
    pixels = np.zeros((30, 40, 3), dtype=np.uint8)
    pixels[..., 0] = 200  # red
    Image.fromarray(pixels).save(tmp_path / "a.png")
    entry = {"id": 1, "file_name": "a.png", "height": 30, "width": 40}
    np.testing.assert_array_equal(read_image(tmp_path, entry), pixels)
    with pytest.raises(ValueError, match=r"^image 1: .*a.png is 40x30, the annotations say 41x30$"):
        read_image(tmp_path, dict(entry, width=41))
    with pytest.raises(FileNotFoundError, match=r"^image 2: file .*b.png not found$"):
        read_image(tmp_path, dict(entry, id=2, file_name="b.png"))


# ---------------------------------------------------------------------------------------------
# A tool's use: the first problem that stops it.


def test_check_coco_raises_the_first_fatal_problem_of_a_key_the_tool_reads():
    data = small_dataset()
    data["annotations"][0]["bbox"] = [30, 5, 15, 10]  # fatal: past the right edge of image 1
    data["annotations"][1]["area"] = -1  # fatal
    del data["images"][0]["file_name"]  # fatal
    with pytest.raises(AnnotationError) as error:
        check_coco(data, "in.json")
    assert str(error.value) == "in.json: image 1: 'file_name' is missing"
    with pytest.raises(AnnotationError) as error:
        check_coco(data, "in.json", unused=("file_name",))
    assert str(error.value) == (
        "in.json: annotation 1 (image 1): box [30, 5, 15, 10] lies outside the 40x30 image by "
        "more than the 1 px tolerance: x + width = 45 > 40"
    )
    with pytest.raises(AnnotationError, match=r"annotation 2 \(image 2\): 'area' is -1"):
        check_coco(data, "in.json", unused=("file_name", "bbox"))
    assert check_coco(data, "in.json", unused=("file_name", "bbox", "area")) is data
    with pytest.raises(AnnotationError, match=r"^ground truth: top level is a list"):
        check_coco([data], "ground truth")


def test_check_coco_readable_masks_refuses_what_pycocotools_cannot_rasterize():
    data = small_dataset()
    # Skippable for training, but well-formed masks with no pixel: every tool takes them.
    data["annotations"][0]["segmentation"] = [[0, 0, 10, 10, 20, 20]]  # zero area
    data["annotations"][2]["segmentation"]["counts"] = [2000]  # an empty RLE
    check_coco(data, "in.json", readable_masks=True)
    # Skippable too, but pycocotools reads 4 coordinates as a box and cannot merge no polygon.
    for segmentation, message in (
        (
            [SQUARE, [1, 2, 3, 4]],
            "'segmentation' polygon 1 has 2 points; a polygon needs at least 3",
        ),
        ([], "segmentation is empty"),
    ):
        data["annotations"][3]["segmentation"] = segmentation
        check_coco(data, "in.json")
        with pytest.raises(AnnotationError) as error:
            check_coco(data, "in.json", readable_masks=True)
        assert str(error.value) == f"in.json: annotation 4 (image 3): {message}"


def test_read_coco_names_the_file(tmp_path):
    path = tmp_path / "in.json"
    path.write_text(json.dumps(small_dataset()))
    assert read_coco(path) == small_dataset()
    data = small_dataset()
    data["annotations"][1]["image_id"] = 7
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError) as error:
        read_coco(path)
    assert str(error.value) == f"{path}: annotation 2 (image 7): image_id 7 is not in 'images'"
    with pytest.raises(AnnotationError, match=r"^clean: annotation 2 \(image 7\)"):
        read_coco(data, "clean")
    path.write_text("{not json")
    with pytest.raises(AnnotationError, match=f"^{path}: not valid JSON: Expecting property name"):
        read_coco(path)
    with pytest.raises(FileNotFoundError, match=f"^{tmp_path / 'nope.json'}: no such file$"):
        read_coco(tmp_path / "nope.json")


def test_segmentation_rle_of_valid_skippable_and_malformed_segmentations():
    # The square polygon covers rows and columns 10..29: 400 px, the same as its mask's RLE.
    for segmentation in ([SQUARE], rle(square(64, 64, 10, 10, 20))):
        encoded = segmentation_rle(segmentation, 64, 64, "here")
        assert (mask_utils.decode(encoded) == square(64, 64, 10, 10, 20)).all()
    assert segmentation_rle([], 64, 64, "here") is None  # nothing to draw
    assert segmentation_rle([[0, 0, 10, 10, 20, 20]], 64, 64, "here") is None
    with pytest.raises(AnnotationError) as error:
        segmentation_rle({"size": [32, 64], "counts": [2048]}, 64, 64, "run.json: result #3")
    assert str(error.value) == (
        "run.json: result #3: 'segmentation' RLE 'size' [32, 64] does not match the image's "
        "[height, width] [64, 64]"
    )
    ann = {"id": 5, "image_id": 2, "segmentation": [[1, 2, 3]]}
    with pytest.raises(AnnotationError, match=r"^gt.json: annotation 5 \(image 2\): 'segm"):
        annotation_rle(ann, {"height": 64, "width": 64}, "gt.json")
