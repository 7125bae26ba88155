"""What a refinement may change (`RefineOptions`), and which annotations its masks reach: those
the audit matched with a mask IoU in [MIN_IOU, MAX_IOU) by default (`in_reach`)."""

from dataclasses import dataclass, field

from .choose import NONE, SOURCES, ChoiceOptions
from .sources import BAND_RATIO

# The suspicious annotations' audited mask IoU, [MIN_IOU, MAX_IOU): below MIN_IOU the model and
# the annotation disagree about the object itself, from MAX_IOU on they agree.
MIN_IOU, MAX_IOU = 0.5, 0.8

AUTO = "auto"
CHOICES = (AUTO, NONE, *SOURCES)


def in_reach(iou: float, min_iou: float, max_iou: float) -> bool:
    """Whether an annotation of audited mask IoU `iou` may get a new mask: iou in
    [min_iou, max_iou), or in [min_iou, 1] when max_iou is 1 (every matched annotation)."""
    return min_iou <= iou and (iou < max_iou or max_iou >= 1.0)


def iou_range(min_iou: float, max_iou: float) -> str:
    """The range `in_reach` keeps: '[0.5, 0.8)', or '[0.5, 1]' with max_iou 1."""
    return f"[{min_iou:g}, " + ("1]" if max_iou >= 1.0 else f"{max_iou:g})")


@dataclass(frozen=True)
class RefineOptions:
    """source: one of CHOICES; max_iou, min_iou: the suspicious annotations' audited mask IoU
    range [min_iou, max_iou); fix_classes and class_score: take the model's class when it
    disputes the annotation's with at least that score; add_missing and missing_score: add the
    possibly missing predictions of at least that score; band_ratio: GrabCut's band."""

    source: str = AUTO
    max_iou: float = MAX_IOU
    min_iou: float = MIN_IOU
    fix_classes: bool = False
    class_score: float = 0.7
    add_missing: bool = False
    missing_score: float = 0.7
    band_ratio: float = BAND_RATIO
    choice: ChoiceOptions = field(default_factory=ChoiceOptions)

    def iou_range(self) -> str:
        """The audited mask IoU of the annotations in reach: '[0.5, 0.8)' (`iou_range`)."""
        return iou_range(self.min_iou, self.max_iou)

    def check(self) -> "RefineOptions":
        if self.source not in CHOICES:
            raise ValueError(f"source must be one of {', '.join(CHOICES)}, got {self.source!r}")
        for name in ("max_iou", "min_iou", "class_score", "missing_score"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.min_iou >= self.max_iou:
            raise ValueError(f"min_iou {self.min_iou} must be below max_iou {self.max_iou}")
        if not 0.0 < self.band_ratio <= 1.0:
            raise ValueError(f"band_ratio must be in (0, 1], got {self.band_ratio}")
        self.choice.check()
        return self
