"""Pictures and curves: precision/recall and loss curves, noise and prediction pictures."""
