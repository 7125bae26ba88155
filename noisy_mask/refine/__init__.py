"""A corrected copy of an audited COCO file: the audit read back with the predictions' masks
(`audited`), the options and which annotations they reach (`options`), the masks that can replace
a damaged one (`sources`: GrabCut and the vote; their masks for each suspicious annotation,
`candidates`), the per-dataset choice of a source from evidence (`choose`), the class corrections
(`classes`), the corrected annotations and their change records (`changes`), the copy and its
report (`apply`), the score against a clean file (`truth`). The command is
`noisy_mask.commands.refine` (`noisy-mask refine`, `python -m noisy_mask.refine`)."""
