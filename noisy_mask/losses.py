"""Mask losses as pure torch functions, and the table that names them.

Every function takes the ground-truth-class logits of each RoI and its {0, 1} target:

    pred_logits (Tensor): (N, M, M) logits, N RoIs of M x M pixels (any float dtype)
    target_masks (Tensor): (N, M, M) targets in {0, 1} (bool or float)

and returns a scalar computed in float32, whatever the input dtype. Options are passed by
keyword. With N = 0 a loss is `pred_logits.sum() * 0`: zero, finite, and still in the graph.
"""
from typing import Callable, Dict

import torch
import torch.nn.functional as F

MaskLoss = Callable[..., torch.Tensor]


def _as_float32(pred_logits: torch.Tensor, target_masks: torch.Tensor):
    return pred_logits.float(), target_masks.float()


def _empty_loss(pred_logits: torch.Tensor) -> torch.Tensor:
    return pred_logits.float().sum() * 0


def bce_loss(pred_logits: torch.Tensor, target_masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy, mean over all N * M * M pixels (Detectron2's `mask_rcnn_loss`).

        L = -1/(N M^2) sum_i [ y_i log sigmoid(x_i) + (1 - y_i) log(1 - sigmoid(x_i)) ]
    """
    if pred_logits.numel() == 0:
        return _empty_loss(pred_logits)
    logits, target = _as_float32(pred_logits, target_masks)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="mean")


def soft_dice_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Soft Dice loss, averaged over RoIs (Milletari et al. 2016; the original experiment's code).

    With p = sigmoid(x) and sums over the M x M pixels of one RoI:

        dice = (2 sum(p * y) + eps) / (sum(p) + sum(y) + eps),    L = 1 - mean_RoIs(dice)
    """
    if pred_logits.numel() == 0:
        return _empty_loss(pred_logits)
    logits, target = _as_float32(pred_logits, target_masks)
    probs = torch.sigmoid(logits)
    intersection = (probs * target).sum(dim=(1, 2))
    union = probs.sum(dim=(1, 2)) + target.sum(dim=(1, 2))
    dice_score = (2.0 * intersection + eps) / (union + eps)
    return 1 - dice_score.mean()


def label_smoothing_bce_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, smoothing: float = 0.05
) -> torch.Tensor:
    """BCE against smoothed targets, mean over all pixels (the original experiment's code).

        y' = y (1 - s) + s / 2,    L = BCE(x, y')

    so a foreground pixel's target is 1 - s/2 and a background pixel's is s/2.
    """
    if pred_logits.numel() == 0:
        return _empty_loss(pred_logits)
    logits, target = _as_float32(pred_logits, target_masks)
    smoothed = target * (1 - smoothing) + 0.5 * smoothing
    return F.binary_cross_entropy_with_logits(logits, smoothed, reduction="mean")


# Config name -> loss function, called as fn(pred_logits, target_masks, **options).
MASK_LOSSES: Dict[str, MaskLoss] = {
    "bce": bce_loss,
    "dice": soft_dice_loss,
    "label_smoothing": label_smoothing_bce_loss,
}


def get_mask_loss(name: str) -> MaskLoss:
    """The loss called `name`, or a ValueError listing the valid names."""
    if name not in MASK_LOSSES:
        valid = ", ".join(sorted(MASK_LOSSES))
        raise ValueError(f"Unknown mask loss {name!r}: MODEL.ROI_MASK_HEAD.LOSS must be one of {valid}")
    return MASK_LOSSES[name]
