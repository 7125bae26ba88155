"""The plain variant's files: every polygon is exactly its painted pixels, and the COCO fields
(ids, categories, bbox, area) are those of the polygons."""

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from samples import read_rgb
from shapely.geometry import Polygon

from noisy_mask.data import SHAPE_CLASSES, generate_shapes_dataset
from noisy_mask.data.shapes.params import MIN_VISIBLE_AREA

SIZE = 192


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    return generate_shapes_dataset(folder, num_train=12, num_val=4, image_size=SIZE, seed=0)


@pytest.mark.parametrize("split", ["train", "val"])
def test_every_polygon_is_exactly_its_painted_pixels(dataset, split):
    # Reference rasterizer: pycocotools (COCO.annToMask), the one Detectron2 and COCO eval use.
    # Shapes are flat colours, distinct within an image and far from the background, so the
    # pixels painted for an instance are exactly those of its colour. The generator paints
    # from the same rasterizer, hence tolerance 0: not one pixel may differ.
    coco = COCO(dataset[f"{split}_json"])
    checked = 0
    for image_id in coco.getImgIds():
        info = coco.loadImgs(image_id)[0]
        image = read_rgb(Path(dataset[f"{split}_images"]) / info["file_name"])
        assert image.shape == (info["height"], info["width"], 3) == (SIZE, SIZE, 3)
        annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        assert 1 <= len(annotations) <= 5
        for ann in annotations:
            mask = coco.annToMask(ann).astype(bool)
            colours = np.unique(image[mask], axis=0)
            # one colour over the whole polygon: nothing drawn later covers any of it
            assert len(colours) == 1, (image_id, ann["id"], colours)
            painted = np.all(image == colours[0], axis=2)
            assert np.array_equal(painted, mask), (image_id, ann["id"], (painted ^ mask).sum())
            checked += 1
    assert checked == len(coco.getAnnIds()) > 0


@pytest.mark.parametrize("split", ["train", "val"])
def test_ids_categories_bbox_and_area(dataset, split):
    data = json.loads(Path(dataset[f"{split}_json"]).read_text())
    count = 12 if split == "train" else 4
    assert [img["id"] for img in data["images"]] == list(range(1, count + 1))
    assert [img["file_name"] for img in data["images"]] == [
        f"{i:06d}.png" for i in range(1, count + 1)
    ]
    assert sorted(p.name for p in Path(dataset[f"{split}_images"]).iterdir()) == [
        img["file_name"] for img in data["images"]
    ]
    assert data["categories"] == [
        {"id": 1, "name": "circle", "supercategory": "shape"},
        {"id": 2, "name": "triangle", "supercategory": "shape"},
        {"id": 3, "name": "rectangle", "supercategory": "shape"},
        {"id": 4, "name": "star", "supercategory": "shape"},
    ]
    assert SHAPE_CLASSES == ("circle", "triangle", "rectangle", "star")
    annotations = data["annotations"]
    assert [ann["id"] for ann in annotations] == list(range(1, len(annotations) + 1))
    for ann in annotations:
        assert ann["iscrowd"] == 0 and 1 <= ann["category_id"] <= 4
        assert len(ann["segmentation"]) == 1
        polygon = ann["segmentation"][0]
        xs, ys = polygon[0::2], polygon[1::2]
        assert len(polygon) >= 6 and len(polygon) % 2 == 0
        assert 0 <= min(xs) and max(xs) <= SIZE and 0 <= min(ys) and max(ys) <= SIZE
        # bbox = [x_min, y_min, x_max - x_min, y_max - y_min] of the polygon's vertices
        expected = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        assert ann["bbox"] == pytest.approx(expected, abs=0.006)
        # area = pixels of the rasterized polygon
        rle = mask_utils.merge(mask_utils.frPyObjects([polygon], SIZE, SIZE))
        assert ann["area"] == int(mask_utils.area(rle)) == mask_utils.decode(rle).sum()
        # ... which is the polygon's own area up to boundary pixels: the raster moves the
        # outline by at most half a pixel, so |pixels - area| <= 0.5 * perimeter
        outline = Polygon(np.reshape(polygon, (-1, 2)))
        assert outline.is_valid and abs(ann["area"] - outline.area) <= 0.5 * outline.length
        assert ann["area"] >= MIN_VISIBLE_AREA - 0.5 * outline.length
