"""Mask losses as pure torch functions, and the one table that names them (`table.py`)."""

from .table import IMAGE_LOSSES, MASK_LOSSES, get_mask_loss, loss_terms, uses_image_colors

__all__ = ["IMAGE_LOSSES", "MASK_LOSSES", "get_mask_loss", "loss_terms", "uses_image_colors"]
