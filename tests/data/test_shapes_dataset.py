"""The synthetic shapes dataset: exact masks, COCO fields, determinism, idempotence, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from samples import read_rgb
from shapely.geometry import Polygon, box

from noisy_mask.data import SHAPE_CLASSES, generate_shapes_dataset
from noisy_mask.data import shapes

ROOT = Path(__file__).resolve().parents[2]
SIZE = 192


def files_under(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}


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
        assert ann["area"] >= shapes.MIN_VISIBLE_AREA - 0.5 * outline.length


def test_constructed_occlusion_cuts_the_earlier_shape():
    # A: square [20, 100]^2 drawn first; B: rectangle [60, 140] x [40, 80] drawn over it.
    # The visible part of A is the square minus B's part inside it, [60, 100] x [40, 80]: a
    # notch, area 80 * 80 - 40 * 40 = 4800. pycocotools takes a pixel when its centre is inside,
    # so an integer-cornered rectangle covers exactly (w * h) pixels: areas 4800 and 80 * 40.
    background = np.full((SIZE, SIZE, 3), 200, dtype=np.uint8)
    red, blue = (220, 30, 30), (30, 30, 220)
    scene = [
        shapes.SceneShape(3, box(20, 20, 100, 100), red),
        shapes.SceneShape(3, box(60, 40, 140, 80), blue),
    ]
    image, instances = shapes.draw_scene(scene, background)
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
    _, (b_first, a_second) = shapes.draw_scene(scene[::-1], background)
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
        shapes.SceneShape(1, box(20, 20, 100, 100), (250, 250, 0)),
        shapes.SceneShape(2, occluder, (0, 250, 250)),
    ]
    with pytest.raises(shapes.SceneError, match=problem):
        shapes.draw_scene(scene, background)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    first = generate_shapes_dataset(tmp_path / "a", num_train=4, num_val=2, seed=7)
    second = generate_shapes_dataset(tmp_path / "b", num_train=4, num_val=2, seed=7)
    other = generate_shapes_dataset(tmp_path / "c", num_train=4, num_val=2, seed=8)
    files_a, files_b = files_under(Path(first["root"])), files_under(Path(second["root"]))
    files_c = files_under(Path(other["root"]))
    assert list(files_a) == list(files_b) and len(files_a) == 4 + 2 + 3
    for name in files_a:
        assert files_a[name].read_bytes() == files_b[name].read_bytes(), name
    pngs = [name for name in files_a if name.endswith(".png")]
    assert all(files_a[name].read_bytes() != files_c[name].read_bytes() for name in pngs)
    train_json = "annotations/instances_train.json"
    assert files_a[train_json].read_bytes() != files_c[train_json].read_bytes()
    # train and val draw from different streams
    assert files_a["train/000001.png"].read_bytes() != files_a["val/000001.png"].read_bytes()
    # image k depends on (seed, split, k) only, not on how many images there are
    fewer = generate_shapes_dataset(tmp_path / "d", num_train=2, num_val=1, seed=7)
    for name in ("train/000001.png", "train/000002.png", "val/000001.png"):
        assert (Path(fewer["root"]) / name).read_bytes() == files_a[name].read_bytes()


def test_second_call_writes_nothing_and_changed_parameters_rewrite(tmp_path):
    paths = generate_shapes_dataset(tmp_path, num_train=4, num_val=2, seed=1)
    before = {name: p.stat().st_mtime_ns for name, p in files_under(tmp_path).items()}
    assert not [name for name in before if Path(name).name.startswith(".")]  # no temp files
    manifest = json.loads(Path(paths["manifest"]).read_text())
    assert manifest["params"] == {
        "generator_version": shapes.GENERATOR_VERSION,
        "num_train": 4,
        "num_val": 2,
        "image_size": 192,
        "seed": 1,
        "variant": "plain",
    }

    assert generate_shapes_dataset(tmp_path, num_train=4, num_val=2, seed=1) == paths
    after = {name: p.stat().st_mtime_ns for name, p in files_under(tmp_path).items()}
    assert after == before

    # a missing image makes the folder incomplete: it is made again, with the same bytes
    lost = tmp_path / "train" / "000003.png"
    kept = lost.read_bytes()
    lost.unlink()
    generate_shapes_dataset(tmp_path, num_train=4, num_val=2, seed=1)
    assert lost.read_bytes() == kept

    # fewer images: the manifest follows and the extra images go
    generate_shapes_dataset(tmp_path, num_train=2, num_val=2, seed=1)
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["000001.png", "000002.png"]
    assert json.loads(Path(paths["manifest"]).read_text())["params"]["num_train"] == 2
    assert len(json.loads(Path(paths["train_json"]).read_text())["images"]) == 2


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({"num_train": -1}, "num_train"),
        ({"num_val": 2.5}, "num_val"),
        ({"image_size": 32}, "image_size"),
        ({"seed": -3}, "seed"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, key):
    with pytest.raises(ValueError, match=key):
        generate_shapes_dataset(tmp_path, **kwargs)
    assert not (tmp_path / shapes.MANIFEST_NAME).exists()


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    done = subprocess.run(
        [sys.executable, "-m", "noisy_mask.data.shapes", "--output", str(out)]
        + ["--num-train", "3", "--num-val", "2", "--image-size", "128", "--seed", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "found in sys.modules" not in done.stderr  # runpy's warning of a double import
    printed = dict(line.split(": ", 1) for line in done.stdout.strip().splitlines())
    assert printed["train_json"] == str(out / "annotations" / "instances_train.json")
    train = json.loads(Path(printed["train_json"]).read_text())
    val = json.loads(Path(printed["val_json"]).read_text())
    assert len(train["images"]) == 3 and len(val["images"]) == 2
    assert train["images"][0]["width"] == 128
    assert read_rgb(Path(printed["val_images"]) / "000002.png").shape == (128, 128, 3)

    assert shapes.main(["--output", str(tmp_path / "bad"), "--num-train", "-1"]) == 2
    assert "num_train" in capsys.readouterr().err
