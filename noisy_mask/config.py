"""Config keys of noisy_mask, their defaults and their checks: the one place that reads them."""
import math
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from .losses import MASK_LOSSES

# Heads of this package: the only ones that read MODEL.ROI_MASK_HEAD.LOSS and its options.
NOISY_MASK_HEADS = ("NoisyMaskRCNNConvUpsampleHead",)


@dataclass(frozen=True)
class Option:
    """A numeric key under MODEL.ROI_MASK_HEAD, with its default and its valid range."""

    default: float
    is_valid: Callable[[float], bool]
    valid_range: str
    comment: str


OPTIONS: Dict[str, Option] = {
    "LOSS_WEIGHT": Option(1.0, lambda v: v >= 0, ">= 0", "Multiplier of loss_mask"),
    "DICE_EPS": Option(1e-6, lambda v: v > 0, "> 0", "eps of the soft Dice ratio (LOSS: dice)"),
    "LABEL_SMOOTHING": Option(
        0.05, lambda v: 0 <= v < 1, "in [0, 1)", "Smoothing s (LOSS: label_smoothing)"
    ),
}

# Loss name -> {keyword of the loss function: config key in OPTIONS}.
LOSS_KWARGS: Dict[str, Dict[str, str]] = {
    "bce": {},
    "dice": {"eps": "DICE_EPS"},
    "label_smoothing": {"smoothing": "LABEL_SMOOTHING"},
}


def add_noisy_mask_config(cfg) -> None:
    """Add noisy_mask's keys to `cfg` (a detectron2 CfgNode); call before `merge_from_file`."""
    head = cfg.MODEL.ROI_MASK_HEAD
    # Mask loss on the ground-truth class channel, by name: one of noisy_mask.MASK_LOSSES.
    head.LOSS = "bce"
    for key, option in OPTIONS.items():
        head[key] = option.default  # see OPTIONS for each key's comment and range
    # COCO-format datasets to register by name: a list of [name, annotation_json, image_root].
    cfg.DATASETS.REGISTER_COCO = []


def _checked_option(cfg, key: str) -> float:
    value = cfg.MODEL.ROI_MASK_HEAD[key]
    option = OPTIONS[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"MODEL.ROI_MASK_HEAD.{key} must be a number, got {value!r}")
    if not math.isfinite(value) or not option.is_valid(value):
        raise ValueError(
            f"MODEL.ROI_MASK_HEAD.{key} = {value!r} is out of range: it must be {option.valid_range}"
        )
    return float(value)


def mask_loss_from_config(cfg) -> Tuple[str, Dict[str, float], float]:
    """(loss name, its keyword options, loss weight) from `cfg`, all checked.

    Raises ValueError naming the key when the loss is unknown or a value is out of range.
    """
    if "LOSS" not in cfg.MODEL.ROI_MASK_HEAD:
        raise KeyError("MODEL.ROI_MASK_HEAD.LOSS is missing: call add_noisy_mask_config(cfg) first")
    name = cfg.MODEL.ROI_MASK_HEAD.LOSS
    if name not in MASK_LOSSES:
        valid = ", ".join(sorted(MASK_LOSSES))
        raise ValueError(f"MODEL.ROI_MASK_HEAD.LOSS = {name!r} is unknown; valid losses: {valid}")
    options = {kw: _checked_option(cfg, key) for kw, key in LOSS_KWARGS[name].items()}
    return name, options, _checked_option(cfg, "LOSS_WEIGHT")


def check_noisy_mask_config(cfg) -> None:
    """Fail before any model is built if the loss settings are invalid or would be ignored."""
    name, _, weight = mask_loss_from_config(cfg)
    for key in OPTIONS:
        _checked_option(cfg, key)
    head = cfg.MODEL.ROI_MASK_HEAD.NAME
    if head not in NOISY_MASK_HEADS and (name != "bce" or weight != 1.0):
        raise ValueError(
            f"MODEL.ROI_MASK_HEAD.LOSS = {name!r} (LOSS_WEIGHT {weight}) is read only by "
            f"{', '.join(NOISY_MASK_HEADS)}, but MODEL.ROI_MASK_HEAD.NAME is {head!r}: set "
            f"NAME to {NOISY_MASK_HEADS[0]!r} or LOSS to 'bce'"
        )
