"""Time the audit with --weights against the bare model inference over the same images.

    python benchmarks/bench_audit.py [--num-images 1000] [--weights W --config C] [--rounds 1]
        [--threads N] [--output DIR]

Data: the built-in shapes dataset's validation split (192 px), made under --output. Model: the
built-in CPU config (ResNet-18 FPN) with --weights, or else untrained (random weights, saved once
under --output): it runs at the same cost, and keeps as many predictions per image as the test
allows (TEST.DETECTIONS_PER_IMAGE, 50), more work for the audit than a trained model leaves.

Bare inference: detectron2's DefaultPredictor built from the weights, then every image read
(cv2) and predicted. Audit: `noisy_mask.audit.run.run_audit` with the same weights, from reading
the annotations to the last file (predictions.json, audit.json, audit.csv, the picture, audit.html
and its thumbnails). Both in this process, on the same threads, in the order B A A B per round
(drift cancels); the ratio is mean(audit) / mean(bare). Also timed, once: the audit of the saved
predictions (--detections), the audit's own work without the model. Prints the times and the
ratio; the goal is a ratio of at most 1.25.
"""

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import cv2
import torch

from noisy_mask.audit.report import PREDICTIONS_FILE
from noisy_mask.audit.predict import Predictions
from noisy_mask.audit.run import run_audit
from noisy_mask.data.shapes import generate_shapes_dataset
from noisy_mask.engine.launcher import SHAPES_CONFIG

GOAL = 1.25


def untrained_weights(output: Path, config: Path) -> Path:
    """A checkpoint of the config's model with its initial (random) weights, made once."""
    path = output / "untrained.pth"
    if path.exists():
        return path
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from noisy_mask.audit.predict import predictor_config

    torch.manual_seed(0)
    cfg = predictor_config(config, "")
    DetectionCheckpointer(build_model(cfg), save_dir=str(output)).save("untrained")
    return path


def bare_inference(gt: dict, image_dir: str, config: Path, weights: Path) -> int:
    """DefaultPredictor over every image; the number of instances predicted."""
    from detectron2.engine import DefaultPredictor

    from noisy_mask.audit.predict import predictor_config

    predictor = DefaultPredictor(predictor_config(config, str(weights)))
    count = 0
    for image in gt["images"]:
        pixels = cv2.imread(str(Path(image_dir) / image["file_name"]), cv2.IMREAD_COLOR)
        count += len(predictor(pixels)["instances"])
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--weights", default=None, help="default: the untrained model")
    parser.add_argument("--config", type=Path, default=SHAPES_CONFIG)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of B A A B")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: its own)")
    parser.add_argument("--output", type=Path, default=Path("output/bench_audit"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.output.mkdir(parents=True, exist_ok=True)
    paths = generate_shapes_dataset(
        args.output / f"shapes_{args.num_images}", num_train=0, num_val=args.num_images, seed=0
    )
    gt = json.loads(Path(paths["val_json"]).read_text())
    weights = Path(args.weights) if args.weights else untrained_weights(args.output, args.config)
    audit_dir = args.output / "audit"

    def audit():
        shutil.rmtree(audit_dir, ignore_errors=True)  # every audit writes all its files
        return run_audit(paths["val_json"], paths["val_images"], audit_dir,
                         Predictions(weights=str(weights), config=args.config))  # fmt: skip

    print(f"{args.num_images} images, {len(gt['annotations'])} annotations, weights {weights}, "
          f"{torch.get_num_threads()} torch threads", flush=True)  # fmt: skip
    bare_inference({"images": gt["images"][:2]}, paths["val_images"], args.config, weights)
    times = {"bare": [], "audit": []}
    for _ in range(args.rounds):
        for kind in ("bare", "audit", "audit", "bare"):
            started = time.perf_counter()
            if kind == "bare":
                predicted = bare_inference(gt, paths["val_images"], args.config, weights)
            else:
                line = audit()["line"]
            times[kind].append(time.perf_counter() - started)
            print(f"  {kind}: {times[kind][-1]:.1f} s", flush=True)
    predictions = audit_dir / PREDICTIONS_FILE
    kept = args.output / PREDICTIONS_FILE
    shutil.copyfile(predictions, kept)
    started = time.perf_counter()
    run_audit(paths["val_json"], paths["val_images"], audit_dir, Predictions(detections=kept))
    own = time.perf_counter() - started

    bare, full = statistics.mean(times["bare"]), statistics.mean(times["audit"])
    ratio = full / bare
    print(f"audit: {line}")
    print(f"predicted instances: {predicted} ({predicted / len(gt['images']):.1f} per image)")
    print(f"bare inference {bare:.1f} s ({1000 * bare / len(gt['images']):.0f} ms/image), audit "
          f"--weights {full:.1f} s, ratio {ratio:.3f} (goal <= {GOAL}); the audit of the saved "
          f"predictions alone: {own:.1f} s")  # fmt: skip
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
