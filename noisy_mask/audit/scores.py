"""Every annotation of a COCO file scored against a model's predictions on the same images, and the
confident predictions that no annotation covers. Pure: COCO dicts and pycocotools RLEs in, numbers
out (no torch, no detectron2).

For an annotation a (mask A, class c), over the predictions p of its image with score >= min_score:

- best match m: the prediction of largest mask IoU(A, p) = |A & p| / |A | p|, of any class (so a
  class flip is caught), ties to the higher score; none when no prediction overlaps A;
- mask IoU: IoU(A, m); boundary IoU: as boundary AP matches (`evaluation.coco_eval`),
  min(IoU(A, m), |dA & dm| / |dA | dm|), dX the pixels of X within d px of its contour,
  d = max(1, round(boundary_ratio x image diagonal)), boundary_ratio 0.02 as in evaluation;
- matched: mask IoU >= match_iou (default 0.1); below that the model sees nothing there;
- the class scores s_same (of c) and s_other (the best other class, 0 if none), from one of:
  - the model's class probabilities at A's box (when the audit runs the model, `predict.
    ImageModel`): p(k | box of A) over the foreground classes; s_same = p(c), s_other = the
    largest p(k), k != c. Read at the annotation's own box, they say which class the model
    gives to exactly what was annotated, the self-confidence that label-error finders use for
    classification (cleanlab);
  - the detections (a results file): the object's predictions P, those with IoU(A, p) >=
    max(match_iou, 0.5 x mask IoU), the model's guesses at the same object (one per class, as
    Mask R-CNN scores each class of a box); s_same = the highest score in P of class c, s_other =
    the highest of another class;
- class agrees: s_same >= s_other, the model's most confident class for the object is c;
- class doubt d = max(0, s_other - s_same), in [0, 1];
- suspicion = 1 - IoU(A, m) x (1 - d) when matched, 1 otherwise.

So the suspicion is 1 - IoU for an annotation whose class the model agrees with, goes up towards 1
as the model is more confident in another class than in c, and is 1 for an annotation without a
match. Sorting by it puts the missed and flipped annotations first, then the worse outlines; the
mask IoU alone orders the outlines (it estimates the annotation's IoU with the true mask as far as
the model's masks do).

A possibly missing instance is a prediction with score >= missing_score (default 0.5) whose mask
IoU with every annotation of its image is below match_iou and which lies less than half inside any
crowd region; of several such predictions of one object (IoU >= 0.5 between them, any class) only
the highest-scoring is kept.
"""

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from faster_coco_eval.core.mask import rleToBoundary
from pycocotools import mask as mask_utils

from ..coco.io import annotation_rle
from ..coco.rle import Rle, decode_window, mask_iou, window_around
from ..evaluation.boundary import DILATION_RATIO, band_px
from ..evaluation.detections import Detection

OBJECT_FRACTION = 0.5  # a prediction of the object: IoU >= this x the best match's IoU
DUPLICATE_IOU = 0.5  # two possibly missing predictions this close are one object
CROWD_COVER = 0.5  # a prediction this much inside a crowd region is covered by it


@dataclass(frozen=True)
class AuditOptions:
    """min_score: predictions below it are ignored; match_iou: the least mask IoU of a match;
    missing_score: the least score of a possibly missing instance; boundary_ratio: the contour
    band of the boundary IoU as a fraction of the image diagonal (boundary AP's)."""

    min_score: float = 0.05
    match_iou: float = 0.1
    missing_score: float = 0.5
    boundary_ratio: float = DILATION_RATIO

    def check(self) -> "AuditOptions":
        for name in ("min_score", "match_iou", "missing_score", "boundary_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        for name in ("match_iou", "boundary_ratio"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        return self


@dataclass
class AnnotationScore:
    """One annotation's scores (see the module docstring). area: its mask's pixels (a few pixels
    of outline error cost a small object more IoU: compare suspects of like size); pred_*: the
    best match, also when it is below match_iou (None when no prediction overlaps);
    class_agrees: None when not matched;
    rank: 1 is the most suspicious; fold: the cross-fitting fold that predicted the image."""

    id: int
    image_id: int
    category_id: int
    area: float
    pred_category_id: Optional[int]
    pred_score: Optional[float]
    mask_iou: float
    boundary_iou: float
    same_class_score: float
    other_class_score: float
    other_category_id: Optional[int]
    class_agrees: Optional[bool]
    matched: bool
    suspicion: float
    rank: int = 0
    fold: Optional[int] = None
    ann_rle: Optional[Rle] = field(default=None, repr=False, compare=False)
    pred_rle: Optional[Rle] = field(default=None, repr=False, compare=False)

    def row(self) -> Dict[str, Any]:
        """The public fields, in order, without the masks."""
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.endswith("rle")}


@dataclass
class MissingPrediction:
    """A confident prediction that no annotation covers. max_iou: its largest mask IoU with an
    annotation of its image; bbox: [x, y, w, h] of its mask; rank: 1 is the highest score."""

    image_id: int
    pred_category_id: int
    pred_score: float
    max_iou: float
    bbox: List[float]
    area: float
    rank: int = 0
    fold: Optional[int] = None
    rle: Optional[Rle] = field(default=None, repr=False, compare=False)

    def row(self) -> Dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rle"}


@dataclass
class Audit:
    """The scores of a file: annotations and possibly missing instances, each ranked; `crowd`:
    the crowd annotations, which are not audited; `class_scores`: where the class scores came
    from, "box_probabilities" or "detections"."""

    annotations: List[AnnotationScore]
    missing: List[MissingPrediction]
    crowd: int
    options: AuditOptions
    class_scores: str = "detections"

    def options_dict(self) -> Dict[str, float]:
        return asdict(self.options)


class Band(NamedTuple):
    """A mask's contour band as boundary AP computes it (`contour_band`), kept as the window of
    the image that holds it: its top-left corner and its (h, w) bool pixels."""

    top: int
    left: int
    pixels: np.ndarray


def contour_band(rle: Rle, ratio: float = DILATION_RATIO) -> Band:
    """The contour band of a mask as boundary AP computes it: faster-coco-eval's own function,
    the mask minus its erosion by d = max(1, round(ratio x image diagonal)) px, the border
    counting as contour.

    It is computed on the window of the mask's box grown by d + 1 px (inside the image) with the
    same d: a mask pixel's erosion looks d px around it, so the window's own edges, more than d
    px from the mask, change nothing, and on a large image the band costs the object's size, not
    the image's."""
    height, width = (int(v) for v in rle["size"])
    d = band_px(ratio, height, width)
    around = window_around([rle], d + 1)
    if around is None:
        return Band(0, 0, np.zeros((0, 0), dtype=bool))
    top, left, bottom, right = around
    window = decode_window(rle, top, left, bottom, right).astype(np.uint8)
    local = mask_utils.encode(np.asfortranarray(window))
    # the ratio that gives the window's diagonal the same d px
    band = rleToBoundary(local, d / math.hypot(bottom - top, right - left))
    return Band(top, left, mask_utils.decode(band).astype(bool))


def band_iou(a: Band, b: Band) -> float:
    """|a & b| / |a | b| of two bands of one image; NaN when both are empty."""
    bands = [band for band in (a, b) if band.pixels.size]
    if not bands:
        return math.nan
    top = min(band.top for band in bands)
    left = min(band.left for band in bands)
    bottom = max(band.top + band.pixels.shape[0] for band in bands)
    right = max(band.left + band.pixels.shape[1] for band in bands)
    placed = np.zeros((2, bottom - top, right - left), dtype=bool)  # a second empty one stays 0
    for canvas, band in zip(placed, bands):
        row, col = band.top - top, band.left - left
        canvas[row : row + band.pixels.shape[0], col : col + band.pixels.shape[1]] = band.pixels
    return np.count_nonzero(placed[0] & placed[1]) / np.count_nonzero(placed[0] | placed[1])


def iou_matrix(a: Sequence[Rle], b: Sequence[Rle], crowd: bool = False) -> np.ndarray:
    """(len(a), len(b)) mask IoUs of pycocotools RLEs; with `crowd`, |a & b| / |a| instead (the
    share of a inside b, as COCO matches crowd regions)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    ious = mask_utils.iou(list(a), list(b), [int(crowd)] * len(b))
    return np.asarray(ious, dtype=np.float64).reshape(len(a), len(b))


def _boundary_iou(
    pred_rle: Rle, iou: float, ann_band: Band, bands: Dict[int, Band], k: int, ratio: float
) -> float:
    if k not in bands:
        bands[k] = contour_band(pred_rle, ratio)
    overlap = band_iou(ann_band, bands[k])
    return min(iou, 0.0 if math.isnan(overlap) else overlap)


def score_annotation(
    ann: Mapping[str, Any],
    ann_rle: Optional[Rle],
    ious: np.ndarray,
    detections: Sequence[Detection],
    options: AuditOptions,
    bands: Dict[int, Band],
    class_probs: Optional[Mapping[int, float]] = None,
) -> AnnotationScore:
    """The scores of one annotation; `ious` (P,) its mask IoU with each of the image's
    `detections`; `bands` caches the predictions' contour bands by index; `class_probs`: the
    model's probability of each category id at the annotation's box (None: the class scores come
    from the detections)."""
    scores = np.array([d.score for d in detections], dtype=np.float64)
    base = dict(id=ann["id"], image_id=ann["image_id"], category_id=ann["category_id"],
                area=0.0 if ann_rle is None else float(mask_utils.area(ann_rle)))
    if ann_rle is None or not len(detections) or ious.max() <= 0:
        return AnnotationScore(
            **base, pred_category_id=None, pred_score=None, mask_iou=0.0, boundary_iou=0.0,
            same_class_score=0.0, other_class_score=0.0, other_category_id=None,
            class_agrees=None, matched=False, suspicion=1.0, ann_rle=ann_rle,
        )  # fmt: skip
    best = int(np.lexsort((np.arange(len(ious)), -scores, -ious))[0])
    match = detections[best]
    iou = mask_iou(ann_rle, match.rle)
    ratio = options.boundary_ratio
    boundary = _boundary_iou(match.rle, iou, contour_band(ann_rle, ratio), bands, best, ratio)
    matched = iou >= options.match_iou
    same = other = 0.0
    other_category = None
    if matched and class_probs is not None:
        same = class_probs.get(ann["category_id"], 0.0)
        others = [(p, k) for k, p in class_probs.items() if k != ann["category_id"]]
        if others:
            other, other_category = max(others)
    elif matched:
        for k in np.flatnonzero(ious >= max(options.match_iou, OBJECT_FRACTION * iou)):
            detection = detections[int(k)]
            if detection.category_id == ann["category_id"]:
                same = max(same, detection.score)
            elif detection.score > other:
                other, other_category = detection.score, detection.category_id
    doubt = max(0.0, other - same)
    return AnnotationScore(
        **base, pred_category_id=match.category_id, pred_score=match.score, mask_iou=iou,
        boundary_iou=boundary, same_class_score=same, other_class_score=other,
        other_category_id=other_category, class_agrees=(same >= other) if matched else None,
        matched=matched, suspicion=1.0 - iou * (1.0 - doubt) if matched else 1.0,
        ann_rle=ann_rle, pred_rle=match.rle,
    )  # fmt: skip


def missing_predictions(
    image_id: int,
    detections: Sequence[Detection],
    ious: np.ndarray,
    crowd_cover: np.ndarray,
    options: AuditOptions,
) -> List[MissingPrediction]:
    """The image's confident predictions that no annotation covers, one per object.

    ious: (P, A) mask IoUs with the image's annotations; crowd_cover: (P, C) share of each
    prediction inside each crowd region."""
    candidates = []
    for k, detection in enumerate(detections):
        if detection.score < options.missing_score:
            continue
        best = float(ious[k].max()) if ious.shape[1] else 0.0
        covered = crowd_cover.shape[1] and crowd_cover[k].max() >= CROWD_COVER
        if best < options.match_iou and not covered:
            candidates.append((k, best))
    candidates.sort(key=lambda c: (-detections[c[0]].score, c[0]))
    kept: List[Tuple[int, float]] = []
    for k, best in candidates:
        rles = [detections[j].rle for j, _ in kept]
        if kept and iou_matrix([detections[k].rle], rles).max() >= DUPLICATE_IOU:
            continue
        kept.append((k, best))
    out = []
    for k, best in kept:
        detection = detections[k]
        out.append(
            MissingPrediction(
                image_id=image_id, pred_category_id=detection.category_id,
                pred_score=detection.score, max_iou=best,
                bbox=[float(v) for v in mask_utils.toBbox(detection.rle)],
                area=float(mask_utils.area(detection.rle)), rle=detection.rle,
            )
        )  # fmt: skip
    return out


def audit_annotations(
    gt: Mapping[str, Any],
    detections: Mapping[int, Sequence[Detection]],
    options: AuditOptions = AuditOptions(),
    name: str = "annotations",
    class_probs: Optional[Mapping[int, Mapping[int, float]]] = None,
) -> Audit:
    """Score every non-crowd annotation of `gt` (a COCO dict read by `coco.io.read_coco`) against
    the `detections` by image id (`evaluation.detections.read_detections`; those below
    options.min_score are ignored), and find the possibly missing instances; both ranked.
    `class_probs`: annotation id -> {category id: the model's probability at its box}, the class
    scores of the annotations it holds (`predict.predict_images`); without it they come from
    the detections. Errors name the file `name` and the annotation."""
    options.check()
    images = {image["id"]: image for image in gt["images"]}
    by_image: Dict[int, List[Mapping[str, Any]]] = {image_id: [] for image_id in images}
    for ann in gt["annotations"]:
        by_image[ann["image_id"]].append(ann)
    scored: List[AnnotationScore] = []
    missing: List[MissingPrediction] = []
    crowd_count = 0
    for image_id, anns in by_image.items():
        image = images[image_id]
        found = [d for d in detections.get(image_id, ()) if d.score >= options.min_score]
        crowd = [a for a in anns if a.get("iscrowd", 0)]
        crowd_count += len(crowd)
        plain = [(a, annotation_rle(a, image, name)) for a in anns if not a.get("iscrowd", 0)]
        with_mask = [rle for _, rle in plain if rle is not None]
        ious = iou_matrix([d.rle for d in found], with_mask)  # (P, annotations with a mask)
        bands: Dict[int, Band] = {}
        column = 0
        for ann, rle in plain:
            if rle is None:
                scored.append(score_annotation(ann, None, np.zeros(0), found, options, bands))
                continue
            probs = None if class_probs is None else class_probs.get(ann["id"])
            scored.append(
                score_annotation(ann, rle, ious[:, column], found, options, bands, probs)
            )
            column += 1
        crowd_rles = [r for r in (annotation_rle(a, image, name) for a in crowd) if r is not None]
        crowd_cover = iou_matrix([d.rle for d in found], crowd_rles, crowd=True)
        missing += missing_predictions(image_id, found, ious, crowd_cover, options)

    scored.sort(key=lambda s: (-s.suspicion, s.mask_iou, s.id))
    for rank, score in enumerate(scored, start=1):
        score.rank = rank
    missing.sort(key=lambda m: (-m.pred_score, m.image_id))
    for rank, prediction in enumerate(missing, start=1):
        prediction.rank = rank
    source = "detections" if class_probs is None else "box_probabilities"
    return Audit(scored, missing, crowd_count, options, source)
