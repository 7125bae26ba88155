"""Evaluation on clean masks: COCO mask, box and boundary AP, precision/recall data, and the detectron2 evaluator."""
