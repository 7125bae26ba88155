"""Check the datasets a run uses before training: their files, their masks against
INPUT.MASK_FORMAT, and every problem `noisy_mask.validate` finds.

The datasets of `DATASETS.REGISTER_COCO` that DATASETS.TRAIN or DATASETS.TEST names are the ones a
run uses: their files must exist (the error names the dataset and the file), and each problem of
their json stops the run before a model is built, listed one per line (file, annotation and image
ids, what is wrong). The others are registered (`data.register`) but neither required nor checked.

Skippable problems (an empty or degenerate segmentation, a box of non-positive size) may instead be
dropped from the training data with `DATASETS.SKIP_DEGENERATE_ANNOTATIONS True`; the dropped ids
are logged. Evaluation reads the json itself (the metadata's `json_file`), so the datasets of
DATASETS.TEST are never filtered.

A training dataset with RLE masks under INPUT.MASK_FORMAT "polygon" (detectron2's default) would
fail in a data-loader worker; it stops the run here, even with DATASETS.VALIDATE False, naming the
dataset, the file and the key. Crowd annotations do not count (detectron2's mapper drops them), nor
do the datasets of DATASETS.TEST (the test loader drops the annotations).

The keys, DATASETS.VALIDATE, VALIDATE_IMAGES and SKIP_DEGENERATE_ANNOTATIONS, are defined with
their defaults in `noisy_mask.config`.
"""

import logging
import os
from typing import Any, Dict, List, Set, Tuple

from detectron2.data import DatasetCatalog
from detectron2.data.datasets import load_coco_json

from ..coco.checks import (
    FATAL,
    Problem,
    format_problem,
    read_annotation_file,
    skippable_annotation_ids,
    validate_data,
)
from ..utils.text import plural as _count
from .register import missing_files

logger = logging.getLogger(__name__)

SKIP_KEY = "DATASETS.SKIP_DEGENERATE_ANNOTATIONS"


class DatasetProblemsError(ValueError):
    """A registered dataset has problems that training cannot go on with."""


def used_datasets(cfg) -> List[Tuple[str, str, str]]:
    """The `[name, json, image_root]` entries of DATASETS.REGISTER_COCO that DATASETS.TRAIN or
    DATASETS.TEST names, in the order of REGISTER_COCO."""
    used = set(cfg.DATASETS.TRAIN) | set(cfg.DATASETS.TEST)
    return [tuple(entry) for entry in cfg.DATASETS.REGISTER_COCO if entry[0] in used]


def check_registered_datasets(cfg) -> Dict[str, Set[int]]:
    """Check the datasets of `cfg.DATASETS.REGISTER_COCO` (registered) that the run uses.

    With SKIP_DEGENERATE_ANNOTATIONS, the annotations whose only problems are skippable are left
    out of every dataset but those of DATASETS.TEST (the evaluator reads their json as it is, and
    an empty segmentation there breaks it). Returns the dropped annotation ids per dataset name;
    those datasets are registered again with a loader that leaves the ids out.

    Raises:
        FileNotFoundError: naming each used dataset whose annotation file or image folder is
            missing.
        DatasetProblemsError: naming each training dataset with RLE masks under INPUT.MASK_FORMAT
            "polygon"; or listing every problem of every used dataset that cannot be used as is.
    """
    datasets = cfg.DATASETS
    if not datasets.VALIDATE and (datasets.VALIDATE_IMAGES or datasets.SKIP_DEGENERATE_ANNOTATIONS):
        raise ValueError(f"DATASETS.VALIDATE_IMAGES and {SKIP_KEY} need DATASETS.VALIDATE True")
    entries = used_datasets(cfg)
    missing = [
        f"{message} (used in {_uses(cfg, name)})"
        for name, json_file, image_root in entries
        for message in [missing_files(name, json_file, image_root)]
        if message
    ]
    if missing:
        raise FileNotFoundError("\n".join(missing))
    polygon_masks = cfg.MODEL.MASK_ON and cfg.INPUT.MASK_FORMAT == "polygon"
    skip = bool(datasets.SKIP_DEGENERATE_ANNOTATIONS)
    mask_format: List[str] = []
    reports: List[str] = []
    dropped: Dict[str, Set[int]] = {}
    num_errors = num_skippable = 0
    for name, json_file, image_root in entries:  # one json in memory at a time
        trained_as_polygons = polygon_masks and name in datasets.TRAIN
        if not (datasets.VALIDATE or trained_as_polygons):
            continue
        data, unreadable = read_annotation_file(json_file)
        if trained_as_polygons:
            mask_format.extend(_rle_masks(name, json_file, data))
        if not datasets.VALIDATE:
            continue
        if unreadable is not None:
            problems = [unreadable]
        else:
            image_dir = image_root if datasets.VALIDATE_IMAGES else None
            problems = validate_data(data, os.path.basename(json_file), image_dir).problems
        del data
        evaluated = name in datasets.TEST
        drop = _droppable_ids(problems) if skip and not evaluated else set()
        errors = [p for p in problems if p.annotation_id not in drop]
        if errors:
            skippable = sum(p.severity != FATAL for p in errors)
            note = ""
            if evaluated and skippable:
                note = " (in DATASETS.TEST: evaluation reads this json as it is, none dropped)"
            else:
                num_skippable += skippable
            reports.append(
                f"dataset {name!r} ({json_file}): {_count(len(errors), 'problem')}{note}"
            )
            reports.extend(f"  {format_problem(p)}" for p in errors)
            num_errors += len(errors)
        elif drop:
            dropped[name] = drop
    if mask_format:
        raise DatasetProblemsError(
            'INPUT.MASK_FORMAT is "polygon", which cannot train on RLE masks: set '
            'INPUT.MASK_FORMAT "bitmask" (it reads polygons too):\n' + "\n".join(mask_format)
        )
    if reports:
        hint = (
            f"; the {num_skippable} marked [skippable] can be dropped from training with "
            f"{SKIP_KEY} True"
            if num_skippable and not skip
            else ""
        )
        raise DatasetProblemsError(
            f"{_count(num_errors, 'problem')} in DATASETS.REGISTER_COCO{hint} (check a dataset "
            f"with `python -m noisy_mask.validate JSON IMAGE_DIR`):\n" + "\n".join(reports)
        )
    for name, json_file, image_root in entries:
        if name in dropped:
            _register_without(name, json_file, image_root, dropped[name])
    return dropped


def _uses(cfg, name: str) -> str:
    """`DATASETS.TRAIN`, `DATASETS.TEST`, or both, that name the dataset `name`."""
    keys = [f"DATASETS.{key}" for key in ("TRAIN", "TEST") if name in cfg.DATASETS[key]]
    return " and ".join(keys)


def rle_instances(data: Any) -> List[Tuple[Any, Any]]:
    """(annotation id, image id) of each annotation of a parsed COCO json whose segmentation is an
    RLE object, crowd annotations (iscrowd 1) left out; malformed entries are skipped."""
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(annotations, list):
        return []
    return [
        (ann.get("id"), ann.get("image_id"))
        for ann in annotations
        if isinstance(ann, dict)
        and isinstance(ann.get("segmentation"), dict)
        and ann.get("iscrowd", 0) != 1
    ]


def _rle_masks(name: str, json_file: str, data: Any) -> List[str]:
    """`dataset 'NAME' (JSON): K of N annotations have RLE masks (the first: ...)`, or nothing."""
    found = rle_instances(data)
    if not found:
        return []
    (ann_id, image_id), total = found[0], len(data["annotations"])
    return [
        f"dataset {name!r} ({json_file}): {len(found)} of {total} annotations have RLE masks "
        f"(the first: annotation {ann_id}, image {image_id})"
    ]


def _droppable_ids(problems: List[Problem]) -> Set[int]:
    """Annotations whose every problem is skippable."""
    fatal = {p.annotation_id for p in problems if p.severity == FATAL}
    return skippable_annotation_ids(problems) - fatal


def _register_without(name: str, json_file: str, image_root: str, ids: Set[int]) -> None:
    """Register `name` again: detectron2's COCO loader, leaving out the annotations `ids`."""
    logger.warning(
        f"{SKIP_KEY}: dropping {_count(len(ids), 'annotation')} of {name!r} ({json_file}) from "
        f"training, ids {sorted(ids)}"
    )

    def load() -> List[dict]:
        records = load_coco_json(json_file, image_root, name, extra_annotation_keys=["id"])
        for record in records:
            kept = [a for a in record["annotations"] if a.get("id") not in ids]
            for annotation in kept:
                annotation.pop("id", None)
            record["annotations"] = kept
        return records

    DatasetCatalog.remove(name)
    DatasetCatalog.register(name, load)  # the metadata, json_file included, stays as it was
