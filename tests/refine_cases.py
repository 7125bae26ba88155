"""Hand-made refine cases: 64 x 64 images of bright squares on a dark background, their COCO file,
a results file, and the audit of the one against the other (`python -m noisy_mask.audit
--detections`)."""

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image
from samples import SIDE, coco_dict, square, square_annotation, square_result

from noisy_mask.commands.audit import main as audit_main

SIZE = 64
CATEGORIES = ((1, "circle"), (2, "star"))


def hand_case() -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """(annotations, results).

    Image 1: annotation 1 (circle) at x 10..29, y 10..29, predicted as a circle 4 px to the right
    (score 0.9; mask IoU 16 x 20 / (24 x 20) = 2/3: suspicious); annotation 2 (circle) at
    40..59 x 40..59, predicted exactly as a star (0.8) and as a circle (0.2): a class flip the
    model is sure of at 0.8.
    Image 2: annotation 3 (star) at 40..59 x 10..29, predicted exactly (0.95); a star predicted
    at 10..29 x 40..59 (0.9) with no annotation; a circle at 40..59 x 40..59 (0.6) with none.
    """
    gt = coco_dict(
        [
            square_annotation(1, 1, 10, 10, category_id=1),
            square_annotation(2, 1, 40, 40, category_id=1),
            square_annotation(3, 2, 40, 10, category_id=2),
        ],
        num_images=2,
        categories=CATEGORIES,
    )
    results = [
        square_result(1, 14, 10, 0.9, category_id=1),
        square_result(1, 40, 40, 0.8, category_id=2),
        square_result(1, 40, 40, 0.2, category_id=1),
        square_result(2, 40, 10, 0.95, category_id=2),
        square_result(2, 10, 40, 0.9, category_id=2),
        square_result(2, 40, 40, 0.6, category_id=1),
    ]
    return gt, results


def squares_image(corners: Sequence[Tuple[int, int]], seed: int = 0, side: int = SIDE):
    """(SIZE, SIZE, 3) uint8: grey 60 with a little noise, squares of 200 at (x0, y0)."""
    rng = np.random.default_rng(seed)
    pixels = np.full((SIZE, SIZE), 60.0)
    for x0, y0 in corners:
        pixels[square(SIZE, SIZE, y0, x0, side)] = 200.0
    pixels = np.clip(pixels + rng.normal(0, 4, pixels.shape), 0, 255).astype(np.uint8)
    return np.repeat(pixels[:, :, None], 3, axis=2)


def write_case(
    root: Path,
    gt: Dict[str, Any],
    results: List[Dict[str, Any]],
    objects: Dict[int, Sequence[Tuple[int, int]]],
) -> Dict[str, Path]:
    """gt.json, results.json, the images (the squares `objects` by image id) under root/images,
    and the audit of the two in root/audit; their paths."""
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    for image in gt["images"]:
        pixels = squares_image(objects.get(image["id"], ()), seed=image["id"])
        Image.fromarray(pixels).save(image_dir / image["file_name"])
    gt_path, results_path = root / "gt.json", root / "results.json"
    gt_path.write_text(json.dumps(gt))
    results_path.write_text(json.dumps(results))
    audit_dir = root / "audit"
    assert audit_main(["--annotations", str(gt_path), str(image_dir), "--output", str(audit_dir),
                       "--detections", str(results_path), "--num-pictures", "0",
                       "--no-html"]) == 0  # fmt: skip
    return {"gt": gt_path, "images": image_dir, "results": results_path, "audit": audit_dir,
            "out": root / "out.json"}  # fmt: skip


def dilated_annotation(ann_id: int, image_id: int, x0: int, y0: int, by: int) -> Dict[str, Any]:
    """The SIDE x SIDE square at (x0, y0) annotated `by` px too large on every side."""
    return square_annotation(ann_id, image_id, x0 - by, y0 - by, side=SIDE + 2 * by)


def outline_case(by: int, shift: int) -> Tuple[Dict[str, Any], List[Dict[str, Any]], Dict]:
    """Three images of two true squares each, at (8, 8) and (36, 36): each annotated `by` px too
    large (0: exactly), each predicted `shift` px to the right (score 0.9); with the squares by
    image and the clean file (the true squares, same ids)."""
    corners = [(8, 8), (36, 36)]
    annotations, clean, results = [], [], []
    for image_id in (1, 2, 3):
        for k, (x0, y0) in enumerate(corners):
            ann_id = 2 * image_id + k
            annotations.append(dilated_annotation(ann_id, image_id, x0, y0, by))
            clean.append(square_annotation(ann_id, image_id, x0, y0))
            results.append(square_result(image_id, x0 + shift, y0, 0.9))
    gt = coco_dict(annotations, num_images=3, categories=CATEGORIES)
    objects = {image_id: corners for image_id in (1, 2, 3)}
    return (
        gt,
        results,
        {"objects": objects, "clean": coco_dict(clean, num_images=3, categories=CATEGORIES)},
    )
