"""Controlled noise for COCO masks: the options and presets, the noise models, applying them to a
file, the command, and matching a noisy file to its clean one."""
