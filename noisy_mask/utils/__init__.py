"""Utilities with no detectron2 or torch dependency: atomic writes, run folders, message words."""
