"""Controlled noise for COCO masks: the noise models, applying them to a file, and matching a noisy file to its clean one."""
