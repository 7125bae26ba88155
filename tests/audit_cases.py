"""The hand-made audit case shared by the audit tests: two 64 x 64 images of 20 x 20 squares, and a
results file with a shifted mask, a class flip, a missed instance and an extra confident one."""

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
from PIL import Image
from samples import coco_dict, square_annotation, square_result

CATEGORIES = ((1, "circle"), (2, "star"))


def hand_case() -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """(annotations, results).

    Image 1: annotation 1 (circle) at x 10..29, y 10..29, predicted as a circle 4 px to the right
    (score 0.9); annotation 2 (circle) at 40..59 x 40..59, predicted exactly as a star (0.8) and
    as a circle (0.2): a flipped class.
    Image 2: annotation 3 (star) at 10..29 x 10..29 with no prediction but one of score 0.01,
    under min_score: a missed instance; annotation 4 (circle) at 40..59 x 10..29, predicted
    exactly (0.95); a star predicted at 10..29 x 40..59 (0.7) with no annotation, and a circle
    over it 2 px to the right (0.6, the same object); a circle of score 0.3 at 40..59 x 40..59
    (not confident).
    """
    gt = coco_dict(
        [
            square_annotation(1, 1, 10, 10, category_id=1),
            square_annotation(2, 1, 40, 40, category_id=1),
            square_annotation(3, 2, 10, 10, category_id=2),
            square_annotation(4, 2, 40, 10, category_id=1),
        ],
        num_images=2,
        categories=CATEGORIES,
    )
    results = [
        square_result(1, 14, 10, 0.9, category_id=1),
        square_result(1, 40, 40, 0.8, category_id=2),
        square_result(1, 40, 40, 0.2, category_id=1),
        square_result(2, 10, 10, 0.01, category_id=2),
        square_result(2, 40, 10, 0.95, category_id=1),
        square_result(2, 10, 40, 0.7, category_id=2),
        square_result(2, 12, 40, 0.6, category_id=1),
        square_result(2, 40, 40, 0.3, category_id=1),
    ]
    return gt, results


def write_case(root: Path, gt: Dict[str, Any], results: List[Dict[str, Any]]):
    """gt.json, results.json and grey PNGs of the images under root/images; their paths."""
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for image in gt["images"]:
        pixels = rng.integers(100, 160, (image["height"], image["width"], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(image_dir / image["file_name"])
    gt_path, results_path = root / "gt.json", root / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    return gt_path, image_dir, results_path
