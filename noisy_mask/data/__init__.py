"""Data of noisy_mask: the built-in synthetic shapes dataset (no download needed).

`SHAPE_CLASSES` and `generate_shapes_dataset` come from `shapes`, loaded on first use, so that
`python -m noisy_mask.data.shapes` runs the module once (runpy warns if the package imported it).
"""

from typing import Any

__all__ = ["SHAPE_CLASSES", "generate_shapes_dataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import shapes

        return getattr(shapes, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
