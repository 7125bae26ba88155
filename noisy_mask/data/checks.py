"""Check the datasets of `DATASETS.REGISTER_COCO` with `noisy_mask.validate` before training.

Every problem of every registered json stops the run before a model is built, listed one per line
(file, annotation and image ids, what is wrong). Skippable problems (an empty or degenerate
segmentation, a box of non-positive size) may instead be dropped from the training data with
`DATASETS.SKIP_DEGENERATE_ANNOTATIONS True`; the dropped ids are logged. Evaluation reads the json
itself (the metadata's `json_file`), so the datasets of DATASETS.TEST are never filtered.
"""

import logging
from typing import Dict, List, Set

from detectron2.data import DatasetCatalog
from detectron2.data.datasets import load_coco_json

from ..coco.checks import FATAL, Problem, format_problem, skippable_annotation_ids, validate_coco
from ..utils.text import plural as _count

logger = logging.getLogger(__name__)

SKIP_KEY = "DATASETS.SKIP_DEGENERATE_ANNOTATIONS"


class DatasetProblemsError(ValueError):
    """A registered dataset has problems that training cannot go on with."""


def add_dataset_checks_config(cfg) -> None:
    """Add the keys of the dataset checks to `cfg`; call before `merge_from_file`."""
    # Check each DATASETS.REGISTER_COCO json with noisy_mask.validate before training.
    cfg.DATASETS.VALIDATE = True
    # Also decode every image the jsons list (reads the whole image folder: slow for a big one).
    cfg.DATASETS.VALIDATE_IMAGES = False
    # Drop annotations whose only problems are skippable (empty or degenerate segmentation, box of
    # non-positive size) from the training data, logging their ids; False: they stop the run.
    cfg.DATASETS.SKIP_DEGENERATE_ANNOTATIONS = False


def check_registered_datasets(cfg) -> Dict[str, Set[int]]:
    """Validate every `[name, json, image_root]` of `cfg.DATASETS.REGISTER_COCO` (registered).

    With SKIP_DEGENERATE_ANNOTATIONS, the annotations whose only problems are skippable are left
    out of every dataset but those of DATASETS.TEST (the evaluator reads their json as it is, and
    an empty segmentation there breaks it). Returns the dropped annotation ids per dataset name;
    those datasets are registered again with a loader that leaves the ids out.

    Raises:
        DatasetProblemsError: listing every problem of every dataset that cannot be used as is.
    """
    datasets = cfg.DATASETS
    if not datasets.VALIDATE:
        if datasets.VALIDATE_IMAGES or datasets.SKIP_DEGENERATE_ANNOTATIONS:
            raise ValueError(f"DATASETS.VALIDATE_IMAGES and {SKIP_KEY} need DATASETS.VALIDATE True")
        return {}
    skip = bool(datasets.SKIP_DEGENERATE_ANNOTATIONS)
    reports: List[str] = []
    dropped: Dict[str, Set[int]] = {}
    num_errors = num_skippable = 0
    for name, json_file, image_root in datasets.REGISTER_COCO:
        problems = validate_coco(json_file, image_root, check_images=datasets.VALIDATE_IMAGES)
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
    for name, json_file, image_root in datasets.REGISTER_COCO:
        if name in dropped:
            _register_without(name, json_file, image_root, dropped[name])
    return dropped


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
