"""A corrected copy of an audited COCO file: the audit read back with the predictions' masks
(`audited`), the masks that can replace a damaged one (`sources`: GrabCut and the vote; their
masks for each suspicious annotation, `candidates`), the per-dataset choice of a source from
evidence (`choose`), the copy and its report (`apply`), the score against a clean file (`truth`),
and the command (`cli`, `python -m noisy_mask.refine`)."""

# The suspicious annotations' audited mask IoU, [MIN_IOU, MAX_IOU): below MIN_IOU the model and
# the annotation disagree about the object itself, from MAX_IOU on they agree. Here so that the
# command's --help reads them without loading the rest.
MIN_IOU, MAX_IOU = 0.5, 0.8
