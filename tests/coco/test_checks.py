"""The validator on small COCO datasets written to tmp_path: a clean one, then one defect at a time
(the exact line reported), several at once (all reported).
"""

import json

import pytest
from PIL import Image
from samples import small_dataset, write_dataset

from noisy_mask.coco.checks import (
    SKIPPABLE,
    format_problem,
    skippable_annotation_ids,
    validate_coco,
    validate_dataset,
)

J = "instances.json"


def lines(json_path, image_dir) -> list:
    return [format_problem(p) for p in validate_coco(str(json_path), str(image_dir))]


def test_clean_dataset_has_no_problem(tmp_path):
    json_path, image_dir = write_dataset(tmp_path, small_dataset())
    assert validate_coco(str(json_path), str(image_dir)) == []
    assert validate_dataset(json_path, image_dir).summary() == "ok: 3 images, 4 annotations"


def _set(path: str, value):
    """A mutation that sets data[k0][k1]...[kn] = value; path is 'annotations.0.bbox'."""

    def mutate(data, image_dir):
        *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
        for key in parents:
            data = data[key]
        if value is DELETE:
            del data[last]
        else:
            data[last] = value

    return mutate


DELETE = object()
A1 = f"{J}: annotation 1 (image 1)"
A2 = f"{J}: annotation 2 (image 2)"


def _truncate_a(data, image_dir):
    path = image_dir / "a.png"
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])


def _text_as_c(data, image_dir):
    (image_dir / "sub/c.png").write_text("not an image\n")


def _remove_b(data, image_dir):
    (image_dir / "b.png").unlink()


CASES = {
    # the json's structure
    "missing images": (_set("images", DELETE), [f"{J}: missing top-level key 'images'"]),
    "missing annotations": (
        _set("annotations", DELETE), [f"{J}: missing top-level key 'annotations'"],
    ),
    "missing categories": (
        _set("categories", DELETE), [f"{J}: missing top-level key 'categories'"],
    ),
    "images is an object": (
        _set("images", {"1": {}}), [f"{J}: 'images' is an object, expected a list"],
    ),
    "image entry not an object": (
        _set("images.0", "a.png"),
        [f"{J}: images[0] is a string, expected an object",
         f"{A1}: image_id 1 is not in 'images'"],
    ),
    # image 2 loses its id, so both annotations on it point at nothing
    "image id a string": (
        _set("images.1.id", "2"),
        [f'{J}: images[1]: \'id\' is "2" (a string), expected an int',
         f"{A2}: image_id 2 is not in 'images'",
         f"{J}: annotation 3 (image 2): image_id 2 is not in 'images'"],
    ),
    "width zero": (
        _set("images.0.width", 0),
        [f"{J}: image 1: 'width' is 0 (an int), expected a positive int"],
    ),
    "height a float": (
        _set("images.2.height", 32.0),
        [f"{J}: image 3: 'height' is 32.0 (a float), expected a positive int"],
    ),
    "file_name missing": (
        _set("images.2.file_name", DELETE), [f"{J}: image 3: 'file_name' is missing"],
    ),
    "category name missing": (
        _set("categories.1.name", DELETE), [f"{J}: category 2: 'name' is missing"],
    ),
    "annotation id a string": (
        _set("annotations.0.id", "1"),
        [f'{J}: image 1: annotations[0]: \'id\' is "1" (a string), expected an int'],
    ),
    "annotation image_id null": (
        _set("annotations.0.image_id", None),
        [f"{J}: annotation 1: 'image_id' is null, expected an int"],
    ),
    "bbox with 3 numbers": (
        _set("annotations.0.bbox", [5, 5, 10]),
        [f"{A1}: 'bbox' is [5, 5, 10] (a list), expected 4 numbers [x, y, width, height]"],
    ),
    "bbox with a string": (
        _set("annotations.0.bbox.2", "10"),
        [f'{A1}: \'bbox\' is [5, 5, "10", 10] (a list), expected 4 numbers [x, y, width, height]'],
    ),
    "bbox with NaN": (
        _set("annotations.0.bbox.0", float("nan")),
        [f"{A1}: 'bbox' [NaN, 5, 10, 10] has a non-finite value"],
    ),
    "iscrowd 2": (
        _set("annotations.0.iscrowd", 2), [f"{A1}: 'iscrowd' is 2 (an int), expected 0 or 1"],
    ),
    "area missing": (_set("annotations.0.area", DELETE), [f"{A1}: 'area' is missing"]),
    "segmentation missing": (
        _set("annotations.0.segmentation", DELETE), [f"{A1}: 'segmentation' is missing"],
    ),
    "segmentation a string": (
        _set("annotations.0.segmentation", "abc"),
        [f'{A1}: \'segmentation\' is "abc" (a string), '
         "expected a list of polygons or an RLE object"],
    ),
    # duplicates: the first occurrence keeps the id
    "duplicate image id": (
        _set("images.2.id", 1),
        [f"{J}: image 1: duplicate image id (images[0] and images[2])",
         f"{J}: annotation 4 (image 3): image_id 3 is not in 'images'"],
    ),
    "duplicate annotation id": (
        _set("annotations.3.id", 1),
        [f"{J}: annotation 1 (image 3): "
         "duplicate annotation id (annotations[0] and annotations[3])"],
    ),
    "duplicate category id": (
        _set("categories.1.id", 1),
        [f"{J}: category 1: duplicate category id (categories[0] and categories[1])",
         f"{A2}: category_id 2 is not in 'categories'",
         f"{J}: annotation 4 (image 3): category_id 2 is not in 'categories'"],
    ),
    # references
    "unknown image": (
        _set("annotations.0.image_id", 9),
        [f"{J}: annotation 1 (image 9): image_id 9 is not in 'images'"],
    ),
    "unknown category": (
        _set("annotations.0.category_id", 7), [f"{A1}: category_id 7 is not in 'categories'"],
    ),
    # polygons
    "polygon of 2 points": (
        _set("annotations.0.segmentation", [[5, 5, 15, 5]]),
        [f"{A1}: 'segmentation' polygon 0 has 2 points; a polygon needs at least 3 [skippable]"],
    ),
    "polygon with odd count": (
        _set("annotations.0.segmentation", [[5, 5, 15, 5, 15, 15, 5, 15], [5, 5, 15, 5, 15]]),
        [f"{A1}: 'segmentation' polygon 1 has 5 coordinates (odd count)"],
    ),
    "polygon with NaN": (
        _set("annotations.0.segmentation.0.2", float("nan")),
        [f"{A1}: 'segmentation' polygon 0 has NaN or infinite coordinates (1, the first at "
         "position 2: NaN)"],
    ),
    "polygon with infinity": (
        _set("annotations.0.segmentation.0.5", float("-inf")),
        [f"{A1}: 'segmentation' polygon 0 has NaN or infinite coordinates (1, the first at "
         "position 5: -Infinity)"],
    ),
    "polygon with a string": (
        _set("annotations.0.segmentation.0.3", "5"),
        [f"{A1}: 'segmentation' polygon 0 has non-numeric coordinates, the first at position 3: "
         '"5" (a string)'],
    ),
    # three points on the line y = x: the fan area |(10,10) x (20,20)| / 2 = 0
    "polygon of zero area": (
        _set("annotations.0.segmentation", [[0, 0, 10, 10, 20, 20]]),
        [f"{A1}: 'segmentation' polygon 0 has zero area (its points lie on one line) "
         "[skippable]"],
    ),
    "segmentation empty": (
        _set("annotations.0.segmentation", []), [f"{A1}: segmentation is empty [skippable]"],
    ),
    # boxes, in the 40 x 30 image 1
    "box past the right edge": (
        _set("annotations.0.bbox", [30, 5, 15, 10]),
        [f"{A1}: box [30, 5, 15, 10] lies outside the 40x30 image by more than the 1 px "
         f"tolerance: x + width = 45 > 40"],
    ),
    "box above and left": (
        _set("annotations.0.bbox", [-1.5, -2, 10, 10]),
        [f"{A1}: box [-1.5, -2, 10, 10] lies outside the 40x30 image by more than the 1 px "
         f"tolerance: x = -1.5 < 0, y = -2 < 0"],
    ),
    "box of zero width": (
        _set("annotations.0.bbox", [5, 5, 0, 10]),
        [f"{A1}: box [5, 5, 0, 10] has non-positive width or height [skippable]"],
    ),
    # RLEs, in the 40 x 50 image 2
    "RLE size swapped": (
        _set("annotations.1.segmentation.size", [50, 40]),
        [f"{A2}: 'segmentation' RLE 'size' [50, 40] does not match the image's "
         "[height, width] [40, 50]"],
    ),
    "RLE counts bad character": (
        _set("annotations.1.segmentation.counts", "ab~"),
        [f"{A2}: 'segmentation' RLE 'counts' string is malformed: character '~' at "
         "position 2 is outside '0'..'o'"],
    ),
    # 'P' = 48 + 32 has the continuation bit and nothing follows
    "RLE counts cut": (
        _set("annotations.1.segmentation.counts", "0P"),
        [f"{A2}: 'segmentation' RLE 'counts' string is malformed: the string ends in the "
         "middle of a run"],
    ),
    "RLE counts wrong sum": (
        _set("annotations.1.segmentation.counts", [1000, 10]),
        [f"{A2}: 'segmentation' RLE 'counts' sum to 1010 pixels, but size [40, 50] has 2000"],
    ),
    "RLE counts negative": (
        _set("annotations.1.segmentation.counts", [-5, 2005]),
        [f"{A2}: 'segmentation' RLE 'counts' have a negative run at position 0: -5"],
    ),
    "RLE empty": (
        _set("annotations.1.segmentation.counts", [2000]),
        [f"{A2}: 'segmentation' RLE mask is empty [skippable]"],
    ),
    # image files
    "image file missing": (_remove_b, ["b.png: image 2: not found in {image_dir}"]),
    "image truncated": (
        _truncate_a, ["a.png: image 1: cannot be decoded: OSError: image file is truncated"],
    ),
    "not an image": (_text_as_c, ["sub/c.png: image 3: is not an image file PIL can read"]),
    "image size differs": (
        _set("images.0.width", 41),
        ["a.png: image 1: is 40x30 (width x height), but the json says 41x30"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_defect_is_reported_exactly(tmp_path, case):
    mutate, expected = CASES[case]
    data = small_dataset()
    json_path, image_dir = write_dataset(tmp_path, data)
    mutate(data, image_dir)
    json_path.write_text(json.dumps(data))
    assert lines(json_path, image_dir) == [line.format(image_dir=image_dir) for line in expected]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes: "
         "line 1 column 2 (char 1)"),
        ("[1, 2]", "top level is a list, expected an object"),
        (b"\xff\xfe\x00", "not valid JSON: 'utf-16-le' codec can't decode byte 0x00 in "
         "position 2: truncated data"),
    ],
)  # fmt: skip
def test_not_a_json_object(tmp_path, text, expected):
    json_path, image_dir = write_dataset(tmp_path, text)
    assert lines(json_path, image_dir) == [f"{J}: {expected}"]


def test_box_within_tolerance_is_accepted(tmp_path):
    """40 x 30 image: x = -1 >= -1 and y + height = 31 <= 30 + 1 are inside the tolerance."""
    data = small_dataset()
    data["annotations"][0]["bbox"] = [-1, 0.5, 41, 30.5]
    json_path, image_dir = write_dataset(tmp_path, data)
    assert lines(json_path, image_dir) == []


def test_several_problems_in_one_pass(tmp_path):
    data = small_dataset()
    anns = data["annotations"]
    anns[0]["segmentation"] = [[5, 5, 15, 5, 15]]  # fatal
    anns[0]["bbox"] = [5, 5, -3, 10]  # skippable
    anns[1]["category_id"] = 5  # fatal
    anns[2]["segmentation"]["counts"] = [2000]  # skippable
    anns[3]["segmentation"] = [[1, 1, 2, 2, 3, 3, 4, 4]]  # skippable
    data["images"][2]["width"] = -32  # fatal (and no size check for c.png)
    json_path, image_dir = write_dataset(tmp_path, data)
    (image_dir / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # fatal: a bare PNG signature
    expected = [
        f"{J}: image 3: 'width' is -32 (an int), expected a positive int",
        f"{A1}: box [5, 5, -3, 10] has non-positive width or height [skippable]",
        f"{A1}: 'segmentation' polygon 0 has 5 coordinates (odd count)",
        f"{A2}: category_id 5 is not in 'categories'",
        f"{J}: annotation 3 (image 2): 'segmentation' RLE mask is empty [skippable]",
        f"{J}: annotation 4 (image 3): 'segmentation' polygon 0 has zero area (its points lie on "
        "one line) "
        "[skippable]",
        "b.png: image 2: is not an image file PIL can read",
    ]
    assert lines(json_path, image_dir) == expected
    # 7 problems: 4 fatal (width, odd count, category, b.png) and 3 skippable
    assert validate_dataset(json_path, image_dir).summary() == (
        "7 problems (4 errors, 3 skippable) in 3 images, 4 annotations"
    )


def test_skippable_annotation_ids_are_the_degenerate_ones(tmp_path):
    data = small_dataset()
    anns = data["annotations"]
    anns[0]["segmentation"] = [[5, 5, 15, 5, 15]]  # odd count: an error, not skippable
    anns[1]["segmentation"]["counts"] = [2000]  # empty RLE
    anns[3]["segmentation"] = []  # empty polygon list
    triangle = [5, 5, 15, 5, 15, 15]
    anns += [
        dict(anns[0], id=5, bbox=[5, 5, 10, 0], segmentation=[triangle]),  # zero height
        dict(anns[0], id=6, segmentation=[[5, 5, 5, 5, 5, 5]]),  # one point three times
        dict(anns[0], id=7, segmentation=[triangle, [1, 1, 2, 2]]),  # a 2-point second polygon
    ]
    json_path, image_dir = write_dataset(tmp_path, data)
    problems = validate_coco(str(json_path), str(image_dir))
    assert skippable_annotation_ids(problems) == {2, 4, 5, 6, 7}
    fatal = [p for p in problems if p.severity != SKIPPABLE]
    assert [(p.annotation_id, p.message) for p in fatal] == [
        (1, "'segmentation' polygon 0 has 5 coordinates (odd count)")
    ]


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
