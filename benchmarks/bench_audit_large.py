"""The audit's work per annotation on large images: the masks decoded and banded on windows around
the objects (what the audit does) against the whole image (decode, then cut; faster-coco-eval's
band of the whole mask), side by side in one run.

    python benchmarks/bench_audit_large.py [--height 3000 --width 4000] [--images 4]
        [--objects 40] [--rounds 2] [--output DIR]

Data, made under --output: --images images of --height x --width px with --objects ellipses each
(axes 30 to 180 px, as objects in large photographs or microscopy tiles are), annotated as RLE;
the "predictions" are the same masks dilated 2 px. Per annotation and its prediction, both ways:
the two masks' pixels in the thumbnail's crop (`audit.pictures.crop_box`) and the boundary IoU of
the two contour bands. Rounds in the order B A A B (drift cancels); the ratio is
mean(whole image) / mean(windows). The results of both ways are checked equal. Then the whole
audit of the files (`--detections`, every file written) is timed once.
"""

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from faster_coco_eval.core.mask import rleToBoundary
from pycocotools import mask as mask_utils

from noisy_mask.audit.pictures import crop_box
from noisy_mask.audit.predict import Predictions
from noisy_mask.audit.run import run_audit
from noisy_mask.audit.scores import band_iou, contour_band
from noisy_mask.coco.rle import decode_window, mask_iou


def make_data(output: Path, height: int, width: int, images: int, objects: int, seed: int = 0):
    """(annotations path, image folder, detections path, [(annotation RLE, prediction RLE)])."""
    rng = np.random.default_rng(seed)
    (output / "images").mkdir(parents=True, exist_ok=True)
    coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    detections, pairs = [], []
    for image_id in range(1, images + 1):
        pixels = np.full((height, width, 3), 90, dtype=np.uint8)
        coco["images"].append(dict(id=image_id, file_name=f"{image_id}.png", height=height,
                                   width=width))  # fmt: skip
        for _ in range(objects):
            mask = np.zeros((height, width), dtype=np.uint8)
            centre = (int(rng.integers(200, width - 200)), int(rng.integers(200, height - 200)))
            axes = (int(rng.integers(30, 180)), int(rng.integers(30, 180)))
            cv2.ellipse(mask, centre, axes, int(rng.integers(0, 180)), 0, 360, 1, -1)
            pixels[mask > 0] = (200, 60, 60)
            rle = mask_utils.encode(np.asfortranarray(mask))
            dilated = mask_utils.encode(np.asfortranarray(cv2.dilate(mask, np.ones((5, 5)))))
            pairs.append((rle, dilated))
            x, y, w, h = mask_utils.toBbox(rle).tolist()
            coco["annotations"].append(dict(
                id=len(coco["annotations"]) + 1, image_id=image_id, category_id=1,
                segmentation=dict(size=[height, width], counts=rle["counts"].decode()),
                area=float(mask_utils.area(rle)), bbox=[x, y, w, h], iscrowd=0))  # fmt: skip
            detections.append(dict(image_id=image_id, category_id=1, score=0.9, segmentation=dict(
                size=[height, width], counts=dilated["counts"].decode())))  # fmt: skip
        cv2.imwrite(str(output / "images" / f"{image_id}.png"), pixels)
    (output / "annotations.json").write_text(json.dumps(coco))
    (output / "detections.json").write_text(json.dumps(detections))
    return output / "annotations.json", output / "images", output / "detections.json", pairs


def whole_image(pairs, height, width):
    """The crops' pixels and the band IoU, from the whole image's masks."""
    out = []
    for a, b in pairs:
        top, left, bottom, right = crop_box([a, b], height, width)
        crops = [mask_utils.decode(r).astype(bool)[top:bottom, left:right] for r in (a, b)]
        out.append((crops, mask_iou(rleToBoundary(a, 0.02), rleToBoundary(b, 0.02))))
    return out


def windows(pairs, height, width):
    """The same, from windows around the objects (the audit's way)."""
    out = []
    for a, b in pairs:
        top, left, bottom, right = crop_box([a, b], height, width)
        crops = [decode_window(r, top, left, bottom, right) for r in (a, b)]
        out.append((crops, band_iou(contour_band(a, 0.02), contour_band(b, 0.02))))
    return out


def same(x, y) -> bool:
    return all(
        all(np.array_equal(p, q) for p, q in zip(cx, cy))
        and (math.isclose(bx, by, abs_tol=1e-12) or (math.isnan(bx) and math.isnan(by)))
        for (cx, bx), (cy, by) in zip(x, y)
    )


def parse_data_args(argv, description: str, images: int, rounds: int, output: str):
    """The data's and the rounds' options (`make_data`), with these defaults."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--images", type=int, default=images)
    parser.add_argument("--objects", type=int, default=40 if images > 2 else 20)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--output", type=Path, default=Path(output))
    args = parser.parse_args(argv)
    if min(args.height, args.width) < 500:
        parser.error("--height and --width must be at least 500 px (objects up to 360 px wide)")
    return args


def timed_rounds(ways, rounds):
    """({name: [seconds]}, {name: result}) of two ways (name -> function of no argument), in
    rounds of B A A B so that a drift of the machine cancels."""
    (first, run_first), (second, run_second) = ways.items()
    times, results = {first: [], second: []}, {}
    for _ in range(rounds):
        for name, run in ((first, run_first), (second, run_second), (second, run_second),
                          (first, run_first)):  # fmt: skip
            started = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - started)
    return times, results


def print_times(times, count: int, indent: str = "  ") -> None:
    """Each way's mean time per annotation and the ratio whole image / windows."""
    for name, values in times.items():
        print(f"{indent}{name}: {1000 * statistics.mean(values) / count:.2f} ms an annotation"
              f" ({min(values):.2f} to {max(values):.2f} s for all)")
    ratio = statistics.mean(times["whole image"]) / statistics.mean(times["windows"])
    print(f"{indent}ratio whole image / windows: {ratio:.1f}")


def print_whole_run(label: str, run, count: int) -> None:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    print(f"{label}, every file written: {elapsed:.1f} s, {1000 * elapsed / count:.0f} ms an"
          " annotation")


def main(argv=None) -> int:
    args = parse_data_args(argv, __doc__.split("\n")[0], images=4, rounds=2,
                           output="output/bench_audit_large")  # fmt: skip
    annotations, image_dir, detections, pairs = make_data(
        args.output, args.height, args.width, args.images, args.objects)
    times, results = timed_rounds({
        "whole image": lambda: whole_image(pairs, args.height, args.width),
        "windows": lambda: windows(pairs, args.height, args.width),
    }, args.rounds)  # fmt: skip
    if not same(results["whole image"], results["windows"]):
        print("error: the windows' crops or band IoUs differ from the whole image's")
        return 1
    print(f"{len(pairs)} annotations on {args.images} images of {args.height} x {args.width} px:"
          " crop pixels and band IoU of each annotation and its prediction (equal both ways)")
    print_times(times, len(pairs))
    print_whole_run("audit --detections",
                    lambda: run_audit(annotations, image_dir, args.output / "audit",
                                      Predictions(detections=detections)), len(pairs))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
