"""Config keys of noisy_mask, their defaults and their checks: the one place that reads them."""

import math
from typing import Dict, Mapping, Tuple

from .data.checks import add_dataset_checks_config
from .evaluation.boundary import DILATION_RATIO
from .losses.table import LOSSES, ConfigKey, LossEntry, loss_terms, uses_image_colors

# Heads of this package: the only ones that read MODEL.ROI_MASK_HEAD.LOSS and its options.
NOISY_MASK_HEADS = ("NoisyMaskRCNNConvUpsampleHead",)
# The ROI heads that give the mask head the image's colours, which losses.IMAGE_LOSSES need.
COLOR_ROI_HEADS = ("NoisyMaskROIHeads",)

# The predicted masks' binarization threshold (MMDetection's mask_thr_binary); detectron2 fixes
# it at 0.5. A loss that ranks a RoI's pixels well but does not calibrate them (Dice) may need
# another.
MASK_THRESHOLD_DEFAULT = 0.5

# Multiplies loss_mask whatever the loss: a key of its own, not an option of a loss function.
LOSS_WEIGHT = ConfigKey("LOSS_WEIGHT", lambda v: v >= 0, ">= 0", "Multiplier of loss_mask")
LOSS_WEIGHT_DEFAULT = 1.0


def _numeric_keys(losses: Mapping[str, LossEntry]) -> Tuple[Dict[str, ConfigKey], Dict[str, float]]:
    """(key -> ConfigKey, key -> default) of LOSS_WEIGHT and of every option of `losses`.

    A loss option's default is its function's keyword default. Raises ValueError if two keys
    share a name, which would give two options one value.
    """
    options, defaults = {LOSS_WEIGHT.name: LOSS_WEIGHT}, {LOSS_WEIGHT.name: LOSS_WEIGHT_DEFAULT}
    for name, entry in losses.items():
        for keyword, key in entry.options.items():
            if key.name in options:
                raise ValueError(
                    f"MODEL.ROI_MASK_HEAD.{key.name} (option {keyword!r} of the loss {name!r}) "
                    "is already a key: give each option a key of its own"
                )
            options[key.name], defaults[key.name] = key, entry.defaults[keyword]
    return options, defaults


# Every numeric key under MODEL.ROI_MASK_HEAD: its range and comment, and its default.
OPTIONS, DEFAULTS = _numeric_keys(LOSSES)


def add_noisy_mask_config(cfg) -> None:
    """Add noisy_mask's keys to `cfg` (a detectron2 CfgNode); call before `merge_from_file`."""
    head = cfg.MODEL.ROI_MASK_HEAD
    # Mask loss on the ground-truth class channel, by name: one of noisy_mask.MASK_LOSSES, or a
    # weighted sum of them written "bce+dice".
    head.LOSS = "bce"
    # Weights of the terms of a sum, one per term; empty: all 1. Must stay empty for one loss.
    head.LOSS_WEIGHTS = []
    for key, default in DEFAULTS.items():
        head[key] = default  # OPTIONS[key] gives its comment and valid range
    # Pixels of a predicted mask above this probability are the object's, in (0, 1).
    head.MASK_THRESHOLD = MASK_THRESHOLD_DEFAULT
    # COCO-format datasets to register by name: a list of [name, annotation_json, image_root].
    cfg.DATASETS.REGISTER_COCO = []
    add_dataset_checks_config(cfg)  # DATASETS.VALIDATE, VALIDATE_IMAGES, SKIP_DEGENERATE_...
    # Boundary AP's band (Boundary IoU) as a fraction of the image diagonal, in (0, 1]; 0.02 is the
    # metric's authors'. Thin objects need less: the evaluation warns and suggests a value.
    cfg.TEST.BOUNDARY_DILATION_RATIO = DILATION_RATIO


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


def _checked_loss_options(cfg, loss: str) -> Dict[str, float]:
    """Keyword -> checked value of each option of the loss `loss`, from its config keys."""
    return {kw: _checked_option(cfg, key.name) for kw, key in LOSSES[loss].options.items()}


def _checked_loss_weights(cfg, name: str, terms: Tuple[str, ...]) -> Tuple[float, ...]:
    """One weight per term of LOSS, from LOSS_WEIGHTS (empty: all 1)."""
    key = "MODEL.ROI_MASK_HEAD.LOSS_WEIGHTS"
    weights = cfg.MODEL.ROI_MASK_HEAD.get("LOSS_WEIGHTS", [])
    if not isinstance(weights, (list, tuple)) or not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights
    ):
        raise ValueError(f"{key} must be a list of numbers, got {weights!r}")
    if not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"{key} = {list(weights)} is out of range: every weight must be >= 0")
    if weights and len(terms) == 1:
        raise ValueError(
            f"{key} = {list(weights)} weights the terms of a sum such as 'bce+dice', but LOSS = "
            f"{name!r} is a single loss: leave {key} empty and scale it with LOSS_WEIGHT"
        )
    if weights and len(weights) != len(terms):
        raise ValueError(
            f"{key} = {list(weights)} does not match LOSS = {name!r}: {len(weights)} weight(s) "
            f"for {len(terms)} terms; give one weight per term, or none for all 1"
        )
    return tuple(float(w) for w in weights) or (1.0,) * len(terms)


def mask_loss_from_config(cfg) -> Tuple[str, Dict[str, float], float]:
    """(loss name, its keyword options, loss weight) from `cfg`, all checked.

    For a sum such as "bce+dice" the options are those of `weighted_sum_loss`, keyed by term:
    {"bce.weight": 1.0, "dice.weight": 1.0, "dice.eps": 1e-6}, the weights from LOSS_WEIGHTS.
    Raises ValueError naming the key when the loss is unknown or a value is out of range.
    """
    if "LOSS" not in cfg.MODEL.ROI_MASK_HEAD:
        raise KeyError("MODEL.ROI_MASK_HEAD.LOSS is missing: call add_noisy_mask_config(cfg) first")
    name = cfg.MODEL.ROI_MASK_HEAD.LOSS
    terms = loss_terms(name)
    weights = _checked_loss_weights(cfg, name, terms)
    loss_weight = _checked_option(cfg, "LOSS_WEIGHT")
    if len(terms) == 1:
        return terms[0], _checked_loss_options(cfg, terms[0]), loss_weight
    options = {}
    for term, weight in zip(terms, weights):
        options[f"{term}.weight"] = weight
        for keyword, value in _checked_loss_options(cfg, term).items():
            options[f"{term}.{keyword}"] = value
    return "+".join(terms), options, loss_weight


def mask_threshold(cfg) -> float:
    """MODEL.ROI_MASK_HEAD.MASK_THRESHOLD, checked: a number in (0, 1)."""
    key = "MODEL.ROI_MASK_HEAD.MASK_THRESHOLD"
    if "MASK_THRESHOLD" not in cfg.MODEL.ROI_MASK_HEAD:
        raise KeyError(f"{key} is missing: call add_noisy_mask_config(cfg) first")
    value = cfg.MODEL.ROI_MASK_HEAD.MASK_THRESHOLD
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if not (math.isfinite(value) and 0 < value < 1):
        raise ValueError(f"{key} = {value!r} is out of range: it must be in (0, 1) "
                         f"({MASK_THRESHOLD_DEFAULT} by default)")
    return float(value)


def boundary_dilation_ratio(cfg) -> float:
    """TEST.BOUNDARY_DILATION_RATIO, checked: a number in (0, 1]."""
    key = "TEST.BOUNDARY_DILATION_RATIO"
    if "BOUNDARY_DILATION_RATIO" not in cfg.TEST:
        raise KeyError(f"{key} is missing: call add_noisy_mask_config(cfg) first")
    value = cfg.TEST.BOUNDARY_DILATION_RATIO
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"{key} must be a number, got {value!r}")
    if not (math.isfinite(value) and 0 < value <= 1):
        raise ValueError(
            f"{key} = {value!r} is out of range: it must be in (0, 1], a fraction of the image "
            f"diagonal ({DILATION_RATIO} by default)"
        )
    return float(value)


def check_noisy_mask_config(cfg) -> None:
    """Fail before any model is built if the loss or evaluation settings are invalid or would be
    ignored."""
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
    threshold = mask_threshold(cfg)
    if head not in NOISY_MASK_HEADS and threshold != MASK_THRESHOLD_DEFAULT:
        raise ValueError(
            f"MODEL.ROI_MASK_HEAD.MASK_THRESHOLD = {threshold} is read only by "
            f"{', '.join(NOISY_MASK_HEADS)}, but MODEL.ROI_MASK_HEAD.NAME is {head!r}: set NAME "
            f"to {NOISY_MASK_HEADS[0]!r} or MASK_THRESHOLD to {MASK_THRESHOLD_DEFAULT}"
        )
    roi_heads = cfg.MODEL.ROI_HEADS.NAME
    if cfg.MODEL.MASK_ON and uses_image_colors(name) and roi_heads not in COLOR_ROI_HEADS:
        raise ValueError(
            f"MODEL.ROI_MASK_HEAD.LOSS = {name!r} uses the image's colours, which only "
            f"{', '.join(COLOR_ROI_HEADS)} give the mask head, but MODEL.ROI_HEADS.NAME is "
            f"{roi_heads!r}: set MODEL.ROI_HEADS.NAME to {COLOR_ROI_HEADS[0]!r}"
        )
    boundary_dilation_ratio(cfg)
