"""The calling convention shared by the mask losses, as a decorator."""

import functools
from typing import Callable

import torch


def float32_loss(loss: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Make `loss(logits, targets, **options)` follow the convention of `noisy_mask.losses`.

    The wrapped function receives float32 (N, M, M) logits and targets with N > 0 and runs with
    autocast disabled, so convolution-like sums stay in float32 under mixed precision. With
    N = 0 the wrapper returns `pred_logits.float().sum() * 0`: zero, and still in the graph.
    """

    @functools.wraps(loss)
    def wrapper(pred_logits: torch.Tensor, target_masks: torch.Tensor, **options) -> torch.Tensor:
        if pred_logits.numel() == 0:
            return pred_logits.float().sum() * 0
        with torch.autocast(device_type=pred_logits.device.type, enabled=False):
            return loss(pred_logits.float(), target_masks.float(), **options)

    return wrapper
