"""One audit from end to end: the predictions (a results file, a model, or cross-fitted models),
the scores, and the files of OUTPUT_DIR:

    audit.json, audit.csv      every annotation ranked by suspicion, and the possibly missing ones
    audit_suspects.png         the most suspicious annotations
    audit.html, audit_thumbs/  the page to walk through them all
    predictions.json           the predictions scored against (with --weights or --folds)
    class_probabilities.json   the model's class probabilities at each annotation's box (idem)
    folds/                     the cross-fitted runs (with --folds)
"""

import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from pycocotools import mask as mask_utils

from ..coco.io import coco_name, load_json, read_coco
from ..engine.dataset_config import write_dataset_config
from ..engine.launcher import SHAPES_CONFIG
from ..engine.progress import RunProgress
from ..evaluation.detections import Detection, read_detections
from ..utils.atomic import write_json_atomic
from . import predict
from .predict import Predictions
from .html import write_page
from .pictures import PICTURE_FILE, draw_suspects_grid
from .report import CLASS_PROBS_FILE, CSV_FILE, JSON_FILE, PREDICTIONS_FILE, UNUSED_KEYS
from .report import audit_rows, describe_source, summary, summary_line
from .report import write_csv, write_json
from .scores import Audit, AuditOptions, audit_annotations
from .truth import deleted_instances, missing_found, score_against_truth, truth_from_clean
from .truth import truth_from_report



def run_audit(
    annotations: os.PathLike,
    image_dir: os.PathLike,
    output_dir: os.PathLike,
    predictions: Predictions,
    options: AuditOptions = AuditOptions(),
    *,
    num_pictures: int = 12,
    html: bool = True,
    clean: Optional[os.PathLike] = None,
    noise_report: Optional[os.PathLike] = None,
    progress: Optional[RunProgress] = None,
) -> Dict[str, Any]:
    """Audit the COCO file `annotations` (images under `image_dir`) against `predictions`. With
    `noise_report` (of `noisy-mask noise`, which made the annotations) or `clean` (the file they
    were made noisy from), the audit is also scored against the truth. Cross-fitted folds report
    to `progress` (default: progress of their own). Returns {"summary", "line", "truth",
    "paths"}."""
    predictions.check()
    options.check()
    name = coco_name(annotations, "annotations")
    gt = read_coco(annotations, name, UNUSED_KEYS)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    fold_records = None
    class_probs = None  # from the detections, unless a model is run
    if predictions.detections is not None:
        source = describe_source(detections=os.fspath(predictions.detections))
        by_image = read_detections(Path(predictions.detections), gt, options.min_score)
    else:
        weights = predictions.weights
        config = _config(gt, annotations, image_dir, output_dir, predictions.config,
                         weights is not None)
        if weights is not None:
            results, class_probs = predict.predict_images(
                gt, image_dir, config, weights, predictions.opts, predictions.launch.device,
                options.min_score, name=name,
            )  # fmt: skip
            source = describe_source(weights=os.fspath(weights), config=os.fspath(config))
        else:
            own_progress = progress is None
            if own_progress:
                progress = RunProgress(predictions.folds,
                                       predictions.launch.side_by_side() or predictions.folds)
            try:
                results, fold_records = predict.cross_fit(
                    gt, annotations, image_dir, output_dir, predictions, config,
                    options.min_score, progress,
                )  # fmt: skip
            finally:
                if own_progress:
                    progress.close()
            source = describe_source(config=os.fspath(config), folds=fold_records)
            if Path(config).suffix in (".yaml", ".yml"):  # a lazy config's runs cannot be read
                class_probs = predict.fold_class_probabilities(
                    gt, image_dir, fold_records, predictions.launch.device, name
                )
        write_json_atomic(output_dir / PREDICTIONS_FILE, results, indent=None)
        if class_probs is not None:
            write_json_atomic(output_dir / CLASS_PROBS_FILE, class_probs, indent=None)
        by_image = own_detections(results, options.min_score)
    audit = audit_annotations(gt, by_image, options, name, class_probs)
    if fold_records is not None:
        fold_of = {i: r["fold"] for r in fold_records for i in r["predicted_images"]}
        for item in [*audit.annotations, *audit.missing]:
            item.fold = fold_of[item.image_id]
    truth = _truth(audit, gt, name, clean, noise_report)
    return _write(audit, gt, name, image_dir, output_dir, source, fold_records, truth,
                  num_pictures, html)  # fmt: skip


def own_detections(
    results: Sequence[Dict[str, Any]], min_score: float
) -> Dict[int, List[Detection]]:
    """The predictions a model of this package made (`predict`), by image id, as
    `evaluation.detections.read_detections` reads them from a file (score >= min_score, empty
    masks left out, the file's order) without checking them again: pycocotools encoded them."""
    by_image: Dict[int, List[Detection]] = {}
    for result in results:
        if result["score"] < min_score:
            continue
        segmentation = result["segmentation"]
        counts = segmentation["counts"]
        rle = {"size": list(segmentation["size"]),
               "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        if mask_utils.area(rle) > 0:
            by_image.setdefault(result["image_id"], []).append(
                Detection(result["category_id"], float(result["score"]), rle)
            )
    return by_image


def _config(gt, annotations, image_dir, output_dir: Path, config, for_weights: bool) -> Path:
    """The config given; else the built-in shapes config for the built-in data, else (cross-
    fitting only) a CPU config sized from the data, written to OUTPUT_DIR/config.yaml."""
    if config is not None:
        return Path(config)
    if predict.is_builtin_shapes(gt):
        return SHAPES_CONFIG
    if for_weights:
        raise ValueError("--weights needs the --config the weights were trained with")
    return write_dataset_config(os.fspath(annotations), os.fspath(image_dir),
                                output_dir / "config.yaml")  # fmt: skip


def _truth(audit: Audit, gt, name: str, clean, noise_report) -> Optional[Dict[str, Any]]:
    clean_gt = None
    if clean is not None:
        clean_name = coco_name(clean, "clean annotations")
        clean_gt = read_coco(clean, clean_name, UNUSED_KEYS)
    if noise_report is not None:
        truth = truth_from_report(load_json(noise_report), os.fspath(noise_report))
    elif clean_gt is not None:
        truth = truth_from_clean(clean_gt, gt, clean_name, name)
    else:
        return None
    scores = score_against_truth(audit, truth)
    if clean_gt is not None:  # the deleted instances' masks are only in the clean file
        scores["missing"] = missing_found(audit, deleted_instances(clean_gt, gt, clean_name))
    return scores


def _write(audit, gt, name, image_dir, output_dir: Path, source, fold_records, truth,
           num_pictures: int, html: bool) -> Dict[str, Any]:  # fmt: skip
    counts = summary(audit)
    line = summary_line(counts)
    meta: Dict[str, Any] = {
        "annotations_file": name,
        "image_dir": os.fspath(image_dir),
        "predictions": source,
    }
    if fold_records is not None:
        meta["folds"] = fold_records
    if truth is not None:
        meta["truth"] = truth
    paths = {
        "json": write_json(output_dir / JSON_FILE, audit, gt, meta),
        "csv": write_csv(output_dir / CSV_FILE, audit, gt),
    }
    title = f"Audit of {Path(name).name}"
    if num_pictures > 0:
        picture = draw_suspects_grid(
            audit, gt, image_dir, output_dir / PICTURE_FILE, num_pictures,
            title=f"Most suspicious annotations of {Path(name).name}",
        )  # fmt: skip
        if picture is not None:
            paths["picture"] = picture
    if html:
        rows = audit_rows(audit, gt)
        paths["html"] = write_page(output_dir, audit, rows, gt, image_dir, title, line)
    return {"summary": counts, "line": line, "truth": truth, "paths": paths}
