"""Small inputs the tests build by hand: masks, their RLEs, COCO dicts of squares, run folders as
train_net leaves them, PNG pixels, and the modules a command or a module imports.

Importable from every test file (pytest puts tests/, the folder of the root conftest.py, on
sys.path)."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import cv2
import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parents[1]
SIDE = 20  # of the squares of `square_annotation`
# A polygon that pycocotools rasterizes to rows and columns 10..29: a 20 x 20 square of 400 px.
SQUARE = [10, 10, 30, 10, 30, 30, 10, 30]


# ---------------------------------------------------------------------------------------------
# Masks and their RLEs.


def square(height: int, width: int, top: int, left: int, side: int) -> np.ndarray:
    """(height, width) bool mask, True on `side` rows from `top` and `side` columns from `left`."""
    mask = np.zeros((height, width), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def rle(mask: np.ndarray) -> Dict[str, Any]:
    """COCO compressed RLE of a mask, as a json file holds it: {"size", "counts": str}."""
    encoded = pycocotools_rle(mask)
    return {"size": list(encoded["size"]), "counts": encoded["counts"].decode("ascii")}


def pycocotools_rle(mask: Optional[np.ndarray]) -> Optional[Dict[str, Any]]:
    """pycocotools' own RLE of a mask (bytes counts); None for None."""
    if mask is None:
        return None
    return mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))


def polygons_mask(segmentation: List[List[float]], height: int, width: int) -> np.ndarray:
    """(height, width) bool mask of a COCO polygon list, as pycocotools rasterizes it."""
    rles = mask_utils.frPyObjects(segmentation, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def uncompressed_rle(mask: np.ndarray) -> Dict[str, Any]:
    """COCO uncompressed RLE: the run lengths of the column-major mask, background first."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    edges = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(edges).tolist()
    return {"size": list(mask.shape), "counts": counts if flat[0] == 0 else [0] + counts}


# ---------------------------------------------------------------------------------------------
# COCO dicts and files.


def square_annotation(
    ann_id: int, image_id: int, x0: int, y0: int, category_id: int = 1, side: int = SIDE
) -> Dict[str, Any]:
    """A ground-truth square as a polygon with its box and area; it rasterizes to
    square(H, W, y0, x0, side)."""
    x1, y1 = x0 + side, y0 + side
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
        "bbox": [x0, y0, side, side],
        "area": side * side,
        "iscrowd": 0,
    }


def coco_dict(
    annotations: List[Dict[str, Any]],
    num_images: int = 1,
    categories: Sequence[Tuple[int, str]] = ((1, "cat"),),
    size: int = 64,
) -> Dict[str, Any]:
    """A COCO instances dict: images 1..num_images of size x size px named "<id>.png"."""
    return {
        "images": [
            {"id": i, "height": size, "width": size, "file_name": f"{i}.png"}
            for i in range(1, num_images + 1)
        ],
        "annotations": annotations,
        "categories": [{"id": c, "name": n} for c, n in categories],
    }


def coco_of(
    segmentations: List[Any], size: int = 64, categories: Sequence[int] = (1, 2, 3)
) -> Dict[str, Any]:
    """One size x size image per segmentation (no file_name), annotation ids 100, 101, ... (not
    the list positions), categories cycling through `categories`, boxes and areas all 0."""
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


def shapes_coco(
    num_images: int = 8, per_image: int = 6, size: int = 192, seed: int = 0
) -> Dict[str, Any]:
    """`coco_of` circles and 5-point stars, 20 to 80 px across, on size x size images, 3
    categories, drawn with default_rng(seed)."""
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


def shifted(polygon: List[float], dx: float) -> List[float]:
    """A flat polygon [x0, y0, x1, y1, ...] moved dx px along x."""
    return [v + dx if k % 2 == 0 else v for k, v in enumerate(polygon)]


def hand_made_noise() -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(clean, noisy) COCO dicts. Clean: three 20x20 squares on a 64x64 image, ids 1 and 2
    polygons of class 1 ("circle"), id 3 an RLE of class 2 ("star"). Noisy: 1 moved 5 px right
    (kept), 2 deleted, 3 unchanged but flipped from star to circle."""
    clean = {
        "images": [{"id": 1, "height": 64, "width": 64, "file_name": "1.png"}],
        "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "star"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [SQUARE]},
            {"id": 2, "image_id": 1, "category_id": 1, "segmentation": [shifted(SQUARE, 30)]},
            {
                "id": 3,
                "image_id": 1,
                "category_id": 2,
                "segmentation": rle(square(64, 64, 40, 40, 20)),
            },
        ],
    }
    noisy = json.loads(json.dumps(clean))
    noisy["annotations"] = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [shifted(SQUARE, 5)]},
        {
            "id": 3,
            "image_id": 1,
            "category_id": 1,
            "segmentation": clean["annotations"][2]["segmentation"],
        },
    ]
    return clean, noisy


# (file_name, width, height) of the three images of `small_dataset`
DATASET_IMAGES = [("a.png", 40, 30), ("b.png", 50, 40), ("sub/c.png", 32, 32)]


def small_dataset() -> Dict[str, Any]:
    """Three images, two categories and four valid annotations: a square polygon on image 1, a
    compressed RLE (rows 10..19, columns 20..34) and an uncompressed crowd RLE on image 2, a
    triangle on image 3."""
    b_mask = np.zeros((40, 50), dtype=bool)
    b_mask[10:20, 20:35] = True  # 150 px
    return {
        "images": [
            {"id": i + 1, "file_name": name, "width": w, "height": h}
            for i, (name, w, h) in enumerate(DATASET_IMAGES)
        ],
        "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "area": 100.0,
             "bbox": [5, 5, 10, 10], "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]]},
            {"id": 2, "image_id": 2, "category_id": 2, "iscrowd": 0, "area": 150,
             "bbox": [20, 10, 15, 10], "segmentation": rle(b_mask)},
            # a crowd region as an uncompressed RLE: 2000 pixels = 1000 off, 40 on, 960 off
            {"id": 3, "image_id": 2, "category_id": 1, "iscrowd": 1, "area": 40,
             "bbox": [25, 0, 1, 40], "segmentation": {"size": [40, 50], "counts": [1000, 40, 960]}},
            {"id": 4, "image_id": 3, "category_id": 2, "iscrowd": 0, "area": 50.0,
             "bbox": [0.5, 0.5, 10, 10], "segmentation": [[0.5, 0.5, 10.5, 0.5, 0.5, 10.5]]},
        ],
    }  # fmt: skip


def write_dataset(root: Path, data: Any, name: str = "instances.json") -> Tuple[Path, Path]:
    """Write `data` (a dict, or the json's text or bytes) as ROOT/NAME and the images of
    `small_dataset` as real PNGs of random pixels under ROOT/images; (json path, image folder)."""
    image_dir = root / "images"
    rng = np.random.default_rng(0)
    for file_name, width, height in DATASET_IMAGES:
        (image_dir / file_name).parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image_dir / file_name)
    json_path = root / name
    if isinstance(data, bytes):
        json_path.write_bytes(data)
    else:
        json_path.write_text(data if isinstance(data, str) else json.dumps(data))
    return json_path, image_dir


# ---------------------------------------------------------------------------------------------
# Results, evaluations and run folders.


def square_result(
    image_id: int, x0: int, y0: int, score: float = 0.9, category_id: int = 1, size: int = 64
) -> Dict[str, Any]:
    """A COCO result: the mask (RLE) and box of a SIDE x SIDE square at (x0, y0) in a size x size
    image."""
    return {
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": rle(square(size, size, y0, x0, SIDE)),
        "bbox": [x0, y0, SIDE, SIDE],
        "score": score,
    }


def three_category_case() -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """(ground truth, results) on two 64 x 64 images. cat (id 1): found exactly (AP 100); dog
    (id 3): found shifted by 4 px (mask IoU 2/3: AP 40, AP50 100, AP75 0); bird (id 5): no ground
    truth, one false positive (absent: -1 in precision, NaN AP)."""
    categories = ((1, "cat"), (3, "dog"), (5, "bird"))
    gt = coco_dict(
        [square_annotation(1, 1, 4, 4, category_id=1), square_annotation(2, 2, 10, 10, 3)],
        num_images=2,
        categories=categories,
    )
    results = [
        square_result(1, 4, 4, category_id=1),
        square_result(2, 14, 10, category_id=3),
        square_result(2, 40, 40, category_id=5),
    ]
    return gt, results


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def write_run_folder(
    run_dir: Path,
    dataset: str = "shapes_val",
    *,
    detections: Optional[List[Dict[str, Any]]] = None,
    evaluations: Optional[Dict[str, Any]] = None,
    metrics_rows: Optional[List[Dict[str, Any]]] = None,
    eval_results: Optional[Dict[str, Any]] = None,
) -> Path:
    """A run folder as train_net leaves it, with the files given: metrics.json (one json object a
    line) and eval_results.json at the top; coco_instances_results.json and the PR data of
    `evaluations` (from evaluate_coco_json) in inference/<dataset>/."""
    from noisy_mask.evaluation.pr_data import save_pr_data
    from noisy_mask.utils.run_folders import DETECTIONS_FILE, EVAL_RESULTS_FILE, METRICS_FILE

    inference = run_dir / "inference" / dataset
    inference.mkdir(parents=True, exist_ok=True)
    if detections is not None:
        write_json(inference / DETECTIONS_FILE, detections)
    if evaluations is not None:
        save_pr_data(inference, evaluations)
    if metrics_rows is not None:
        (run_dir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in metrics_rows))
    if eval_results is not None:
        write_json(run_dir / EVAL_RESULTS_FILE, eval_results)
    return run_dir


def square_case(shift: int) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """(ground truth, results): a 20x20 square in a 64x64 image and its mask shifted by `shift`
    px along x, without a box (0: AP 100; 4: mask IoU 2/3, AP 40, boundary AP 0)."""
    result = square_result(1, 10 + shift, 10)
    del result["bbox"]
    return coco_dict([square_annotation(1, 1, 10, 10)]), [result]


# (iteration, loss_mask, total_loss) logged every 20 iterations; "bce" falls faster than "dice".
LOGGED_LOSSES = {
    "bce": [(19, 0.60, 1.50), (39, 0.40, 1.10), (59, 0.30, 0.90)],
    "dice": [(19, 0.50, 1.40), (39, 0.45, 1.30), (59, 0.42, 1.20)],
}


def write_plot_run(
    run_dir: Path, shift: int, losses: List[Tuple[int, float, float]], dataset: str = "shapes_val"
) -> Path:
    """A run folder to plot: metrics.json with `losses` and an evaluation row, and the PR data of
    `square_case(shift)` in inference/<dataset>/."""
    from noisy_mask.evaluation.coco_eval import evaluate_coco_json

    rows = [{"iteration": i, "loss_mask": m, "total_loss": t, "lr": 0.01} for i, m, t in losses]
    rows.append({"iteration": 59, "segm/AP": 40.0})  # an evaluation row: no loss keys
    evaluations = evaluate_coco_json(*square_case(shift))
    return write_run_folder(run_dir, dataset, evaluations=evaluations, metrics_rows=rows)


# ---------------------------------------------------------------------------------------------
# Thin rods and round blobs, against Boundary IoU's band.

ROD_IMAGE = 320  # px, the side of the images of `rods_coco`: diagonal 452.55 px
ROD_WIDTH, ROD_LENGTH = 17, 100  # px


def rod(x0: int, y0: int, shift: int = 0, size: int = ROD_IMAGE) -> np.ndarray:
    """(size, size) bool mask of a vertical ROD_WIDTH x ROD_LENGTH rod at (x0 + shift, y0)."""
    mask = np.zeros((size, size), dtype=bool)
    mask[y0 : y0 + ROD_LENGTH, x0 + shift : x0 + shift + ROD_WIDTH] = True
    return mask


def disc(cx: int, cy: int, radius: int, size: int = ROD_IMAGE) -> np.ndarray:
    """(size, size) bool mask of the pixels whose centre is within `radius` of (cx, cy)."""
    y, x = np.mgrid[:size, :size] + 0.5
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def masks_coco(masks_per_image: List[List[np.ndarray]]) -> Dict[str, Any]:
    """A COCO instances dict of one category ("rod"): image i + 1 holds the masks of
    masks_per_image[i] as compressed RLEs, annotation ids 1, 2, ... in that order."""
    images, annotations = [], []
    for index, masks in enumerate(masks_per_image):
        height, width = masks[0].shape
        images.append(
            {"id": index + 1, "height": height, "width": width, "file_name": f"{index + 1}.png"}
        )
        for mask in masks:
            encoded = pycocotools_rle(mask)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": 1,
                    "segmentation": rle(mask),
                    "area": float(mask.sum()),
                    "bbox": mask_utils.toBbox(encoded).tolist(),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "rod"}]}


def rods_coco(num_images: int = 2) -> Dict[str, Any]:
    """`masks_coco` of three rods (ROD_WIDTH px wide) on each of `num_images` ROD_IMAGE px images,
    at x = 40, 140, 240, y = 100."""
    return masks_coco([[rod(x0, 100) for x0 in (40, 140, 240)] for _ in range(num_images)])


def rod_results(gt: Dict[str, Any], shift: int) -> List[Dict[str, Any]]:
    """One result per rod of `rods_coco`: the rod moved `shift` px right, score 0.9."""
    return [
        {
            "image_id": ann["image_id"],
            "category_id": 1,
            "segmentation": rle(rod(x0, 100, shift)),
            "score": 0.9,
        }
        for ann, x0 in zip(gt["annotations"], [40, 140, 240] * len(gt["images"]))
    ]


# ---------------------------------------------------------------------------------------------
# Pictures.


def png_size(path: Path) -> Tuple[int, int]:
    """(width, height) from the PNG's IHDR chunk: bytes 16-24 after the 8-byte signature."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) RGB of an image file written as BGR by cv2 (or any 3-channel image)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def png_pixels(path: Path) -> np.ndarray:
    """(H, W, 3) RGB of a PNG written by matplotlib (RGBA, opaque)."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert pixels.shape[2] == 4 and np.all(pixels[..., 3] == 255)
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)


# ---------------------------------------------------------------------------------------------
# What a module imports.


def _python(code: str) -> subprocess.Popen:
    """A new interpreter running `code` at the repository's root, started."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")
    command = [sys.executable, "-c", code]
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _printed_modules(process: subprocess.Popen) -> Set[str]:
    """The json list of module names the process printed last."""
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return set(json.loads(out.strip().splitlines()[-1]))


def modules_loaded_by_import(module: str) -> Set[str]:
    """Every module that importing `module` loads, with noisy_mask/__init__.py left out (it
    registers the detectron2 heads): the module's own import graph, subpackages' __init__ in."""
    code = f"""
import importlib, json, sys, types
package = types.ModuleType("noisy_mask")
package.__path__ = [{str(ROOT / "noisy_mask")!r}]
sys.modules["noisy_mask"] = package
before = set(sys.modules)
importlib.import_module({module!r})
print(json.dumps(sorted(set(sys.modules) - before)))
"""
    return _printed_modules(_python(code))


def heavy(modules: Set[str]) -> Set[str]:
    """The torch and detectron2 modules among `modules`."""
    return {m for m in modules if m.split(".")[0] in ("torch", "detectron2")}


# ---------------------------------------------------------------------------------------------
# Configs.


def noisy_cfg(**head: Any):
    """detectron2's default config with noisy_mask's keys, its head, and `head` set under
    MODEL.ROI_MASK_HEAD (e.g. LOSS="dice", DICE_EPS=1.0)."""
    from detectron2.config import get_cfg

    from noisy_mask import add_noisy_mask_config

    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.MODEL.ROI_MASK_HEAD.NAME = "NoisyMaskRCNNConvUpsampleHead"
    for key, value in head.items():
        cfg.MODEL.ROI_MASK_HEAD[key] = value
    return cfg
