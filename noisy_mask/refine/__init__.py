"""A corrected copy of an audited COCO file: the audit read back with the predictions' masks
(`audited`), the masks that can replace a damaged one (`sources`: GrabCut and the vote; their
masks for each suspicious annotation, `candidates`), the per-dataset choice of a source from
evidence (`choose`), the copy and its report (`apply`), the score against a clean file (`truth`),
and the command (`cli`, `python -m noisy_mask.refine`)."""
