"""Config keys of noisy_mask, their defaults and their checks: the one place that reads them.

A number's range is a `ConfigKey` (the loss options' in the loss table), which checks the value of
a YAML config and the keyword of a head built from keywords (a LazyConfig) alike.
"""

from typing import Dict, Mapping, Optional, Tuple

from .evaluation.boundary import DILATION_RATIO
from .losses.table import HEAD, LOSSES, ConfigKey, LossEntry, loss_terms, uses_image_colors

# Heads of this package: the only ones that read MODEL.ROI_MASK_HEAD.LOSS and its options.
NOISY_MASK_HEADS = ("NoisyMaskRCNNConvUpsampleHead",)
# The ROI heads that give the mask head the image's colours, which losses.IMAGE_LOSSES need.
COLOR_ROI_HEADS = ("NoisyMaskROIHeads",)

# The predicted masks' binarization threshold (MMDetection's mask_thr_binary); detectron2 fixes
# it at 0.5. A loss that ranks a RoI's pixels well but does not calibrate them (Dice) may need
# another.
MASK_THRESHOLD_DEFAULT = 0.5
MASK_THRESHOLD = ConfigKey(
    "MASK_THRESHOLD",
    lambda v: 0 < v < 1,
    "in (0, 1)",
    "Pixels of a predicted mask above this probability are the object's",
    MASK_THRESHOLD_DEFAULT,
)
BOUNDARY_DILATION_RATIO = ConfigKey(
    "BOUNDARY_DILATION_RATIO",
    lambda v: 0 < v <= 1,
    "in (0, 1], a fraction of the image diagonal",
    "Boundary AP's band (Boundary IoU) as a fraction of the image diagonal",
    DILATION_RATIO,
    node="TEST",
)

# Multiplies loss_mask whatever the loss: a key of its own, not an option of a loss function.
LOSS_WEIGHT = ConfigKey("LOSS_WEIGHT", lambda v: v >= 0, ">= 0", "Multiplier of loss_mask", 1.0)
# Each weight of LOSS_WEIGHTS, a list: the weight of one term of a sum such as "bce+dice".
TERM_WEIGHT = ConfigKey("LOSS_WEIGHTS", lambda v: v >= 0, ">= 0", "Weight of a term of a sum")


def _numeric_keys(losses: Mapping[str, LossEntry]) -> Tuple[Dict[str, ConfigKey], Dict[str, float]]:
    """(key -> ConfigKey, key -> default) of LOSS_WEIGHT and of every option of `losses`.

    A loss option's default is its function's keyword default. Raises ValueError if two keys
    share a name, which would give two options one value.
    """
    options, defaults = {LOSS_WEIGHT.name: LOSS_WEIGHT}, {LOSS_WEIGHT.name: LOSS_WEIGHT.default}
    for name, entry in losses.items():
        for keyword, key in entry.options.items():
            if key.name in options:
                raise ValueError(
                    f"{key.path} (option {keyword!r} of the loss {name!r}) "
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
    head.MASK_THRESHOLD = MASK_THRESHOLD.default
    # COCO-format datasets to register by name: a list of [name, annotation_json, image_root].
    cfg.DATASETS.REGISTER_COCO = []
    add_dataset_checks_config(cfg)
    # Boundary AP's band (Boundary IoU) as a fraction of the image diagonal, in (0, 1]; 0.02 is the
    # metric's authors'. Thin objects need less: the evaluation warns and suggests a value.
    cfg.TEST.BOUNDARY_DILATION_RATIO = BOUNDARY_DILATION_RATIO.default


def add_dataset_checks_config(cfg) -> None:
    """Add the keys of the dataset checks (`data.checks`) to `cfg`; call before `merge_from_file`.

    `add_noisy_mask_config` adds them; this adds them alone, to a config that needs only those.
    """
    # Check each DATASETS.REGISTER_COCO json with noisy_mask.validate before training.
    cfg.DATASETS.VALIDATE = True
    # Also decode every image the jsons list (reads the whole image folder: slow for a big one).
    cfg.DATASETS.VALIDATE_IMAGES = False
    # Drop annotations whose only problems are skippable (empty or degenerate segmentation, box of
    # non-positive size) from the training data, logging their ids; False: they stop the run.
    cfg.DATASETS.SKIP_DEGENERATE_ANNOTATIONS = False


def _checked_value(cfg, key: ConfigKey) -> float:
    """The value of `key` in `cfg`, checked; KeyError saying what to call if `cfg` lacks it."""
    node = cfg
    for part in key.node.split("."):
        node = node[part]
    if key.name not in node:
        raise KeyError(f"{key.path} is missing: call add_noisy_mask_config(cfg) first")
    return key.checked(node[key.name])


def _checked_loss_options(cfg, loss: str) -> Dict[str, float]:
    """Keyword -> checked value of each option of the loss `loss`, from its config keys."""
    return {kw: _checked_value(cfg, key) for kw, key in LOSSES[loss].options.items()}


def _checked_loss_weights(cfg, name: str, terms: Tuple[str, ...]) -> Tuple[float, ...]:
    """One weight per term of LOSS, from LOSS_WEIGHTS (empty: all 1)."""
    key = TERM_WEIGHT.path
    weights = cfg.MODEL.ROI_MASK_HEAD.get("LOSS_WEIGHTS", [])
    if not isinstance(weights, (list, tuple)):
        raise ValueError(f"{key} must be a list of numbers, got {weights!r}")
    checked = tuple(TERM_WEIGHT.checked(w, index=i) for i, w in enumerate(weights))
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
    return checked or (1.0,) * len(terms)


def mask_loss_from_config(cfg) -> Tuple[str, Dict[str, float], float]:
    """(loss name, its keyword options, loss weight) from `cfg`, all checked.

    For a sum such as "bce+dice" the options are those of `weighted_sum_loss`, keyed by term:
    {"bce.weight": 1.0, "dice.weight": 1.0, "dice.eps": 1e-6}, the weights from LOSS_WEIGHTS.
    Raises ValueError naming the key when the loss is unknown or a value is out of range.
    """
    if "LOSS" not in cfg.MODEL.ROI_MASK_HEAD:
        raise KeyError(f"{HEAD}.LOSS is missing: call add_noisy_mask_config(cfg) first")
    name = cfg.MODEL.ROI_MASK_HEAD.LOSS
    terms = loss_terms(name)
    weights = _checked_loss_weights(cfg, name, terms)
    loss_weight = _checked_value(cfg, LOSS_WEIGHT)
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
    return _checked_value(cfg, MASK_THRESHOLD)


def boundary_dilation_ratio(cfg) -> float:
    """TEST.BOUNDARY_DILATION_RATIO, checked: a number in (0, 1]."""
    return _checked_value(cfg, BOUNDARY_DILATION_RATIO)


def check_noisy_mask_config(cfg) -> None:
    """Fail before any model is built if the loss or evaluation settings are invalid or would be
    ignored."""
    name, _, weight = mask_loss_from_config(cfg)
    for key in OPTIONS.values():
        _checked_value(cfg, key)
    head = cfg.MODEL.ROI_MASK_HEAD.NAME
    if head not in NOISY_MASK_HEADS and (name != "bce" or weight != 1.0):
        raise ValueError(
            f"{HEAD}.LOSS = {name!r} (LOSS_WEIGHT {weight}) is read only by "
            f"{', '.join(NOISY_MASK_HEADS)}, but {HEAD}.NAME is {head!r}: set "
            f"NAME to {NOISY_MASK_HEADS[0]!r} or LOSS to 'bce'"
        )
    threshold = mask_threshold(cfg)
    if head not in NOISY_MASK_HEADS and threshold != MASK_THRESHOLD.default:
        raise ValueError(
            f"{MASK_THRESHOLD.path} = {threshold} is read only by "
            f"{', '.join(NOISY_MASK_HEADS)}, but {HEAD}.NAME is {head!r}: set NAME "
            f"to {NOISY_MASK_HEADS[0]!r} or MASK_THRESHOLD to {MASK_THRESHOLD.default}"
        )
    roi_heads = cfg.MODEL.ROI_HEADS.NAME
    if cfg.MODEL.MASK_ON and uses_image_colors(name) and roi_heads not in COLOR_ROI_HEADS:
        raise ValueError(
            f"{HEAD}.LOSS = {name!r} uses the image's colours, which only "
            f"{', '.join(COLOR_ROI_HEADS)} give the mask head, but MODEL.ROI_HEADS.NAME is "
            f"{roi_heads!r}: set MODEL.ROI_HEADS.NAME to {COLOR_ROI_HEADS[0]!r}"
        )
    boundary_dilation_ratio(cfg)


def flat_loss_options(options: Optional[Mapping]) -> Dict[str, float]:
    """`options` as a plain dict, nested mappings joined by dots: {"dice": {"eps": 1e-6}}, what the
    LazyConfig override `loss_options.dice.eps=1e-6` gives, becomes {"dice.eps": 1e-6}."""
    flat = {}
    for key, value in (options or {}).items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{k}": v for k, v in flat_loss_options(value).items()})
        else:
            flat[key] = value
    return flat


def check_head_keywords(
    loss_name: str, loss_options: Mapping[str, float], loss_weight: float, mask_threshold: float
) -> None:
    """Check the keywords of a head built without a YAML config (a LazyConfig builds it so) with
    the ranges that check a YAML config, naming the keyword at fault:

        loss_options['eps'] = 0 is out of range: it must be > 0 (MODEL.ROI_MASK_HEAD.DICE_EPS in
        a YAML config)

    `loss_options` are flat (`flat_loss_options`); those of a sum are "<term>.weight" and
    "<term>.<keyword>".
    """
    terms = loss_terms(loss_name, keywords=True)
    LOSS_WEIGHT.checked(loss_weight, keyword="loss_weight")
    keys: Dict[str, ConfigKey] = {}  # option -> the key that sets it in a YAML config
    for term in terms:
        prefix = f"{term}." if len(terms) > 1 else ""
        if prefix:
            keys[f"{prefix}weight"] = TERM_WEIGHT
        for keyword, key in LOSSES[term].options.items():
            keys[prefix + keyword] = key
    for option, value in loss_options.items():
        if option not in keys:
            valid = ", ".join(repr(k) for k in keys)
            raise ValueError(
                f"loss_options has {option!r}, which the loss {loss_name!r} does not take; "
                + (f"its options: {valid}" if valid else "it takes no options")
            )
        keys[option].checked(value, keyword=f"loss_options[{option!r}]")
    MASK_THRESHOLD.checked(mask_threshold, keyword="mask_threshold")
