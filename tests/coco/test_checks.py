"""The validator on small COCO datasets written to tmp_path: a clean one, then one defect of the
json's structure, entries or references at a time (the exact line reported), several at once (all
reported). The defects of one box or segmentation are in test_annotation_checks, those of the
image files in test_image_checks.
"""

import pytest
from coco_cases import A1, A2, DELETE, J, check_case, lines, set_value
from samples import small_dataset, write_dataset

from noisy_mask.coco.checks import (
    SKIPPABLE,
    skippable_annotation_ids,
    validate_coco,
    validate_dataset,
)


def test_clean_dataset_has_no_problem(tmp_path):
    json_path, image_dir = write_dataset(tmp_path, small_dataset())
    assert validate_coco(str(json_path), str(image_dir)) == []
    assert validate_dataset(json_path, image_dir).summary() == "ok: 3 images, 4 annotations"


CASES = {
    # the json's structure
    "missing images": (set_value("images", DELETE), [f"{J}: missing top-level key 'images'"]),
    "missing annotations": (
        set_value("annotations", DELETE), [f"{J}: missing top-level key 'annotations'"],
    ),
    "missing categories": (
        set_value("categories", DELETE), [f"{J}: missing top-level key 'categories'"],
    ),
    "images is an object": (
        set_value("images", {"1": {}}), [f"{J}: 'images' is an object, expected a list"],
    ),
    "image entry not an object": (
        set_value("images.0", "a.png"),
        [f"{J}: images[0] is a string, expected an object",
         f"{A1}: image_id 1 is not in 'images'"],
    ),
    # image 2 loses its id, so both annotations on it point at nothing
    "image id a string": (
        set_value("images.1.id", "2"),
        [f'{J}: images[1]: \'id\' is "2" (a string), expected an int',
         f"{A2}: image_id 2 is not in 'images'",
         f"{J}: annotation 3 (image 2): image_id 2 is not in 'images'"],
    ),
    "width zero": (
        set_value("images.0.width", 0),
        [f"{J}: image 1: 'width' is 0 (an int), expected a positive int"],
    ),
    "height a float": (
        set_value("images.2.height", 32.0),
        [f"{J}: image 3: 'height' is 32.0 (a float), expected a positive int"],
    ),
    "file_name missing": (
        set_value("images.2.file_name", DELETE), [f"{J}: image 3: 'file_name' is missing"],
    ),
    "category name missing": (
        set_value("categories.1.name", DELETE), [f"{J}: category 2: 'name' is missing"],
    ),
    "annotation id a string": (
        set_value("annotations.0.id", "1"),
        [f'{J}: image 1: annotations[0]: \'id\' is "1" (a string), expected an int'],
    ),
    "annotation image_id null": (
        set_value("annotations.0.image_id", None),
        [f"{J}: annotation 1: 'image_id' is null, expected an int"],
    ),
    "iscrowd 2": (
        set_value("annotations.0.iscrowd", 2), [f"{A1}: 'iscrowd' is 2 (an int), expected 0 or 1"],
    ),
    "area missing": (set_value("annotations.0.area", DELETE), [f"{A1}: 'area' is missing"]),
    "segmentation missing": (
        set_value("annotations.0.segmentation", DELETE), [f"{A1}: 'segmentation' is missing"],
    ),
    # duplicates: the first occurrence keeps the id
    "duplicate image id": (
        set_value("images.2.id", 1),
        [f"{J}: image 1: duplicate image id (images[0] and images[2])",
         f"{J}: annotation 4 (image 3): image_id 3 is not in 'images'"],
    ),
    "duplicate annotation id": (
        set_value("annotations.3.id", 1),
        [f"{J}: annotation 1 (image 3): "
         "duplicate annotation id (annotations[0] and annotations[3])"],
    ),
    "duplicate category id": (
        set_value("categories.1.id", 1),
        [f"{J}: category 1: duplicate category id (categories[0] and categories[1])",
         f"{A2}: category_id 2 is not in 'categories'",
         f"{J}: annotation 4 (image 3): category_id 2 is not in 'categories'"],
    ),
    # references
    "unknown image": (
        set_value("annotations.0.image_id", 9),
        [f"{J}: annotation 1 (image 9): image_id 9 is not in 'images'"],
    ),
    "unknown category": (
        set_value("annotations.0.category_id", 7), [f"{A1}: category_id 7 is not in 'categories'"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_defect_is_reported_exactly(tmp_path, case):
    check_case(tmp_path, *CASES[case])


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
