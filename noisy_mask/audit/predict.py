"""The predictions an audit scores against, as a COCO results list: a detectron2 model run over the
images (`predict_images`, as detectron2's DefaultPredictor runs it), or K models cross-fitted on
the audited file itself (`cross_fit`).

A model audits its own training data badly: it has learned the noise, so it agrees with the bad
annotations. Cross-fitting splits the images into K folds (a seeded shuffle of the image ids,
fold = position mod K), trains one model per fold on the other K - 1 folds with `train_net`
(`experiments.runner.run_train_net`, the runs side by side) and predicts the held-out fold with
it (train_net's own evaluation on that fold writes the results file): every image is predicted
by the one model that never saw it.
"""

import hashlib
import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..coco.io import read_image
from ..data.shapes import SHAPE_CLASSES
from ..experiments.runner import DEFAULT_JOBS, Schedule, run_in_parallel, run_train_net
from ..utils.atomic import write_json_atomic
from ..utils.run_folders import DETECTIONS_FILE, find_run_file

FOLDS_DIR = "folds"
SPEC_FILE = "fold.json"  # what a fold was trained on: a finished fold with the same is reused


def is_builtin_shapes(gt: Mapping[str, Any]) -> bool:
    """Whether a COCO dict has the built-in dataset's categories (its config fits it)."""
    names = [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]
    return tuple(names) == SHAPE_CLASSES


def category_ids(gt: Mapping[str, Any]) -> List[int]:
    """Dataset category id of each contiguous class index: the sorted ids, as detectron2's COCO
    loader numbers them."""
    return sorted(c["id"] for c in gt["categories"])


def predictor_config(
    config: os.PathLike,
    weights: str,
    opts: Sequence[str] = (),
    device: str = "cpu",
    min_score: float = 0.05,
):
    """The frozen detectron2 config of a model to run: `config` with noisy_mask's keys, `opts`
    merged, MODEL.WEIGHTS, MODEL.DEVICE and ROI_HEADS.SCORE_THRESH_TEST = `min_score`."""
    from detectron2.config import get_cfg

    from .. import add_noisy_mask_config, check_noisy_mask_config

    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_file(os.fspath(config))
    cfg.merge_from_list(list(opts))
    cfg.MODEL.WEIGHTS = os.fspath(weights)
    cfg.MODEL.DEVICE = device
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(min_score)
    cfg.DATASETS.TEST = ()  # nothing is registered: the images come from the COCO file
    check_noisy_mask_config(cfg)
    cfg.freeze()
    return cfg


def predict_images(
    gt: Mapping[str, Any],
    image_dir: os.PathLike,
    config: os.PathLike,
    weights: str,
    opts: Sequence[str] = (),
    device: str = "cpu",
    min_score: float = 0.05,
) -> List[Dict[str, Any]]:
    """COCO results (dataset category ids, RLE masks) of the model `weights` with `config` on
    every image of `gt`, one image at a time as detectron2's DefaultPredictor runs it."""
    from detectron2.engine import DefaultPredictor
    from detectron2.evaluation.coco_evaluation import instances_to_coco_json

    cfg = predictor_config(config, weights, opts, device, min_score)
    ids = category_ids(gt)
    if cfg.MODEL.ROI_HEADS.NUM_CLASSES != len(ids):
        raise ValueError(
            f"the model has MODEL.ROI_HEADS.NUM_CLASSES {cfg.MODEL.ROI_HEADS.NUM_CLASSES}, the"
            f" annotations {len(ids)} categories: pass the config the weights were trained with"
        )
    predictor = DefaultPredictor(cfg)
    results = []
    for image in gt["images"]:
        pixels = read_image(image_dir, image)  # RGB, checked against the json's size
        if cfg.INPUT.FORMAT == "BGR":
            pixels = np.ascontiguousarray(pixels[:, :, ::-1])
        else:
            pixels = pixels[:, :, ::-1]  # DefaultPredictor takes BGR and flips it back
        instances = predictor(pixels)["instances"].to("cpu")
        for result in instances_to_coco_json(instances, image["id"]):
            result["category_id"] = ids[result["category_id"]]
            results.append(result)
    return results


# ---------------------------------------------------------------------------------------------
# Cross-fitting.


def fold_assignment(image_ids: Sequence[int], folds: int, seed: int = 0) -> Dict[int, int]:
    """Image id -> fold in 0..folds-1: the sorted ids shuffled with default_rng(seed), fold =
    position mod `folds`, so the folds differ in size by at most one image."""
    ids = sorted(image_ids)
    if not 2 <= folds <= len(ids):
        raise ValueError(
            f"folds must be between 2 and the number of images ({len(ids)}), got {folds}"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[int(i)]: position % folds for position, i in enumerate(order)}


def _subset(gt: Mapping[str, Any], image_ids: set) -> Dict[str, Any]:
    subset = dict(gt)
    subset["images"] = [image for image in gt["images"] if image["id"] in image_ids]
    subset["annotations"] = [a for a in gt["annotations"] if a["image_id"] in image_ids]
    return subset


def cross_fit(
    gt: Mapping[str, Any],
    annotations_path: os.PathLike,
    image_dir: os.PathLike,
    output_dir: os.PathLike,
    folds: int,
    config: os.PathLike,
    max_iter: Optional[int] = None,
    opts: Sequence[str] = (),
    seed: int = 0,
    jobs: int = DEFAULT_JOBS,
    min_score: float = 0.05,
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Train `folds` models, each on the other folds' images of `gt` (read from
    `annotations_path`), and predict its own fold with it; (the held-out predictions of every
    image, one record per fold: fold, run_dir, train_images, predicted_images).

    Runs go to OUTPUT_DIR/folds/fold<k>/run; a fold whose fold.json (its images, the config, the
    overrides and the annotations' sha256) is unchanged is not trained again once finished, and
    resumes when interrupted. `max_iter` sets the schedule (`experiments.runner.Schedule`);
    `opts` are KEY VALUE overrides of every run, after the audit's own.
    """
    assignment = fold_assignment([image["id"] for image in gt["images"]], folds, seed)
    digest = hashlib.sha256(Path(annotations_path).read_bytes()).hexdigest()
    image_dir = os.path.abspath(image_dir)
    schedule = Schedule(0, 0, max_iter).solver_opts() if max_iter else []
    tasks, records = [], []
    for fold in range(folds):
        fold_dir = Path(output_dir) / FOLDS_DIR / f"fold{fold}"
        predicted = sorted(i for i, f in assignment.items() if f == fold)
        train = sorted(i for i, f in assignment.items() if f != fold)
        train_json, heldout_json = fold_dir / "train.json", fold_dir / "heldout.json"
        write_json_atomic(train_json, _subset(gt, set(train)), indent=None)
        write_json_atomic(heldout_json, _subset(gt, set(predicted)), indent=None)
        names = (f"audit_fold{fold}_train", f"audit_fold{fold}_heldout")
        run_opts = [
            "DATASETS.REGISTER_COCO",
            repr([[names[0], str(train_json.resolve()), image_dir],
                  [names[1], str(heldout_json.resolve()), image_dir]]),
            "DATASETS.TRAIN", f"('{names[0]}',)",
            "DATASETS.TEST", f"('{names[1]}',)",
            "TEST.EVAL_PERIOD", "0",
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST", str(min_score),
            "SEED", str(seed),
            *schedule,
            *opts,
        ]  # fmt: skip
        spec = {
            "train_images": train, "predicted_images": predicted, "config": os.fspath(config),
            "opts": run_opts, "annotations_sha256": digest,
        }  # fmt: skip
        records.append(
            {"fold": fold, "run_dir": str(fold_dir / "run"), "train_images": train,
             "predicted_images": predicted}
        )  # fmt: skip
        tasks.append(partial(_fold_task, fold, folds, spec, fold_dir, Path(config), run_opts))
    paths = run_in_parallel(tasks, max(1, min(jobs, folds)))
    results = []
    for path in paths:
        results += json.loads(Path(path).read_text())
    return results, records


def _fold_task(
    fold: int, folds: int, spec: Dict[str, Any], fold_dir: Path, config: Path,
    run_opts: Sequence[str], threads: Optional[int] = None,
) -> Path:
    """Train fold `fold` and return its held-out results file. A fold finished with the same spec
    is kept, an interrupted one resumes; a run of another spec is deleted first."""
    run_dir = fold_dir / "run"
    heldout = f"audit_fold{fold}_heldout"
    spec_path = fold_dir / SPEC_FILE
    try:
        state = json.loads(spec_path.read_text())
    except (OSError, ValueError):
        state = {}
    if state.get("spec") == spec and state.get("done"):
        try:
            return find_run_file(run_dir, DETECTIONS_FILE, "held-out predictions", heldout)
        except (OSError, ValueError):
            pass
    if state.get("spec") != spec:
        shutil.rmtree(run_dir, ignore_errors=True)
    write_json_atomic(spec_path, {"spec": spec, "done": False})
    run_train_net(run_dir, run_opts, f"fold {fold} of {folds}", config, threads)
    for checkpoint in run_dir.glob("model_[0-9]*.pth"):
        checkpoint.unlink()  # only model_final.pth is kept
    write_json_atomic(spec_path, {"spec": spec, "done": True})
    return find_run_file(run_dir, DETECTIONS_FILE, "held-out predictions", heldout)
