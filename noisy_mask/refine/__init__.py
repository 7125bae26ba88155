"""A corrected copy of an audited COCO file: the audit read back with the predictions' masks
(`audited`), the masks that can replace a damaged one (`sources`: GrabCut and the vote; their
masks for each suspicious annotation, `candidates`), the per-dataset choice of a source from
evidence (`choose`), the copy and its report (`apply`), the score against a clean file (`truth`),
and the command (`cli`, `python -m noisy_mask.refine`)."""

# The suspicious annotations' audited mask IoU, [MIN_IOU, MAX_IOU): below MIN_IOU the model and
# the annotation disagree about the object itself, from MAX_IOU on they agree. Here so that the
# command's --help reads them without loading the rest.
MIN_IOU, MAX_IOU = 0.5, 0.8


def in_reach(iou: float, min_iou: float, max_iou: float) -> bool:
    """Whether an annotation of audited mask IoU `iou` may get a new mask: iou in
    [min_iou, max_iou), or in [min_iou, 1] when max_iou is 1 (every matched annotation)."""
    return min_iou <= iou and (iou < max_iou or max_iou >= 1.0)


def iou_range(min_iou: float, max_iou: float) -> str:
    """The range `in_reach` keeps: '[0.5, 0.8)', or '[0.5, 1]' with max_iou 1."""
    return f"[{min_iou:g}, " + ("1]" if max_iou >= 1.0 else f"{max_iou:g})")
