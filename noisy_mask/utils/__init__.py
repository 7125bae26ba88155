"""Helpers with no detectron2 or torch dependency: atomic file writes, run folders."""
