"""Data of noisy_mask: the built-in synthetic shapes dataset (no download needed), the
registration of COCO datasets and the checks of registered ones."""

from .shapes import SHAPE_CLASSES, generate_shapes_dataset

__all__ = ["SHAPE_CLASSES", "generate_shapes_dataset"]
