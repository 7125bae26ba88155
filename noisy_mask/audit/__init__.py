"""Which annotations of a COCO file are bad: every annotation scored against a model's predictions
on the same images (`scores`, pure: no torch or detectron2), the predictions from a results file,
a detectron2 model or models cross-fitted on the file itself (`predict`), the files written
(`report`, `pictures`, `html`), the score against a known clean file (`truth`), and the command
(`cli`, `python -m noisy_mask.audit`)."""
