"""Which source replaces the damaged masks of one dataset, from evidence, and why.

Every source is judged on the suspicious annotations only (those it would change), by a gain per
annotation i, paired: the source's mask S_i against the annotation A_i it would replace (where a
source has no mask for i, S_i = A_i: it leaves that annotation as it is, gain 0).

With a reference (a few carefully annotated instances R_i of the same file):

    gain_i(S) = IoU(S_i, R_i) - IoU(A_i, R_i).

Without one, by triangulation (the "three-cornered hat" of clock comparisons): with the Jaccard
distance d = 1 - IoU and three masks whose errors are independent, d(X, Y) ~ d(X) + d(Y), d(X)
the distance of X to the unknown true mask, so each source's error follows from the three
distances between them, and the gain of P over A, d(A) - d(P), is d(A, G) - d(P, G): the third
source is the referee.

    gain_i(prediction) = d(A_i, G_i) - d(P_i, G_i)      GrabCut referees
    gain_i(grabcut)    = d(A_i, P_i) - d(G_i, P_i)      the prediction referees

A prediction that agrees with GrabCut better than the annotation does is closer to the truth,
as far as their errors are independent. GrabCut is seeded by the annotation, and a model that
trained on these images learned their annotations: a shared error brings those two together and
makes the annotation look better, never worse (for A and G sharing c: the gain of G is unbiased,
that of P is lowered by c), so the estimate is conservative against the annotation's usual
accomplices. An error that the prediction and GrabCut share and the annotation does not (both
following an image edge that is not the outline) makes both look better than they are: hence the
margin below, and a reference where it matters. The vote of the three is made of all three and
has no independent referee: without a reference it is never chosen.

The choice: for each source, the mean gain over its n annotations, and a paired bootstrap of that
mean (BOOTSTRAP_DRAWS resamplings of the annotations, default_rng(seed)); the lower bound is its
alpha / k quantile, k the number of sources compared (Bonferroni: the chance that any of them
passes by luck stays below alpha). A source qualifies when n >= min_instances, its mean gain is
at least min_gain and its lower bound is above 0; the qualifying source of the largest mean gain
is chosen, and "none" (the masks as they are) when no source qualifies.
"""

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..coco.io import AnnotationError, annotation_rle
from ..coco.rle import Rle, mask_iou

NONE, PREDICTION, GRABCUT, AGREEMENT = "none", "prediction", "grabcut", "agreement"
SOURCES = (PREDICTION, GRABCUT, AGREEMENT)  # those that change masks
REFEREE = {PREDICTION: GRABCUT, GRABCUT: PREDICTION}  # label-free: who referees whom

MIN_GAIN = 0.02  # a source must gain at least this mean IoU over the annotations it changes
ALPHA = 0.05  # one-sided, shared by the sources compared (Bonferroni)
MIN_INSTANCES = 5  # fewer paired annotations decide nothing
BOOTSTRAP_DRAWS = 4000
REFERENCE_IOU = 0.5  # a reference instance without the id of an annotation pairs by IoU


@dataclass(frozen=True)
class ChoiceOptions:
    """min_gain: the least mean gain in IoU; alpha: the one-sided level shared by the sources;
    min_instances: the least number of paired annotations; seed: the bootstrap's."""

    min_gain: float = MIN_GAIN
    alpha: float = ALPHA
    min_instances: int = MIN_INSTANCES
    seed: int = 0

    def check(self) -> "ChoiceOptions":
        if not 0.0 <= self.min_gain <= 1.0:
            raise ValueError(f"min_gain must be in [0, 1], got {self.min_gain}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.min_instances < 1:
            raise ValueError(f"min_instances must be >= 1, got {self.min_instances}")
        return self


@dataclass
class Evidence:
    """One source's gains: n annotations, their mean gain, the bootstrap lower bound, how many it
    makes better and worse (the sign test's counts), whether it qualifies, and why not."""

    source: str
    n: int
    mean_gain: Optional[float]
    lower_bound: Optional[float]
    better: int
    worse: int
    qualifies: bool
    why_not: Optional[str] = None
    referee: Optional[str] = None

    def row(self) -> Dict[str, Any]:
        out = asdict(self)
        for key in ("mean_gain", "lower_bound"):
            if out[key] is not None:
                out[key] = round(out[key], 4)
        return out


@dataclass
class Choice:
    """The source chosen, how (a source given, or "reference" or "label-free" evidence), why in a
    sentence, and each source's evidence."""

    source: str
    how: str
    reason: str
    evidence: List[Evidence] = field(default_factory=list)
    reference: Optional[Dict[str, Any]] = None

    def row(self) -> Dict[str, Any]:
        out = {"source": self.source, "how": self.how, "reason": self.reason,
               "evidence": [e.row() for e in self.evidence]}  # fmt: skip
        if self.reference is not None:
            out["reference"] = self.reference
        return out


# ---------------------------------------------------------------------------------------------
# Gains.


def distance(a: Optional[Rle], b: Optional[Rle]) -> float:
    """The Jaccard distance 1 - IoU of two masks; 0 for two empty ones."""
    iou = mask_iou(a, b)
    return 0.0 if math.isnan(iou) else 1.0 - iou


def reference_gains(
    candidates: Mapping[int, Mapping[str, Optional[Rle]]],
    reference: Mapping[int, Rle],
    source: str,
) -> np.ndarray:
    """gain_i = IoU(S_i, R_i) - IoU(A_i, R_i) over the annotations i of `candidates` (by id: the
    annotation's mask under "annotation", each source's under its name, None when it has none)
    that `reference` pairs with a reference mask."""
    gains = []
    for ann_id in sorted(candidates):
        if ann_id not in reference:
            continue
        masks = candidates[ann_id]
        mask = masks.get(source) or masks["annotation"]
        r = reference[ann_id]
        gains.append(distance(masks["annotation"], r) - distance(mask, r))
    return np.asarray(gains, dtype=np.float64)


def label_free_gains(
    candidates: Mapping[int, Mapping[str, Optional[Rle]]], source: str
) -> np.ndarray:
    """gain_i = d(A_i, X_i) - d(S_i, X_i), X the referee of `source` (REFEREE), over the
    annotations where the referee has a mask; S_i = A_i where the source has none."""
    referee = REFEREE[source]
    gains = []
    for ann_id in sorted(candidates):
        masks = candidates[ann_id]
        x = masks.get(referee)
        if x is None:
            continue
        mask = masks.get(source) or masks["annotation"]
        gains.append(distance(masks["annotation"], x) - distance(mask, x))
    return np.asarray(gains, dtype=np.float64)


def bootstrap_lower(gains: np.ndarray, quantile: float, seed: int = 0,
                    draws: int = BOOTSTRAP_DRAWS) -> float:  # fmt: skip
    """The `quantile` of the mean of `gains` over `draws` resamplings with replacement (a paired
    bootstrap: each draw takes whole annotations), default_rng(seed)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(gains), size=(draws, len(gains)))
    return float(np.quantile(gains[picks].mean(axis=1), quantile))


def judge(source: str, gains: np.ndarray, k: int, options: ChoiceOptions,
          referee: Optional[str] = None) -> Evidence:  # fmt: skip
    """A source's Evidence from its gains, with k sources compared."""
    n = len(gains)
    better, worse = int((gains > 0).sum()), int((gains < 0).sum())
    if n < options.min_instances:
        why = f"{n} annotations, fewer than {options.min_instances}"
        return Evidence(source, n, float(gains.mean()) if n else None, None, better, worse,
                        False, why, referee)  # fmt: skip
    mean = float(gains.mean())
    lower = bootstrap_lower(gains, options.alpha / k, options.seed)
    why = None
    if mean < options.min_gain:
        why = f"mean gain {mean:+.3f} below {options.min_gain:.3f}"
    elif lower <= 0:
        why = f"gain not beyond the spread over annotations (lower bound {lower:+.3f})"
    return Evidence(source, n, mean, lower, better, worse, why is None, why, referee)


def decide(evidence: Sequence[Evidence], how: str) -> Choice:
    """The qualifying source of the largest mean gain, or "none"."""
    qualified = [e for e in evidence if e.qualifies]
    if not qualified:
        reasons = "; ".join(f"{e.source}: {e.why_not}" for e in evidence) or "no source to judge"
        return Choice(NONE, how, f"no source beats the annotations as they are ({reasons})",
                      list(evidence))  # fmt: skip
    best = max(qualified, key=lambda e: (e.mean_gain, -SOURCES.index(e.source)))
    reason = (
        f"{best.source} gains {best.mean_gain:+.3f} mean IoU over {best.n} annotations "
        f"(bootstrap lower bound {best.lower_bound:+.3f}; {best.better} better, {best.worse} "
        "worse)"
    )
    return Choice(best.source, how, reason, list(evidence))


def choose_with_reference(
    candidates: Mapping[int, Mapping[str, Optional[Rle]]],
    reference: Mapping[int, Rle],
    sources: Sequence[str],
    options: ChoiceOptions = ChoiceOptions(),
) -> Choice:
    """The source of `sources` that beats the annotations on the reference (module docstring)."""
    options.check()
    evidence = [judge(s, reference_gains(candidates, reference, s), len(sources), options)
                for s in sources]  # fmt: skip
    return decide(evidence, "reference")


def choose_label_free(
    candidates: Mapping[int, Mapping[str, Optional[Rle]]],
    sources: Sequence[str],
    options: ChoiceOptions = ChoiceOptions(),
) -> Choice:
    """The source of `sources` (prediction, grabcut: those with a referee) that beats the
    annotations by triangulation (module docstring)."""
    options.check()
    judged = [s for s in sources if s in REFEREE and REFEREE[s] in sources]
    evidence = [judge(s, label_free_gains(candidates, s), len(judged), options, REFEREE[s])
                for s in judged]  # fmt: skip
    for s in sources:
        if s not in judged:
            why = ("made of the annotation and the other two: no independent referee"
                   if s == AGREEMENT else f"no referee (needs {REFEREE.get(s)})")  # fmt: skip
            evidence.append(Evidence(s, 0, None, None, 0, 0, False, why))
    return decide(evidence, "label-free")


# ---------------------------------------------------------------------------------------------
# The reference file.


def pair_reference(
    gt: Mapping[str, Any],
    reference: Mapping[str, Any],
    name: str,
    ref_name: str,
    min_iou: float = REFERENCE_IOU,
) -> Tuple[Dict[int, Rle], Dict[str, Any], Dict[int, int]]:
    """The reference mask of each annotation of `gt` that `reference` (a COCO dict of some of the
    same images, read by `coco.io.read_coco`) annotates too, by annotation id; counts; and the
    reference's category_id of each of those annotations.

    An image of the reference is the image of `gt` of the same file_name (of the same id when
    the files have no names), and must be of the same size. A reference instance pairs with the
    annotation of the same id on that image; the others pair by IoU, greedily from the largest,
    one to one, at IoU >= min_iou. Errors name the reference file and the image or
    annotation."""
    by_file = {image.get("file_name"): image for image in gt["images"] if image.get("file_name")}
    by_id = {image["id"]: image for image in gt["images"]}
    image_of: Dict[int, Mapping[str, Any]] = {}
    for image in reference["images"]:
        if image.get("file_name") and by_file:
            mine = by_file.get(image["file_name"])
        else:
            mine = by_id.get(image["id"])
        if mine is None:
            raise AnnotationError(
                f"image {image['id']} ({image.get('file_name')!r}) is not an image of {name}",
                ref_name,
            )
        if (mine["height"], mine["width"]) != (image["height"], image["width"]):
            raise AnnotationError(
                f"image {image['id']} is {image['width']}x{image['height']}, but "
                f"{mine['width']}x{mine['height']} in {name}",
                ref_name,
            )
        image_of[image["id"]] = mine
    gt_by_image: Dict[int, Dict[int, Mapping[str, Any]]] = {}
    for ann in gt["annotations"]:
        if not ann.get("iscrowd", 0):
            gt_by_image.setdefault(ann["image_id"], {})[ann["id"]] = ann
    ref_by_image: Dict[int, List[Tuple[Mapping[str, Any], Rle]]] = {}
    for ann in reference["annotations"]:
        if ann.get("iscrowd", 0):
            continue
        image = image_of[ann["image_id"]]
        rle = annotation_rle(ann, image, ref_name)
        if rle is not None:
            ref_by_image.setdefault(image["id"], []).append((ann, rle))

    paired: Dict[int, Rle] = {}
    classes: Dict[int, int] = {}
    by_id_count = by_iou_count = 0
    for image_id, refs in ref_by_image.items():
        image = by_id[image_id]
        mine = gt_by_image.get(image_id, {})
        rest = []
        for ann, rle in refs:
            if ann["id"] in mine and ann["id"] not in paired:
                paired[ann["id"]], classes[ann["id"]] = rle, ann["category_id"]
                by_id_count += 1
            else:
                rest.append((ann, rle))
        free = [(i, annotation_rle(a, image, name)) for i, a in mine.items() if i not in paired]
        pairs = []
        for r, (_, ref_rle) in enumerate(rest):
            for ann_id, rle in free:
                iou = mask_iou(ref_rle, rle)
                if not math.isnan(iou) and iou >= min_iou:
                    pairs.append((-iou, r, ann_id))
        used = set()
        for _, r, ann_id in sorted(pairs):
            if r not in used and ann_id not in paired:
                ref_ann, paired[ann_id] = rest[r]
                classes[ann_id] = ref_ann["category_id"]
                used.add(r)
                by_iou_count += 1
    counts = {
        "images": len(reference["images"]),
        "instances": sum(len(v) for v in ref_by_image.values()),
        "paired_by_id": by_id_count,
        "paired_by_iou": by_iou_count,
    }
    return paired, counts, classes
