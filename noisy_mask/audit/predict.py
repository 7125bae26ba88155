"""The predictions an audit scores against, as a COCO results list: a detectron2 model run over the
images (`predict_images`, as detectron2's DefaultPredictor runs it), or K models cross-fitted on
the audited file itself (`cross_fit`); and the model's class probabilities at each annotation's
box (`ImageModel`, `fold_class_probabilities`), the audit's class scores when it has a model.

A model audits its own training data badly: it has learned the noise, so it agrees with the bad
annotations. Cross-fitting splits the images into K folds (a seeded shuffle of the image ids,
fold = position mod K), trains one model per fold on the other K - 1 folds with `train_net`
(`engine.launcher.run_train_net`, the runs side by side) and predicts the held-out fold with
it (train_net's own evaluation on that fold writes the results file): every image is predicted
by the one model that never saw it.
"""

import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import detectron2.data.transforms as T
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.modeling.roi_heads import FastRCNNOutputLayers
from detectron2.structures import Boxes
from pycocotools import mask as mask_utils

from ..coco.io import annotation_rle, read_image
from ..config import add_noisy_mask_config, check_noisy_mask_config
from ..data.shapes import SHAPE_CLASSES
from ..engine.launcher import Launch, Schedule, Task, file_digest, run_in_parallel
from ..engine.launcher import clear_run, run_train_net
from ..engine.placement import Slot
from ..engine.progress import RunProgress
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


class ImageModel:
    """A detectron2 model run over images as detectron2's DefaultPredictor runs it (the test-time
    resize, the config's channel order, one image at a time), which also reads the model's class
    probabilities at given boxes from the same forward pass.

    The class probabilities of a box b: the box head's probabilities p(k | b) on b as if it were
    a proposal (`FastRCNNOutputLayers.predict_probs`), over the K foreground classes, divided by
    their sum: which class the object in b is, if it is one. Models whose box head is not one
    detectron2 `FastRCNNOutputLayers` (e.g. cascades) give none (`reads_boxes` false)."""
    def __init__(self, cfg):
        self.cfg = cfg
        self.model = build_model(cfg.clone())
        self.model.eval()
        DetectionCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        heads = getattr(self.model, "roi_heads", None)
        self.reads_boxes = (
            isinstance(self.model, GeneralizedRCNN)
            and self.model.proposal_generator is not None
            and isinstance(getattr(heads, "box_predictor", None), FastRCNNOutputLayers)
            and hasattr(heads, "box_pooler") and hasattr(heads, "box_head")
        )  # fmt: skip

    def __call__(self, rgb: np.ndarray, boxes: Optional[np.ndarray] = None):
        """(instances at the image's size, as DefaultPredictor gives them; (N, K) class
        probabilities of the XYXY `boxes` (N, 4) in the image's pixels, or None without boxes or
        when the model cannot read them)."""
        inputs, transform = self._inputs(rgb)
        with torch.no_grad():
            if boxes is None or not len(boxes) or not self.reads_boxes:
                return self.model(inputs)[0]["instances"], None
            model = self.model  # GeneralizedRCNN.inference, keeping the features
            images = model.preprocess_image(inputs)
            features = model.backbone(images.tensor)
            proposals, _ = model.proposal_generator(images, features, None)
            results, _ = model.roi_heads(images, features, proposals, None)
            instances = GeneralizedRCNN._postprocess(results, inputs, images.image_sizes)
            probs = self._box_probabilities(features, self._scaled(transform, boxes))
            return instances[0]["instances"], probs

    def class_probabilities(self, rgb: np.ndarray, boxes: np.ndarray):
        """The (N, K) class probabilities of the XYXY `boxes` alone, as `__call__` gives them,
        without making the detections (the backbone and the box head only)."""
        inputs, transform = self._inputs(rgb)
        with torch.no_grad():
            images = self.model.preprocess_image(inputs)
            features = self.model.backbone(images.tensor)
            return self._box_probabilities(features, self._scaled(transform, boxes))

    def _inputs(self, rgb: np.ndarray):
        """(the model's input list for an RGB image, the test-time resize applied to it)."""
        pixels = rgb if self.cfg.INPUT.FORMAT == "RGB" else rgb[:, :, ::-1]
        pixels = np.ascontiguousarray(pixels)
        height, width = pixels.shape[:2]
        transform = self.resize.get_transform(pixels)
        image = torch.as_tensor(transform.apply_image(pixels).astype("float32").transpose(2, 0, 1))
        return [{"image": image, "height": height, "width": width}], transform

    def _scaled(self, transform, boxes: np.ndarray):
        """The XYXY boxes in the resized image's pixels, on the model's device."""
        scaled = transform.apply_box(np.asarray(boxes, dtype=np.float32))
        return torch.as_tensor(scaled, device=self.model.device)

    def _box_probabilities(self, features, boxes):
        heads = self.model.roi_heads
        proposals = [Boxes(boxes)]
        pooled = heads.box_pooler([features[f] for f in heads.box_in_features], proposals)
        predictions = heads.box_predictor(heads.box_head(pooled))
        probs = heads.box_predictor.predict_probs(predictions, proposals)[0][:, :-1]
        return probs / probs.sum(dim=1, keepdim=True).clamp(min=1e-12)


def annotation_boxes(
    gt: Mapping[str, Any], name: str = "annotations"
) -> Dict[int, Tuple[List[int], np.ndarray]]:
    """Image id -> (annotation ids, (N, 4) XYXY boxes of their masks) over the non-crowd
    annotations with a mask: the boxes the class probabilities are read at."""
    images = {image["id"]: image for image in gt["images"]}
    by_image: Dict[int, Tuple[List[int], List[List[float]]]] = {}
    for ann in gt["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        rle = annotation_rle(ann, images[ann["image_id"]], name)
        if rle is None or not mask_utils.area(rle):
            continue
        x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
        ids, boxes = by_image.setdefault(ann["image_id"], ([], []))
        ids.append(ann["id"])
        boxes.append([x, y, x + w, y + h])
    return {i: (ids, np.array(boxes, dtype=np.float32)) for i, (ids, boxes) in by_image.items()}


ClassProbs = Dict[int, Dict[int, float]]  # annotation id -> {category id: probability}


def _class_probs_of(ids: Sequence[int], probs, categories: Sequence[int]) -> ClassProbs:
    rows = probs.cpu().numpy().tolist()
    return {ann_id: dict(zip(categories, map(float, row))) for ann_id, row in zip(ids, rows)}


def predict_images(
    gt: Mapping[str, Any],
    image_dir: os.PathLike,
    config: os.PathLike,
    weights: str,
    opts: Sequence[str] = (),
    device: str = "cpu",
    min_score: float = 0.05,
    name: str = "annotations",
) -> Tuple[List[Dict[str, Any]], Optional[ClassProbs]]:
    """COCO results (dataset category ids, RLE masks) of the model `weights` with `config` on
    every image of `gt`, one image at a time as detectron2's DefaultPredictor runs it; and, from
    the same forward pass, the model's class probabilities at every annotation's box
    (`ImageModel`; None when the model cannot read them)."""
    cfg = predictor_config(config, weights, opts, device, min_score)
    categories = category_ids(gt)
    if cfg.MODEL.ROI_HEADS.NUM_CLASSES != len(categories):
        raise ValueError(
            f"the model has MODEL.ROI_HEADS.NUM_CLASSES {cfg.MODEL.ROI_HEADS.NUM_CLASSES}, the"
            f" annotations {len(categories)} categories: pass the config the weights were"
            " trained with"
        )
    model = ImageModel(cfg)
    boxes = annotation_boxes(gt, name) if model.reads_boxes else {}
    results: List[Dict[str, Any]] = []
    class_probs: ClassProbs = {}
    for image in gt["images"]:
        ids, image_boxes = boxes.get(image["id"], ([], None))
        instances, probs = model(read_image(image_dir, image), image_boxes)
        if probs is not None:
            class_probs.update(_class_probs_of(ids, probs, categories))
        for result in instances_to_coco_json(instances.to("cpu"), image["id"]):
            result["category_id"] = categories[result["category_id"]]
            results.append(result)
    return results, (class_probs if model.reads_boxes else None)


def fold_class_probabilities(
    gt: Mapping[str, Any],
    image_dir: os.PathLike,
    fold_records: Sequence[Mapping[str, Any]],
    device: str = "cpu",
    name: str = "annotations",
) -> Optional[ClassProbs]:
    """The class probabilities at every annotation's box, each image read by the cross-fitted
    model that predicted it (`cross_fit`'s records: the run's config.yaml and model_final.pth;
    its detections are those of the run's own evaluation, so only the boxes are read here);
    None when a fold's model cannot read boxes."""
    boxes = annotation_boxes(gt, name)
    images = {image["id"]: image for image in gt["images"]}
    categories = category_ids(gt)
    class_probs: ClassProbs = {}
    for record in fold_records:
        run_dir = Path(record["run_dir"])
        cfg = predictor_config(run_dir / "config.yaml", str(run_dir / "model_final.pth"),
                               device=device)  # fmt: skip
        model = ImageModel(cfg)
        if not model.reads_boxes:
            return None
        for image_id in record["predicted_images"]:
            if image_id in boxes:
                ids, image_boxes = boxes[image_id]
                probs = model.class_probabilities(read_image(image_dir, images[image_id]),
                                                  image_boxes)  # fmt: skip
                class_probs.update(_class_probs_of(ids, probs, categories))
    return class_probs


# ---------------------------------------------------------------------------------------------
# Cross-fitting.


@dataclass(frozen=True)
class Predictions:
    """Where an audit's predictions come from: exactly one of a COCO results file
    (`detections`), the model `weights` run on the images with `config`, or `folds` models
    cross-fitted on the audited file (trained with `config`, `max_iter` iterations each, `seed`;
    `config` None: the built-in shapes config for the built-in data, else a CPU config sized from
    the data). `opts` (KEY VALUE) override the config of a model run or trained; `launch` says
    where the fold models train and, by its device, where `weights` and the folds predict."""

    detections: Optional[os.PathLike] = None
    weights: Optional[str] = None
    folds: Optional[int] = None
    config: Optional[os.PathLike] = None
    opts: Sequence[str] = ()
    max_iter: Optional[int] = None
    seed: int = 0
    launch: Launch = Launch()

    def check(self) -> "Predictions":
        """ValueError, naming the option as the audit command does, unless one source is given
        with only the options that go with it, and every file it names exists."""
        given = [s for s in (self.detections, self.weights, self.folds) if s is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of --detections, --weights and --folds")
        if self.detections is not None and (self.config or self.max_iter or self.opts):
            what = "--config" if self.config else "--max-iter" if self.max_iter else (
                "KEY VALUE overrides")
            raise ValueError(f"{what} goes with --weights or --folds")
        if self.max_iter is not None and self.folds is None:
            raise ValueError("--max-iter goes with --folds")
        if self.folds is not None and self.folds < 2:
            raise ValueError(f"--folds must be at least 2, got {self.folds}")
        for path, what in ((self.detections, "results file"), (self.config, "config"),
                           (self.weights, "weights file")):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{what} {path} not found")
        return self


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
    predictions: Predictions,
    config: os.PathLike,
    min_score: float = 0.05,
    progress: Optional[RunProgress] = None,
) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """Train `predictions.folds` models, each on the other folds' images of `gt` (read from
    `annotations_path`), and predict its own fold with it; (the held-out predictions of every
    image, one record per fold: fold, run_dir, train_images, predicted_images).

    Runs go to OUTPUT_DIR/folds/fold<k>/run, where `predictions.launch` says; a fold whose
    fold.json (its images, the config, the overrides and the annotations' sha256) is unchanged is
    not trained again once finished, and resumes when interrupted. `predictions.max_iter` sets
    the schedule (`engine.launcher.Schedule`); `predictions.opts` are KEY VALUE overrides of
    every run, after the audit's own. Each fold trained reports to `progress`.
    """
    folds, seed, max_iter = predictions.folds, predictions.seed, predictions.max_iter
    assignment = fold_assignment([image["id"] for image in gt["images"]], folds, seed)
    digest = file_digest(annotations_path)
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
            *predictions.opts,
        ]  # fmt: skip
        spec = {
            "train_images": train, "predicted_images": predicted, "config": os.fspath(config),
            "opts": run_opts, "annotations_sha256": digest,
        }  # fmt: skip
        records.append(
            {"fold": fold, "run_dir": str(fold_dir / "run"), "train_images": train,
             "predicted_images": predicted}
        )  # fmt: skip
        tasks.append(Task(f"fold {fold + 1} of {folds} of {Path(annotations_path).name}",
                          fold_dir / "run",
                          partial(_fold_task, fold, folds, spec, fold_dir, Path(config), run_opts)))
    paths = run_in_parallel(tasks, predictions.launch, progress)
    results = []
    for path in paths:
        results += json.loads(Path(path).read_text())
    return results, records


def _fold_task(
    fold: int, folds: int, spec: Dict[str, Any], fold_dir: Path, config: Path,
    run_opts: Sequence[str], slot: Optional[Slot] = None,
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
        clear_run(run_dir)
    write_json_atomic(spec_path, {"spec": spec, "done": False})
    run_train_net(run_dir, run_opts, f"fold {fold} of {folds}", config, slot)
    for checkpoint in run_dir.glob("model_[0-9]*.pth"):
        checkpoint.unlink()  # only model_final.pth is kept
    write_json_atomic(spec_path, {"spec": spec, "done": True})
    return find_run_file(run_dir, DETECTIONS_FILE, "held-out predictions", heldout)
