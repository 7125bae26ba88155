"""Pictures and curves: the shared style, precision/recall and loss curves, and noise and
prediction pictures (their pixels and layout). No torch or detectron2 import."""
