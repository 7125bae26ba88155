"""Small inputs the tests build by hand: masks, their RLEs, COCO dicts of squares, run folders as
train_net leaves them, PNG pixels, and the modules a command or a module imports.

Importable from every test file (pytest puts tests/, the folder of the root conftest.py, on
sys.path)."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import cv2
import numpy as np
from pycocotools import mask as mask_utils

ROOT = Path(__file__).resolve().parents[1]
SIDE = 20  # of the squares of `square_annotation`
# A polygon that pycocotools rasterizes to rows and columns 10..29: a 20 x 20 square of 400 px.
SQUARE = [10, 10, 30, 10, 30, 30, 10, 30]


def square(height: int, width: int, top: int, left: int, side: int) -> np.ndarray:
    """(height, width) bool mask, True on rows top..top + side - 1 and the same columns from left."""
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


def uncompressed_rle(mask: np.ndarray) -> Dict[str, Any]:
    """COCO uncompressed RLE: the run lengths of the column-major mask, background first."""
    flat = np.asarray(mask, dtype=np.uint8).ravel(order="F")
    edges = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(edges).tolist()
    return {"size": list(mask.shape), "counts": counts if flat[0] == 0 else [0] + counts}


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


def png_pixels(path: Path) -> np.ndarray:
    """(H, W, 3) RGB of a PNG written by matplotlib (RGBA, opaque)."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert pixels.shape[2] == 4 and np.all(pixels[..., 3] == 255)
    return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGB)


def _run_python(code: str) -> List[str]:
    """Run `code` in a new interpreter at the repository's root; the json list it prints."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def modules_loaded_by_help(command: str, *args: str) -> Set[str]:
    """The modules `python -m COMMAND *ARGS --help` loads beyond what `import noisy_mask` does."""
    code = f"""
import contextlib, io, json, runpy, sys
import noisy_mask
before = set(sys.modules)
sys.argv = [{command!r}, *{list(args)!r}, "--help"]
with contextlib.redirect_stdout(io.StringIO()):
    try:
        runpy.run_module({command!r}, run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
print(json.dumps(sorted(set(sys.modules) - before)))
"""
    return set(_run_python(code))


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
    return set(_run_python(code))


def heavy(modules: Set[str]) -> Set[str]:
    """The torch and detectron2 modules among `modules`."""
    return {m for m in modules if m.split(".")[0] in ("torch", "detectron2")}
