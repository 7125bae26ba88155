"""The checks of one box or segmentation (polygons, RLE), through the validator on small COCO
datasets written to tmp_path: one defect at a time, the exact line reported."""

import pytest
from coco_cases import A1, A2, check_case, lines, set_value
from samples import small_dataset, write_dataset

CASES = {
    # boxes
    "bbox with 3 numbers": (
        set_value("annotations.0.bbox", [5, 5, 10]),
        [f"{A1}: 'bbox' is [5, 5, 10] (a list), expected 4 numbers [x, y, width, height]"],
    ),
    "bbox with a string": (
        set_value("annotations.0.bbox.2", "10"),
        [f'{A1}: \'bbox\' is [5, 5, "10", 10] (a list), expected 4 numbers [x, y, width, height]'],
    ),
    "bbox with NaN": (
        set_value("annotations.0.bbox.0", float("nan")),
        [f"{A1}: 'bbox' [NaN, 5, 10, 10] has a non-finite value"],
    ),
    # segmentations
    "segmentation a string": (
        set_value("annotations.0.segmentation", "abc"),
        [f'{A1}: \'segmentation\' is "abc" (a string), '
         "expected a list of polygons or an RLE object"],
    ),
    # polygons
    "polygon of 2 points": (
        set_value("annotations.0.segmentation", [[5, 5, 15, 5]]),
        [f"{A1}: 'segmentation' polygon 0 has 2 points; a polygon needs at least 3 [skippable]"],
    ),
    "polygon with odd count": (
        set_value("annotations.0.segmentation", [[5, 5, 15, 5, 15, 15, 5, 15], [5, 5, 15, 5, 15]]),
        [f"{A1}: 'segmentation' polygon 1 has 5 coordinates (odd count)"],
    ),
    "polygon with NaN": (
        set_value("annotations.0.segmentation.0.2", float("nan")),
        [f"{A1}: 'segmentation' polygon 0 has NaN or infinite coordinates (1, the first at "
         "position 2: NaN)"],
    ),
    "polygon with infinity": (
        set_value("annotations.0.segmentation.0.5", float("-inf")),
        [f"{A1}: 'segmentation' polygon 0 has NaN or infinite coordinates (1, the first at "
         "position 5: -Infinity)"],
    ),
    "polygon with a string": (
        set_value("annotations.0.segmentation.0.3", "5"),
        [f"{A1}: 'segmentation' polygon 0 has non-numeric coordinates, the first at position 3: "
         '"5" (a string)'],
    ),
    # three points on the line y = x: the fan area |(10,10) x (20,20)| / 2 = 0
    "polygon of zero area": (
        set_value("annotations.0.segmentation", [[0, 0, 10, 10, 20, 20]]),
        [f"{A1}: 'segmentation' polygon 0 has zero area (its points lie on one line) "
         "[skippable]"],
    ),
    "segmentation empty": (
        set_value("annotations.0.segmentation", []), [f"{A1}: segmentation is empty [skippable]"],
    ),
    # boxes, in the 40 x 30 image 1
    "box past the right edge": (
        set_value("annotations.0.bbox", [30, 5, 15, 10]),
        [f"{A1}: box [30, 5, 15, 10] lies outside the 40x30 image by more than the 1 px "
         f"tolerance: x + width = 45 > 40"],
    ),
    "box above and left": (
        set_value("annotations.0.bbox", [-1.5, -2, 10, 10]),
        [f"{A1}: box [-1.5, -2, 10, 10] lies outside the 40x30 image by more than the 1 px "
         f"tolerance: x = -1.5 < 0, y = -2 < 0"],
    ),
    "box of zero width": (
        set_value("annotations.0.bbox", [5, 5, 0, 10]),
        [f"{A1}: box [5, 5, 0, 10] has non-positive width or height [skippable]"],
    ),
    # RLEs, in the 40 x 50 image 2
    "RLE size swapped": (
        set_value("annotations.1.segmentation.size", [50, 40]),
        [f"{A2}: 'segmentation' RLE 'size' [50, 40] does not match the image's "
         "[height, width] [40, 50]"],
    ),
    "RLE counts bad character": (
        set_value("annotations.1.segmentation.counts", "ab~"),
        [f"{A2}: 'segmentation' RLE 'counts' string is malformed: character '~' at "
         "position 2 is outside '0'..'o'"],
    ),
    # 'P' = 48 + 32 has the continuation bit and nothing follows
    "RLE counts cut": (
        set_value("annotations.1.segmentation.counts", "0P"),
        [f"{A2}: 'segmentation' RLE 'counts' string is malformed: the string ends in the "
         "middle of a run"],
    ),
    "RLE counts wrong sum": (
        set_value("annotations.1.segmentation.counts", [1000, 10]),
        [f"{A2}: 'segmentation' RLE 'counts' sum to 1010 pixels, but size [40, 50] has 2000"],
    ),
    "RLE counts negative": (
        set_value("annotations.1.segmentation.counts", [-5, 2005]),
        [f"{A2}: 'segmentation' RLE 'counts' have a negative run at position 0: -5"],
    ),
    "RLE empty": (
        set_value("annotations.1.segmentation.counts", [2000]),
        [f"{A2}: 'segmentation' RLE mask is empty [skippable]"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_each_defect_is_reported_exactly(tmp_path, case):
    check_case(tmp_path, *CASES[case])


def test_box_within_tolerance_is_accepted(tmp_path):
    """40 x 30 image: x = -1 >= -1 and y + height = 31 <= 30 + 1 are inside the tolerance."""
    data = small_dataset()
    data["annotations"][0]["bbox"] = [-1, 0.5, 41, 30.5]
    json_path, image_dir = write_dataset(tmp_path, data)
    assert lines(json_path, image_dir) == []
