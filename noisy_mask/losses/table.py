"""The one table of mask losses, and the handling of names such as "bce+dice".

Each loss is named once, in `LOSSES`, with its function, the config key under
MODEL.ROI_MASK_HEAD that sets each of its options, and whether it takes the image's colours.
An option's default is the function's own keyword default: `noisy_mask.config` reads it from
the signature, so it is written once. `MASK_LOSSES` and `IMAGE_LOSSES` are views of the table.
"""

import functools
import inspect
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import torch

from ..coco.values import is_number, is_real
from .basic import bce_loss, label_smoothing_bce_loss, soft_dice_loss
from .boundary import boundary_band_bce_loss, bpm_bce_loss, morph_tolerant_bce_loss, svls_loss
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

# What every loss function takes first; the other keywords are its options, set from the config.
INPUTS = ("pred_logits", "target_masks")
# The extra input of the losses that use the image: (N, 3, M, M) CIELAB colours of each RoI.
IMAGE_COLORS = "image_colors"


HEAD = "MODEL.ROI_MASK_HEAD"


@dataclass(frozen=True)
class ConfigKey:
    """A numeric config key, under MODEL.ROI_MASK_HEAD unless `node` says otherwise, and the values
    it accepts. The same range checks the key's value in a YAML config and the keyword of the head
    that takes it, with one message that names whichever of the two the user wrote."""

    name: str
    is_valid: Callable[[float], bool]
    valid_range: str  # what is_valid accepts, in words, for error messages: "in [0, 1)"
    comment: str
    default: Optional[float] = None  # shown in messages; a loss option's is its function's
    node: str = HEAD

    @property
    def path(self) -> str:
        """The key as a YAML config spells it: "MODEL.ROI_MASK_HEAD.DICE_EPS"."""
        return f"{self.node}.{self.name}"

    def checked(
        self, value: Any, keyword: Optional[str] = None, index: Optional[int] = None
    ) -> float:
        """`value` as a float, if it is a finite number that this key accepts.

        `value` is the key's in a YAML config (element `index` of it for a list), or, given
        `keyword`, what the head was given under that name. Raises ValueError naming it:

            MODEL.ROI_MASK_HEAD.DICE_EPS = -1 is out of range: it must be > 0
            loss_options['eps'] = -1 is out of range: it must be > 0 (MODEL.ROI_MASK_HEAD.DICE_EPS
            in a YAML config)
        """
        where = keyword or (self.path if index is None else f"{self.path}[{index}]")
        # A keyword may be any real number, numpy's included; YAML gives ints and floats only.
        if not (is_real(value) if keyword else is_number(value)):
            raise ValueError(f"{where} must be a number, got {value!r}")
        if math.isfinite(value) and self.is_valid(value):
            return float(value)
        notes = [] if self.default is None else [f"{self.default} by default"]
        notes += [f"{self.path} in a YAML config"] if keyword else []
        finite = "" if math.isfinite(value) else "finite and "
        raise ValueError(
            f"{where} = {value!r} is out of range: it must be {finite}{self.valid_range}"
            + (f" ({'; '.join(notes)})" if notes else "")
        )


@dataclass(frozen=True)
class LossEntry:
    """One loss of the table: its function, the config key of each option, and whether the
    function takes `image_colors`.

    Checked when defined: the options must be exactly the function's keywords besides INPUTS and
    IMAGE_COLORS, and each keyword's default must be a value its config key accepts in YAML.
    """

    function: MaskLoss
    options: Mapping[str, ConfigKey] = field(default_factory=dict)  # keyword -> its config key
    image_colors: bool = False

    def __post_init__(self):
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        name = self.function.__name__
        parameters = inspect.signature(self.function).parameters
        if tuple(parameters)[: len(INPUTS)] != INPUTS:
            raise TypeError(f"{name} must take {', '.join(INPUTS)} first")
        if (IMAGE_COLORS in parameters) != self.image_colors:
            raise TypeError(
                f"{name} {'takes' if IMAGE_COLORS in parameters else 'does not take'} "
                f"{IMAGE_COLORS}, but its entry has image_colors={self.image_colors}"
            )
        keywords = [p for p in tuple(parameters)[len(INPUTS) :] if p != IMAGE_COLORS]
        if set(keywords) != set(self.options):
            raise TypeError(
                f"{name} has the options {keywords}, but its entry gives config keys for "
                f"{list(self.options)}: give each keyword of the function exactly one key"
            )
        for keyword, key in self.options.items():
            default = parameters[keyword].default
            try:  # the default becomes the key's value in the config: a YAML value
                key.checked(default)
            except ValueError as e:
                raise ValueError(f"{name}({keyword}={default!r}), a config default: {e}") from None

    @property
    def defaults(self) -> Dict[str, float]:
        """Keyword -> default of each option, from the function's signature."""
        parameters = inspect.signature(self.function).parameters
        return {keyword: parameters[keyword].default for keyword in self.options}


LOSSES: Dict[str, LossEntry] = {
    "bce": LossEntry(bce_loss),
    "dice": LossEntry(
        soft_dice_loss,
        {"eps": ConfigKey("DICE_EPS", lambda v: v > 0, "> 0", "eps of the soft Dice ratio")},
    ),
    "label_smoothing": LossEntry(
        label_smoothing_bce_loss,
        {
            "smoothing": ConfigKey(
                "LABEL_SMOOTHING", lambda v: 0 <= v < 1, "in [0, 1)", "Smoothing s"
            )
        },
    ),
    "gce": LossEntry(
        gce_loss, {"q": ConfigKey("GCE_Q", lambda v: 0 < v <= 1, "in (0, 1]", "Exponent q")}
    ),
    "sce": LossEntry(
        symmetric_ce_loss,
        {
            "alpha": ConfigKey("SCE_ALPHA", lambda v: v >= 0, ">= 0", "Weight of the BCE term"),
            "beta": ConfigKey(
                "SCE_BETA", lambda v: v >= 0, ">= 0", "Weight of the reverse CE term"
            ),
            "log_zero": ConfigKey("SCE_LOG_ZERO", lambda v: v < 0, "< 0", "A, the value of log 0"),
        },
    ),
    "bootstrap_soft": LossEntry(
        bootstrap_soft_loss,
        {
            "beta": ConfigKey(
                "BOOTSTRAP_SOFT_BETA", lambda v: 0 <= v <= 1, "in [0, 1]", "Weight of the label"
            )
        },
    ),
    "bootstrap_hard": LossEntry(
        bootstrap_hard_loss,
        {
            "beta": ConfigKey(
                "BOOTSTRAP_HARD_BETA", lambda v: 0 <= v <= 1, "in [0, 1]", "Weight of the label"
            )
        },
    ),
    "focal": LossEntry(
        focal_loss,
        {
            "gamma": ConfigKey("FOCAL_GAMMA", lambda v: v >= 0, ">= 0", "Focusing exponent"),
            "alpha": ConfigKey(
                "FOCAL_ALPHA",
                lambda v: 0 <= v <= 1 or v == -1,
                "in [0, 1], or -1 for no class weighting",
                "Weight of the foreground class",
            ),
        },
    ),
    "lovasz": LossEntry(lovasz_hinge_loss),
    "tversky": LossEntry(
        tversky_loss,
        {
            "alpha": ConfigKey(
                "TVERSKY_ALPHA", lambda v: v >= 0, ">= 0", "Weight of false positives"
            ),
            "beta": ConfigKey(
                "TVERSKY_BETA", lambda v: v >= 0, ">= 0", "Weight of false negatives"
            ),
            "eps": ConfigKey("TVERSKY_EPS", lambda v: v > 0, "> 0", "eps of the Tversky ratio"),
        },
    ),
    "svls": LossEntry(
        svls_loss,
        {
            "sigma": ConfigKey(
                "SVLS_SIGMA", lambda v: 0 < v <= 10, "in (0, 10]", "Gaussian std in mask pixels"
            )
        },
    ),
    "boundary_band": LossEntry(
        boundary_band_bce_loss,
        {
            "width": ConfigKey(
                "BOUNDARY_BAND_WIDTH",
                lambda v: v >= 0 and float(v).is_integer(),
                "an integer >= 0",
                "Half-width in mask pixels of the band around the outline",
            ),
            "band_weight": ConfigKey(
                "BOUNDARY_BAND_WEIGHT", lambda v: 0 <= v <= 1, "in [0, 1]", "Weight of band pixels"
            ),
        },
    ),
    "bpm": LossEntry(
        bpm_bce_loss,
        {
            "scale": ConfigKey(
                "BPM_SCALE",
                lambda v: 0 <= v <= 1,
                "in [0, 1]",
                "Share of the boundary map in the weights",
            )
        },
    ),
    "morph_tolerant": LossEntry(
        morph_tolerant_bce_loss,
        {
            "radius": ConfigKey(
                "MORPH_TOLERANT_RADIUS",
                lambda v: 1 <= v <= 5 and float(v).is_integer(),
                "an integer in [1, 5]",
                "Largest erosion or dilation in mask pixels tried",
            )
        },
    ),
    "pairwise_color": LossEntry(
        pairwise_color_loss,
        {
            "theta": ConfigKey(
                "PAIRWISE_COLOR_THETA",
                lambda v: v > 0,
                "> 0",
                "Colour distance scale in CIELAB units",
            ),
            "threshold": ConfigKey(
                "PAIRWISE_COLOR_THRESHOLD",
                lambda v: 0 < v <= 1,
                "in (0, 1]",
                "Least colour similarity of a pair that must share a label",
            ),
            "dilation": ConfigKey(
                "PAIRWISE_COLOR_DILATION",
                lambda v: v >= 1 and float(v).is_integer(),
                "an integer >= 1",
                "Distance in mask pixels between paired neighbours",
            ),
        },
        image_colors=True,
    ),
}

# Views of the table. Name -> function, called as fn(pred_logits, target_masks, **options).
MASK_LOSSES: Dict[str, MaskLoss] = {name: entry.function for name, entry in LOSSES.items()}
# The losses that also take `image_colors`.
IMAGE_LOSSES = frozenset(name for name, entry in LOSSES.items() if entry.image_colors)


def loss_terms(name: str, keywords: bool = False) -> Tuple[str, ...]:
    """The losses that `name` adds up: ("dice",) for "dice", ("bce", "dice") for "bce+dice".

    Raises ValueError naming MODEL.ROI_MASK_HEAD.LOSS (with `keywords`, the head's `loss_name`)
    and the valid losses for an unknown or repeated term.
    """
    loss, weights = (
        ("loss_name", "loss_options ('<term>.weight')")
        if keywords
        else (f"{HEAD}.LOSS", f"{HEAD}.LOSS_WEIGHTS")
    )
    valid = ", ".join(LOSSES)
    if not isinstance(name, str):
        raise ValueError(f"{loss} must be a string, got {name!r}")
    terms = tuple(term.strip() for term in name.split("+"))
    for index, term in enumerate(terms):
        where = f": term {term!r}" if len(terms) > 1 else ""
        if term not in LOSSES:
            raise ValueError(
                f"{loss} = {name!r}{where} is unknown; valid losses: {valid}, "
                "or a sum of them such as 'bce+dice'"
            )
        if term in terms[:index]:
            raise ValueError(
                f"{loss} = {name!r}{where} appears twice: give each term once "
                f"and set its weight in {weights}"
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
    """A weighted sum of losses of `LOSSES`, e.g. BCE + Dice as Mask2Former trains:

        L = sum_k w_k L_k(x, y)

    Options are keyed by term: "<term>.weight" is w_k (default 1) and "<term>.<keyword>" one of
    that term's own options, e.g. {"bce.weight": 1.0, "dice.weight": 2.0, "dice.eps": 1e-6}.
    `image_colors` goes to the terms that take it.
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
        if LOSSES[term].image_colors:
            kwargs[IMAGE_COLORS] = image_colors
        value = weight * LOSSES[term].function(pred_logits, target_masks, **kwargs)
        total = value if total is None else total + value
    return total


def uses_image_colors(name: str) -> bool:
    """Whether the loss `name` (or a term of the sum) needs the `image_colors` keyword."""
    return any(LOSSES[term].image_colors for term in loss_terms(name))


def get_mask_loss(name: str) -> MaskLoss:
    """The loss called `name`, or for a sum "a+b" a plain function of its terms' options.

    Raises ValueError listing the valid names for an unknown loss.
    """
    terms = loss_terms(name)
    if len(terms) == 1:
        return LOSSES[terms[0]].function
    return functools.partial(weighted_sum_loss, terms=terms)
