"""The three losses of the original experiment: per-pixel BCE, soft Dice and label smoothing.

Same convention as `noisy_mask.losses`.
"""

import torch
import torch.nn.functional as F

from .utils import float32_loss


@float32_loss
def bce_loss(pred_logits: torch.Tensor, target_masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy, mean over all N * M * M pixels (Detectron2's `mask_rcnn_loss`).

    L = -1/(N M^2) sum_i [ y_i log sigmoid(x_i) + (1 - y_i) log(1 - sigmoid(x_i)) ]
    """
    return F.binary_cross_entropy_with_logits(pred_logits, target_masks, reduction="mean")


@float32_loss
def soft_dice_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Soft Dice loss, averaged over RoIs (Milletari et al. 2016; the original experiment's code).

    With p = sigmoid(x) and sums over the M x M pixels of one RoI:

        dice = (2 sum(p * y) + eps) / (sum(p) + sum(y) + eps),    L = 1 - mean_RoIs(dice)
    """
    probs = torch.sigmoid(pred_logits)
    intersection = (probs * target_masks).sum(dim=(1, 2))
    union = probs.sum(dim=(1, 2)) + target_masks.sum(dim=(1, 2))
    dice_score = (2.0 * intersection + eps) / (union + eps)
    return 1 - dice_score.mean()


@float32_loss
def label_smoothing_bce_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, smoothing: float = 0.05
) -> torch.Tensor:
    """BCE against smoothed targets, mean over all pixels (the original experiment's code).

        y' = y (1 - s) + s / 2,    L = BCE(x, y')

    so a foreground pixel's target is 1 - s/2 and a background pixel's is s/2.
    """
    smoothed = target_masks * (1 - smoothing) + 0.5 * smoothing
    return F.binary_cross_entropy_with_logits(pred_logits, smoothed, reduction="mean")
