"""Config keys of noisy_mask, their defaults and their checks: the one place that reads them."""

import math
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

from .data.checks import add_dataset_checks_config
from .losses.table import loss_terms, uses_image_colors

# Heads of this package: the only ones that read MODEL.ROI_MASK_HEAD.LOSS and its options.
NOISY_MASK_HEADS = ("NoisyMaskRCNNConvUpsampleHead",)
# The ROI heads that give the mask head the image's colours (losses.IMAGE_LOSSES need them).
COLOR_ROI_HEADS = ("NoisyMaskROIHeads",)


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
    "GCE_Q": Option(0.7, lambda v: 0 < v <= 1, "in (0, 1]", "Exponent q (LOSS: gce)"),
    "SCE_ALPHA": Option(1.0, lambda v: v >= 0, ">= 0", "Weight of the BCE term (LOSS: sce)"),
    "SCE_BETA": Option(1.0, lambda v: v >= 0, ">= 0", "Weight of the reverse CE term (LOSS: sce)"),
    "SCE_LOG_ZERO": Option(-4.0, lambda v: v < 0, "< 0", "A, the value of log 0 (LOSS: sce)"),
    "BOOTSTRAP_SOFT_BETA": Option(
        0.95, lambda v: 0 <= v <= 1, "in [0, 1]", "Weight of the label (LOSS: bootstrap_soft)"
    ),
    "BOOTSTRAP_HARD_BETA": Option(
        0.8, lambda v: 0 <= v <= 1, "in [0, 1]", "Weight of the label (LOSS: bootstrap_hard)"
    ),
    "FOCAL_GAMMA": Option(2.0, lambda v: v >= 0, ">= 0", "Focusing exponent (LOSS: focal)"),
    "FOCAL_ALPHA": Option(
        0.25,
        lambda v: 0 <= v <= 1 or v == -1,
        "in [0, 1], or -1 for no class weighting",
        "Weight of the foreground class (LOSS: focal)",
    ),
    "TVERSKY_ALPHA": Option(
        0.5, lambda v: v >= 0, ">= 0", "Weight of false positives (LOSS: tversky)"
    ),
    "TVERSKY_BETA": Option(
        0.5, lambda v: v >= 0, ">= 0", "Weight of false negatives (LOSS: tversky)"
    ),
    "TVERSKY_EPS": Option(1e-6, lambda v: v > 0, "> 0", "eps of the Tversky ratio (LOSS: tversky)"),
    "SVLS_SIGMA": Option(
        1.0, lambda v: 0 < v <= 10, "in (0, 10]", "Gaussian std in mask pixels (LOSS: svls)"
    ),
    "BOUNDARY_BAND_WIDTH": Option(
        1,
        lambda v: v >= 0 and float(v).is_integer(),
        "an integer >= 0",
        "Half-width in mask pixels of the band around the outline (LOSS: boundary_band)",
    ),
    "BOUNDARY_BAND_WEIGHT": Option(
        0.0, lambda v: 0 <= v <= 1, "in [0, 1]", "Weight of band pixels (LOSS: boundary_band)"
    ),
    "BPM_SCALE": Option(
        1.0,
        lambda v: 0 <= v <= 1,
        "in [0, 1]",
        "Share of the boundary map in the weights (LOSS: bpm)",
    ),
    "MORPH_TOLERANT_RADIUS": Option(
        1,
        lambda v: 1 <= v <= 5 and float(v).is_integer(),
        "an integer in [1, 5]",
        "Largest erosion or dilation in mask pixels tried (LOSS: morph_tolerant)",
    ),
    "PAIRWISE_COLOR_THETA": Option(
        2.0, lambda v: v > 0, "> 0", "Colour distance scale in CIELAB units (LOSS: pairwise_color)"
    ),
    "PAIRWISE_COLOR_THRESHOLD": Option(
        0.3,
        lambda v: 0 < v <= 1,
        "in (0, 1]",
        "Least colour similarity of a pair that must share a label (LOSS: pairwise_color)",
    ),
    "PAIRWISE_COLOR_DILATION": Option(
        2,
        lambda v: v >= 1 and float(v).is_integer(),
        "an integer >= 1",
        "Distance in mask pixels between paired neighbours (LOSS: pairwise_color)",
    ),
}

# Loss name -> {keyword of the loss function: config key in OPTIONS}.
LOSS_KWARGS: Dict[str, Dict[str, str]] = {
    "bce": {},
    "dice": {"eps": "DICE_EPS"},
    "label_smoothing": {"smoothing": "LABEL_SMOOTHING"},
    "gce": {"q": "GCE_Q"},
    "sce": {"alpha": "SCE_ALPHA", "beta": "SCE_BETA", "log_zero": "SCE_LOG_ZERO"},
    "bootstrap_soft": {"beta": "BOOTSTRAP_SOFT_BETA"},
    "bootstrap_hard": {"beta": "BOOTSTRAP_HARD_BETA"},
    "focal": {"gamma": "FOCAL_GAMMA", "alpha": "FOCAL_ALPHA"},
    "lovasz": {},
    "tversky": {"alpha": "TVERSKY_ALPHA", "beta": "TVERSKY_BETA", "eps": "TVERSKY_EPS"},
    "svls": {"sigma": "SVLS_SIGMA"},
    "boundary_band": {"width": "BOUNDARY_BAND_WIDTH", "band_weight": "BOUNDARY_BAND_WEIGHT"},
    "bpm": {"scale": "BPM_SCALE"},
    "morph_tolerant": {"radius": "MORPH_TOLERANT_RADIUS"},
    "pairwise_color": {
        "theta": "PAIRWISE_COLOR_THETA",
        "threshold": "PAIRWISE_COLOR_THRESHOLD",
        "dilation": "PAIRWISE_COLOR_DILATION",
    },
}


def add_noisy_mask_config(cfg) -> None:
    """Add noisy_mask's keys to `cfg` (a detectron2 CfgNode); call before `merge_from_file`."""
    head = cfg.MODEL.ROI_MASK_HEAD
    # Mask loss on the ground-truth class channel, by name: one of noisy_mask.MASK_LOSSES, or a
    # weighted sum of them written "bce+dice".
    head.LOSS = "bce"
    # Weights of the terms of a sum, one per term; empty: all 1. Must stay empty for one loss.
    head.LOSS_WEIGHTS = []
    for key, option in OPTIONS.items():
        head[key] = option.default  # see OPTIONS for each key's comment and range
    # COCO-format datasets to register by name: a list of [name, annotation_json, image_root].
    cfg.DATASETS.REGISTER_COCO = []
    add_dataset_checks_config(cfg)  # DATASETS.VALIDATE, VALIDATE_IMAGES, SKIP_DEGENERATE_...


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
        options = {kw: _checked_option(cfg, key) for kw, key in LOSS_KWARGS[terms[0]].items()}
        return terms[0], options, loss_weight
    options = {}
    for term, weight in zip(terms, weights):
        options[f"{term}.weight"] = weight
        for kw, key in LOSS_KWARGS[term].items():
            options[f"{term}.{kw}"] = _checked_option(cfg, key)
    return "+".join(terms), options, loss_weight


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
    roi_heads = cfg.MODEL.ROI_HEADS.NAME
    if cfg.MODEL.MASK_ON and uses_image_colors(name) and roi_heads not in COLOR_ROI_HEADS:
        raise ValueError(
            f"MODEL.ROI_MASK_HEAD.LOSS = {name!r} uses the image's colours, which only "
            f"{', '.join(COLOR_ROI_HEADS)} give the mask head, but MODEL.ROI_HEADS.NAME is "
            f"{roi_heads!r}: set MODEL.ROI_HEADS.NAME to {COLOR_ROI_HEADS[0]!r}"
        )
