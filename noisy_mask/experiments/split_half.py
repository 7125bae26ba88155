"""How much of a grid's seed-to-seed spread comes from its validation images: every run evaluated
again on each half of the validation set (the images in id order, alternately), from the
detections the run saved; no inference.

A run's AP on the whole set carries the noise of the images that happen to be in it. With halves
A and B drawn alike, AP_A - AP_B has about twice the variance of that noise in the whole set's
AP (each half has twice the whole set's, and the halves are independent), so

    eval_std = sqrt(Var(AP_A - AP_B) / 4),    seed_std = sqrt(Var((AP_A + AP_B) / 2)),

each variance taken over the seeds of one cell (level, loss) and averaged over the cells with 2
or more seeds, as the grid pools its seed spread. When eval_std is most of seed_std, more
validation images narrow the spread; when it is a small part, the models themselves differ from
seed to seed, and only a larger effect (or more seeds, for the mean) tells losses apart.
"""

import json
import math
from pathlib import Path
from statistics import mean, variance
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from ..evaluation.coco_eval import evaluate_coco_json
from ..evaluation.detections import find_results_file
from ..utils.atomic import write_json_atomic

HALVES_FILE = "eval_halves.json"
# iou type of the evaluation -> the grid's name of its AP
IOU_TYPES = {"bbox": "box AP", "segm": "mask AP", "boundary": "boundary AP"}


def split_images(gt: Mapping[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The COCO dict `gt` cut in two by image: the 1st, 3rd, ... image in id order and the 2nd,
    4th, ..., each with its annotations."""
    ids = sorted(image["id"] for image in gt["images"])
    halves = []
    for keep in (set(ids[0::2]), set(ids[1::2])):
        half = dict(gt)
        half["images"] = [image for image in gt["images"] if image["id"] in keep]
        half["annotations"] = [a for a in gt["annotations"] if a["image_id"] in keep]
        halves.append(half)
    return halves[0], halves[1]


def half_aps(results: Sequence[Mapping[str, Any]], gt: Mapping[str, Any],
             name: str) -> List[Dict[str, float]]:
    """[{iou type: AP}, {iou type: AP}] of the COCO `results` on each half of `gt`
    (`split_images`); `name` is the ground truth's in messages."""
    aps = []
    for half in split_images(gt):
        keep = {image["id"] for image in half["images"]}
        evaluated = evaluate_coco_json(half, [r for r in results if r["image_id"] in keep],
                                       tuple(IOU_TYPES), name=name)
        aps.append({t: evaluated[t]["metrics"]["AP"] for t in IOU_TYPES})
    return aps


def run_half_aps(run_dir: Path, val_json: Path, gt: Mapping[str, Any]) -> List[Dict[str, float]]:
    """`half_aps` of a grid run's saved detections on the validation file `val_json` (read:
    `gt`), kept in RUN_DIR/eval_halves.json (made again when the detections or the file are
    newer)."""
    detections = find_results_file(run_dir)
    cache = Path(run_dir) / HALVES_FILE
    newest = max(detections.stat().st_mtime_ns, Path(val_json).stat().st_mtime_ns)
    if cache.exists() and cache.stat().st_mtime_ns >= newest:
        saved = json.loads(cache.read_text())
        if saved.get("val_json") == str(val_json):
            return saved["halves"]
    halves = half_aps(json.loads(detections.read_text()), gt, str(val_json))
    write_json_atomic(cache, {"val_json": str(val_json), "halves": halves})
    return halves


def spread_sources(records: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """{iou type: {"seed_std", "eval_std", "cells"}} over the records' cells (level, loss) with
    2 or more seeds whose AP is known on both halves (a half without annotations has none); each
    record has "halves" (`run_half_aps`). NaN stds without such a cell."""
    cells: Dict[Tuple[str, str], List[List[Dict[str, float]]]] = {}
    for record in records:
        cells.setdefault((record["level"], record["loss"]), []).append(record["halves"])
    out = {}
    for iou_type in IOU_TYPES:
        seeded = [known for known in (
            [(a, b) for a, b in runs if math.isfinite(a[iou_type]) and math.isfinite(b[iou_type])]
            for runs in cells.values()) if len(known) > 1]
        if not seeded:
            out[iou_type] = {"seed_std": math.nan, "eval_std": math.nan, "cells": 0}
            continue
        whole = [variance([(a[iou_type] + b[iou_type]) / 2 for a, b in runs]) for runs in seeded]
        split = [variance([a[iou_type] - b[iou_type] for a, b in runs]) / 4 for runs in seeded]
        out[iou_type] = {"seed_std": math.sqrt(mean(whole)), "eval_std": math.sqrt(mean(split)),
                         "cells": len(seeded)}
    return out


def spread_lines(sources: Mapping[str, Mapping[str, Any]], val_images: int) -> List[str]:
    """The results.md lines: per AP, the seed-to-seed std and the part of it the validation
    images make, with what would narrow it."""
    if not any(s["cells"] for s in sources.values()):
        return ["Where the seed spread comes from: needs 2 or more seeds, and instances in both "
                "halves of the validation images."]
    lines = [f"Where the seed spread comes from (each run evaluated again on both halves of the "
             f"{val_images} validation images; {max(s['cells'] for s in sources.values())} "
             "cells of 2 or more seeds):", ""]
    for iou_type, label in IOU_TYPES.items():
        s = sources[iou_type]
        if not s["cells"]:
            continue
        if s["seed_std"] == 0:  # e.g. an AP of 0 on every run: nothing to narrow
            lines.append(f"- {label}: no spread between seeds (seed std 0.00)")
            continue
        share = s["eval_std"] ** 2 / s["seed_std"] ** 2
        advice = ("more validation images would narrow it" if share >= 0.5 else
                  "the models differ from seed to seed: more validation images would not narrow "
                  "it much")
        lines.append(f"- {label}: seed std {s['seed_std']:.2f}, of which the validation images "
                     f"{s['eval_std']:.2f} ({100 * min(share, 1.0):.0f}% of the variance): "
                     f"{advice}")
    return lines
