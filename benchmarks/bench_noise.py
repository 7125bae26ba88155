"""Time `noise_file` on a COCO val2017-sized file of random polygons, for each preset.

    python benchmarks/bench_noise.py [--images 5000] [--instances 36000] [--seed 0]

The file (640 x 480 images, blob-shaped polygons of 8 to 40 vertices, radii log-uniform in
[8, 150] px, 80 categories) is generated in a temporary folder and removed afterwards. Prints
one table row per preset: instances, wall seconds (reading, noise and writing), instances per
wall second, CPU seconds of this process and its workers (which other load on the machine does not
inflate), and the mean mask IoU of the report.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

import numpy as np

from noisy_mask.noise.apply import noise_file
from noisy_mask.noise.params import PRESETS


def random_coco(num_images: int, num_instances: int, seed: int) -> Dict[str, Any]:
    """COCO dict of random star-like polygons.

    Vertex k of n sits at angle 2 pi (k + u_k) / n and radius r (1 + v_k), u, v ~ U(-0.3, 0.3).
    """
    rng = np.random.default_rng(seed)
    width, height = 640, 480
    images = [
        {"id": i + 1, "file_name": f"{i + 1:012d}.jpg", "width": width, "height": height}
        for i in range(num_images)
    ]
    annotations = []
    for ann_id in range(1, num_instances + 1):
        n = int(rng.integers(8, 41))
        radius = float(np.exp(rng.uniform(np.log(8), np.log(150))))
        center = rng.uniform([0, 0], [width, height])
        angles = 2 * np.pi * (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / n
        radii = radius * (1 + rng.uniform(-0.3, 0.3, n))
        xy = center + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        xy = np.clip(xy, 0, [width, height]).round(2)
        annotations.append(
            {
                "id": ann_id,
                "image_id": int(rng.integers(1, num_images + 1)),
                "category_id": int(rng.integers(1, 81)),
                "segmentation": [xy.reshape(-1).tolist()],
                "area": 0.0,
                "bbox": [0.0, 0.0, 0.0, 0.0],
                "iscrowd": 0,
            }
        )
    categories = [{"id": c, "name": f"class{c}", "supercategory": "shape"} for c in range(1, 81)]
    return {"images": images, "annotations": annotations, "categories": categories}


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--instances", type=int, default=36000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "instances_val.json"
        source.write_text(json.dumps(random_coco(args.images, args.instances, args.seed)))
        print(f"{args.instances} instances on {args.images} images, {args.workers} worker(s)")
        header = ("instances", "seconds", "inst/s", "cpu s", "mean IoU")
        print(f"{'preset':<8}" + "".join(f"{h:>10}" for h in header))
        for preset in PRESETS:
            start, cpu_start = time.perf_counter(), cpu_seconds()
            report = noise_file(
                source, Path(folder) / f"{preset}.json", preset, args.seed, workers=args.workers
            )
            seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
            n = report["instances"]
            iou = report["mask_iou"]["mean"]
            print(f"{preset:<8}{n:>10}{seconds:>10.1f}{n / seconds:>10.0f}{cpu:>10.1f}{iou:>10.3f}")


if __name__ == "__main__":
    main()
