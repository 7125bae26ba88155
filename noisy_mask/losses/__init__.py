"""Mask losses as pure torch functions, and the one table that names them (`table.py`).

Every loss takes the ground-truth-class logits of each RoI and its {0, 1} target:

    pred_logits (Tensor): (N, M, M) logits, N RoIs of M x M pixels (any float dtype)
    target_masks (Tensor): (N, M, M) targets in {0, 1} (bool or float)

and returns a scalar computed in float32, whatever the input dtype. Options are passed by
keyword. With N = 0 a loss is `pred_logits.sum() * 0`: zero, finite, and still in the graph.
The families: `basic` (BCE, soft Dice, label smoothing), `robust`, `boundary`, `pairwise`.
"""

from .table import (
    IMAGE_LOSSES,
    LOSSES,
    MASK_LOSSES,
    ConfigKey,
    LossEntry,
    get_mask_loss,
    loss_terms,
    uses_image_colors,
    weighted_sum_loss,
)

__all__ = [
    "IMAGE_LOSSES",
    "LOSSES",
    "MASK_LOSSES",
    "ConfigKey",
    "LossEntry",
    "get_mask_loss",
    "loss_terms",
    "uses_image_colors",
    "weighted_sum_loss",
]
