"""Time mask-AP evaluation: faster-coco-eval (`evaluate_coco_json`) against pycocotools.

    python benchmarks/bench_eval.py [--images 5000] [--instances N] [--seed 0] [--workers 1]

Ground truth: 640 x 480 images, 7.2 blob-shaped polygons per image by default (36,000 for 5,000
images, as COCO val2017), radii log-uniform in [6, 150] px, 80 categories. Predictions: 90 % of
the objects found, as RLE of the polygon with jittered vertices and a small shift (5 % of them
with a wrong class), plus 2 false positives per image on average, scores uniform. Both
evaluators read the same ground-truth file and the same results (segm, maxDets 100), from
loading to summary. Prints seconds, the speed-up, and both AP tables with their largest
difference; exits with status 1 if they differ by more than --tolerance AP points.
"""

import argparse
import contextlib
import copy
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from noisy_mask.evaluation.coco_eval import METRIC_NAMES, evaluate_coco_json

WIDTH, HEIGHT = 640, 480
NUM_CLASSES = 80


def blob(rng: np.random.Generator, center, radius: float) -> np.ndarray:
    """(n, 2) star-like polygon: vertex k at angle 2 pi (k + u_k) / n, radius r (1 + v_k)."""
    n = int(rng.integers(8, 25))
    angles = 2 * np.pi * (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / n
    radii = radius * (1 + rng.uniform(-0.3, 0.3, n))
    xy = np.asarray(center) + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return np.clip(xy, 0, [WIDTH, HEIGHT]).round(2)


def to_rle(xy: np.ndarray) -> Dict[str, Any]:
    rle = mask_util.merge(mask_util.frPyObjects([xy.reshape(-1).tolist()], HEIGHT, WIDTH))
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle


def synthetic_case(
    num_images: int, num_instances: int, seed: int
) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """(COCO ground-truth dict, COCO results list) as described in the module docstring."""
    rng = np.random.default_rng(seed)
    images = [
        {"id": i, "file_name": f"{i:012d}.jpg", "width": WIDTH, "height": HEIGHT}
        for i in range(1, num_images + 1)
    ]
    annotations, results = [], []
    for ann_id in range(1, num_instances + 1):
        radius = float(np.exp(rng.uniform(np.log(6), np.log(150))))
        xy = blob(rng, rng.uniform([0, 0], [WIDTH, HEIGHT]), radius)
        rle = to_rle(xy)
        category_id, image_id = int(rng.integers(1, NUM_CLASSES + 1)), int(
            rng.integers(1, num_images + 1)
        )
        annotations.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": category_id,
                "segmentation": [xy.reshape(-1).tolist()],
                "area": float(mask_util.area(rle)),
                "bbox": mask_util.toBbox(rle).tolist(),
                "iscrowd": 0,
            }
        )
        if rng.random() < 0.9:  # found: jittered vertices, shifted
            moved = xy + rng.normal(0, 0.08 * radius, xy.shape) + rng.normal(0, 0.05 * radius, 2)
            moved = np.clip(moved, 0, [WIDTH, HEIGHT])
            if rng.random() < 0.05:
                category_id = int(rng.integers(1, NUM_CLASSES + 1))
            results.append(
                {
                    "image_id": image_id,
                    "category_id": category_id,
                    "segmentation": to_rle(moved),
                    "score": float(rng.uniform(0.3, 1.0)),
                }
            )
    for image_id in range(1, num_images + 1):
        for _ in range(int(rng.poisson(2.0))):  # false positives
            radius = float(np.exp(rng.uniform(np.log(6), np.log(100))))
            xy = blob(rng, rng.uniform([0, 0], [WIDTH, HEIGHT]), radius)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.integers(1, NUM_CLASSES + 1)),
                    "segmentation": to_rle(xy),
                    "score": float(rng.uniform(0.0, 0.7)),
                }
            )
    categories = [{"id": c, "name": f"class{c}"} for c in range(1, NUM_CLASSES + 1)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def run_pycocotools(gt_path: Path, results: List[Dict[str, Any]]) -> Dict[str, float]:
    """Official COCO API, detectron2's way for segm: stats[:6] x 100."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {
        m: float(ev.stats[i] * 100) if ev.stats[i] >= 0 else np.nan
        for i, m in enumerate(METRIC_NAMES)
    }


def run_faster(gt_path: Path, results: List[Dict[str, Any]], workers: int) -> Dict[str, float]:
    metrics = evaluate_coco_json(gt_path, results, ("segm",), workers=workers)["segm"]["metrics"]
    return {m: metrics[m] for m in METRIC_NAMES}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--instances", type=int, default=None, help="default: 7.2 per image")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="faster-coco-eval threads")
    parser.add_argument("--tolerance", type=float, default=0.01, help="AP points")
    args = parser.parse_args()
    if args.images < 1 or args.workers < 1:
        parser.error("--images and --workers must be >= 1")
    num_instances = args.instances if args.instances is not None else round(7.2 * args.images)

    tic = time.perf_counter()
    gt, results = synthetic_case(args.images, num_instances, args.seed)
    print(
        f"{args.images} images, {num_instances} objects, {len(results)} predictions"
        f" (generated in {time.perf_counter() - tic:.1f} s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        gt_path = Path(tmp) / "gt.json"
        gt_path.write_text(json.dumps(gt))
        timings, metrics = {}, {}
        for name, run in (
            ("pycocotools", lambda: run_pycocotools(gt_path, results)),
            (
                f"faster-coco-eval ({args.workers} thr)",
                lambda: run_faster(gt_path, results, args.workers),
            ),
        ):
            tic = time.perf_counter()
            metrics[name] = run()
            timings[name] = time.perf_counter() - tic

    names = list(timings)
    print(f"{'evaluator':<26} {'seconds':>8}  " + " ".join(f"{m:>7}" for m in METRIC_NAMES))
    for name in names:
        row = " ".join(f"{metrics[name][m]:7.3f}" for m in METRIC_NAMES)
        print(f"{name:<26} {timings[name]:8.2f}  {row}")
    a, b = (np.array([metrics[n][m] for m in METRIC_NAMES]) for n in names)
    difference = float(np.max(np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))))
    print(
        f"speed-up: {timings[names[0]] / timings[names[1]]:.1f}x;"
        f" largest AP difference: {difference:.4f}"
    )
    return 0 if difference <= args.tolerance else 1  # NaN (undefined on one side only) fails


if __name__ == "__main__":
    sys.exit(main())
