"""Drawing a scene: occlusion cuts the earlier shape exactly, and occlusions that leave a region
no single COCO polygon can describe are refused."""

import numpy as np
import pytest
from shapely.geometry import box

from noisy_mask.data.shapes.scenes import SceneError, SceneShape, draw_scene

SIZE = 192


def test_constructed_occlusion_cuts_the_earlier_shape():
    # A: square [20, 100]^2 drawn first; B: rectangle [60, 140] x [40, 80] drawn over it.
    # The visible part of A is the square minus B's part inside it, [60, 100] x [40, 80]: a
    # notch, area 80 * 80 - 40 * 40 = 4800. pycocotools takes a pixel when its centre is inside,
    # so an integer-cornered rectangle covers exactly (w * h) pixels: areas 4800 and 80 * 40.
    background = np.full((SIZE, SIZE, 3), 200, dtype=np.uint8)
    red, blue = (220, 30, 30), (30, 30, 220)
    scene = [
        SceneShape(3, box(20, 20, 100, 100), red),
        SceneShape(3, box(60, 40, 140, 80), blue),
    ]
    image, instances = draw_scene(scene, background)
    first, second = instances
    vertices = set(zip(first["segmentation"][0][0::2], first["segmentation"][0][1::2]))
    assert vertices == {
        (20, 20),
        (100, 20),
        (100, 40),
        (60, 40),
        (60, 80),
        (100, 80),
        (100, 100),
        (20, 100),
    }
    assert first["area"] == 4800 and first["bbox"] == [20, 20, 80, 80]
    assert second["area"] == 3200 and second["bbox"] == [60, 40, 80, 40]
    assert tuple(image[60, 80]) == blue  # row 60, column 80: inside the notch, B on top
    assert tuple(image[30, 30]) == red and tuple(image[90, 90]) == red
    assert tuple(image[60, 120]) == blue and tuple(image[150, 150]) == (200, 200, 200)
    assert np.all(image[40:80, 60:100] == blue) and (np.all(image == red, axis=2)).sum() == 4800

    # the other order: B drawn first is cut by A, losing [60, 100] x [40, 80] (half of it)
    _, (b_first, a_second) = draw_scene(scene[::-1], background)
    assert b_first["area"] == 1600 and b_first["bbox"] == [100, 40, 40, 40]
    assert a_second["area"] == 6400


@pytest.mark.parametrize(
    "occluder, problem",
    [
        (box(40, 40, 60, 60), "hole"),  # inside A: A would have a hole
        (box(10, 50, 110, 60), "split"),  # a bar across A: two pieces
        (box(10, 10, 80, 110), "visible"),  # covers 60 of 80 columns: 25% of A left
        (box(20, 20, 99, 99), "visible"),
    ],
)
def test_unannotatable_occlusions_are_refused(occluder, problem):
    background = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    scene = [
        SceneShape(1, box(20, 20, 100, 100), (250, 250, 0)),
        SceneShape(2, occluder, (0, 250, 250)),
    ]
    with pytest.raises(SceneError, match=problem):
        draw_scene(scene, background)
