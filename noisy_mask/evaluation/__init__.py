"""Evaluation on clean masks: COCO mask, box and boundary AP (`coco_eval`), the precision/recall
data files (`pr_data`), a run's detections (`detections`), and the detectron2 evaluator
(`evaluator`, the only module here that imports detectron2)."""
