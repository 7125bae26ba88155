"""Mask losses as pure torch functions, and the table that names them.

Every function takes the ground-truth-class logits of each RoI and its {0, 1} target:

    pred_logits (Tensor): (N, M, M) logits, N RoIs of M x M pixels (any float dtype)
    target_masks (Tensor): (N, M, M) targets in {0, 1} (bool or float)

and returns a scalar computed in float32, whatever the input dtype. Options are passed by
keyword. With N = 0 a loss is `pred_logits.sum() * 0`: zero, finite, and still in the graph.

`MASK_LOSSES` names them all; `get_mask_loss` also builds weighted sums such as "bce+dice".
"""

import functools
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .boundary import (
    boundary_band_bce_loss,
    bpm_bce_loss,
    morph_tolerant_bce_loss,
    svls_loss,
)
from .utils import float32_loss
from .pairwise import pairwise_color_loss
from .robust import (
    bootstrap_hard_loss,
    bootstrap_soft_loss,
    focal_loss,
    gce_loss,
    lovasz_hinge_loss,
    symmetric_ce_loss,
    tversky_loss,
)

MaskLoss = Callable[..., torch.Tensor]


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


# Config name -> loss function, called as fn(pred_logits, target_masks, **options).
MASK_LOSSES: Dict[str, MaskLoss] = {
    "bce": bce_loss,
    "dice": soft_dice_loss,
    "label_smoothing": label_smoothing_bce_loss,
    "gce": gce_loss,
    "sce": symmetric_ce_loss,
    "bootstrap_soft": bootstrap_soft_loss,
    "bootstrap_hard": bootstrap_hard_loss,
    "focal": focal_loss,
    "lovasz": lovasz_hinge_loss,
    "tversky": tversky_loss,
    "svls": svls_loss,
    "boundary_band": boundary_band_bce_loss,
    "bpm": bpm_bce_loss,
    "morph_tolerant": morph_tolerant_bce_loss,
    "pairwise_color": pairwise_color_loss,
}
# Losses that also take `image_colors`, (N, 3, M, M) CIELAB colours of each RoI's grid.
IMAGE_LOSSES = frozenset({"pairwise_color"})


def loss_terms(name: str) -> Tuple[str, ...]:
    """The losses that `name` adds up: ("dice",) for "dice", ("bce", "dice") for "bce+dice".

    Raises ValueError naming MODEL.ROI_MASK_HEAD.LOSS and the valid losses for an unknown or
    repeated term.
    """
    valid = ", ".join(MASK_LOSSES)
    if not isinstance(name, str):
        raise ValueError(f"MODEL.ROI_MASK_HEAD.LOSS must be a string, got {name!r}")
    terms = tuple(term.strip() for term in name.split("+"))
    for index, term in enumerate(terms):
        where = f": term {term!r}" if len(terms) > 1 else ""
        if term not in MASK_LOSSES:
            raise ValueError(
                f"MODEL.ROI_MASK_HEAD.LOSS = {name!r}{where} is unknown; valid losses: {valid}, "
                "or a sum of them such as 'bce+dice'"
            )
        if term in terms[:index]:
            raise ValueError(
                f"MODEL.ROI_MASK_HEAD.LOSS = {name!r}{where} appears twice: give each term once "
                "and set its weight in MODEL.ROI_MASK_HEAD.LOSS_WEIGHTS"
            )
    return terms


def weighted_sum_loss(
    pred_logits: torch.Tensor,
    target_masks: torch.Tensor,
    *,
    terms: Sequence[str],
    image_colors: Optional[torch.Tensor] = None,
    **options,
) -> torch.Tensor:
    """A weighted sum of losses of `MASK_LOSSES`, e.g. BCE + Dice as Mask2Former trains:

        L = sum_k w_k L_k(x, y)

    Options are keyed by term: "<term>.weight" is w_k (default 1) and "<term>.<keyword>" one of
    that term's own options, e.g. {"bce.weight": 1.0, "dice.weight": 2.0, "dice.eps": 1e-6}.
    `image_colors` goes to the terms of IMAGE_LOSSES.
    """
    term_options: Dict[str, Dict[str, float]] = {term: {} for term in terms}
    for key, value in options.items():
        term, _, keyword = key.partition(".")
        if term not in term_options or not keyword:
            raise TypeError(
                f"Unexpected option {key!r} for the loss {'+'.join(terms)!r}: options are "
                "'<term>.weight' or '<term>.<keyword>' for its terms"
            )
        term_options[term][keyword] = value
    total = None
    for term, kwargs in term_options.items():
        weight = kwargs.pop("weight", 1.0)
        if term in IMAGE_LOSSES:
            kwargs["image_colors"] = image_colors
        value = weight * MASK_LOSSES[term](pred_logits, target_masks, **kwargs)
        total = value if total is None else total + value
    return total


def uses_image_colors(name: str) -> bool:
    """Whether the loss `name` (or a term of the sum) needs the `image_colors` keyword."""
    return any(term in IMAGE_LOSSES for term in loss_terms(name))


def get_mask_loss(name: str) -> MaskLoss:
    """The loss called `name`, or for a sum "a+b" a plain function of its terms' options.

    Raises ValueError listing the valid names for an unknown loss.
    """
    terms = loss_terms(name)
    if len(terms) == 1:
        return MASK_LOSSES[terms[0]]
    return functools.partial(weighted_sum_loss, terms=terms)
