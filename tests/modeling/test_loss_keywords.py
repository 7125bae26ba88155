"""The head built from keywords, as a LazyConfig builds it, checks its loss, options and weight
with the loss table's ranges and names the keyword at fault; a YAML config's messages still name
its MODEL.ROI_MASK_HEAD keys."""

import numpy as np
import pytest
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import build_mask_head

from noisy_mask import NoisyMaskRCNNConvUpsampleHead, add_noisy_mask_config, model_zoo
from noisy_mask.losses.table import LOSSES, get_mask_loss
from samples import noisy_cfg

LAZY = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_dice.py"
SHAPE = ShapeSpec(channels=8, height=14, width=14)


@pytest.fixture(scope="module")
def lazy_cfg():
    return LazyConfig.load(model_zoo.get_config_file(LAZY))


def build_lazy_head(lazy_cfg, *overrides):
    """The lazy config's mask head with `key=value` overrides under model.roi_heads.mask_head."""
    cfg = LazyConfig.apply_overrides(
        lazy_cfg.copy(), [f"model.roi_heads.mask_head.{o}" for o in overrides]
    )
    return instantiate(cfg.model.roi_heads.mask_head)


def build(loss_name="bce", **kwargs):
    return NoisyMaskRCNNConvUpsampleHead(
        SHAPE, num_classes=3, conv_dims=[8], loss_name=loss_name, **kwargs
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["loss_options.eps=0"],
            "loss_options['eps'] = 0 is out of range: it must be > 0 "
            "(MODEL.ROI_MASK_HEAD.DICE_EPS in a YAML config)",
        ),
        (
            ["loss_name=label_smoothing", "loss_options.smoothing=1.0"],
            "loss_options['smoothing'] = 1.0 is out of range: it must be in [0, 1) "
            "(MODEL.ROI_MASK_HEAD.LABEL_SMOOTHING in a YAML config)",
        ),
        (
            ["loss_options.epsilon=1e-6"],
            "loss_options has 'epsilon', which the loss 'dice' does not take; its options: 'eps'",
        ),
        (
            ["loss_name=bce", "loss_options={eps:1e-6}"],
            "loss_options has 'eps', which the loss 'bce' does not take; it takes no options",
        ),
        (
            ["loss_name=bce+dice", "loss_options.eps=1e-6"],
            "loss_options has 'eps', which the loss 'bce+dice' does not take; its options: "
            "'bce.weight', 'dice.weight', 'dice.eps'",
        ),
        (
            ["loss_name=bce+dice", "loss_options={dice.eps:-1.0}"],
            "loss_options['dice.eps'] = -1.0 is out of range: it must be > 0 "
            "(MODEL.ROI_MASK_HEAD.DICE_EPS in a YAML config)",
        ),
        (
            ["loss_name=bce+dice", "loss_options.bce.weight=-0.5"],
            "loss_options['bce.weight'] = -0.5 is out of range: it must be >= 0 "
            "(MODEL.ROI_MASK_HEAD.LOSS_WEIGHTS in a YAML config)",
        ),
        (
            ["loss_weight=-1"],
            "loss_weight = -1 is out of range: it must be >= 0 "
            "(1.0 by default; MODEL.ROI_MASK_HEAD.LOSS_WEIGHT in a YAML config)",
        ),
        (
            ["loss_name=sce", "loss_options.log_zero=-inf"],
            "loss_options['log_zero'] = -inf is out of range: it must be finite and < 0 "
            "(MODEL.ROI_MASK_HEAD.SCE_LOG_ZERO in a YAML config)",
        ),
        (["loss_options.eps='1e-6'"], "loss_options['eps'] must be a number, got '1e-6'"),
        (
            ["mask_threshold=1.0"],
            "mask_threshold = 1.0 is out of range: it must be in (0, 1) "
            "(0.5 by default; MODEL.ROI_MASK_HEAD.MASK_THRESHOLD in a YAML config)",
        ),
        (
            ["loss_name=dise"],
            "loss_name = 'dise' is unknown; valid losses: "
            + ", ".join(LOSSES)
            + ", or a sum of them such as 'bce+dice'",
        ),
        (
            ["loss_name=bce+dice+bce"],
            "loss_name = 'bce+dice+bce': term 'bce' appears twice: give each term once and set "
            "its weight in loss_options ('<term>.weight')",
        ),
    ],
)
def test_a_lazy_config_fails_at_build_time_naming_the_keyword(lazy_cfg, overrides, message):
    # The overrides as on the command line: `model.roi_heads.mask_head.loss_options.eps=0`.
    with pytest.raises(ValueError) as error:
        build_lazy_head(lazy_cfg, *overrides)
    assert str(error.value) == message


def test_valid_keywords_build_the_head_with_them(lazy_cfg):
    head = build_lazy_head(lazy_cfg, "loss_options.eps=1e-6", "loss_weight=2")
    assert (head.loss_name, head.loss_options, head.loss_weight) == ("dice", {"eps": 1e-6}, 2)
    assert head.loss_fn is get_mask_loss("dice")
    options = {"bce.weight": 1, "dice.weight": 2.0, "dice.eps": 1e-6}
    head = build_lazy_head(
        lazy_cfg, "loss_name=bce+dice", "loss_options={bce.weight:1,dice.weight:2.0}",
        "loss_options.dice.eps=1e-6",
    )  # fmt: skip
    assert head.loss_options == options and type(head.loss_options) is dict
    # Every option of every loss at its default (the function's keyword default) is valid.
    for name, entry in LOSSES.items():
        assert build(name, loss_options=entry.defaults).loss_options == entry.defaults
    assert build("bce", loss_options=None, loss_weight=0).loss_options == {}


def test_a_yaml_config_still_names_its_keys():
    # from_config checks the config before the keywords reach the head.
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    head = cfg.MODEL.ROI_MASK_HEAD
    head.NAME, head.LOSS, head.DICE_EPS = "NoisyMaskRCNNConvUpsampleHead", "dice", 0.0
    with pytest.raises(ValueError) as error:
        build_mask_head(cfg, SHAPE)
    assert str(error.value) == "MODEL.ROI_MASK_HEAD.DICE_EPS = 0.0 is out of range: it must be > 0"
    head.DICE_EPS, head.LOSS_WEIGHT = 1e-6, -1.0
    with pytest.raises(
        ValueError, match=r"^MODEL.ROI_MASK_HEAD.LOSS_WEIGHT = -1.0 is out of range"
    ):
        build_mask_head(cfg, SHAPE)


def yaml_error(**head) -> str:
    """The message of building the head from a YAML config with `head` under ROI_MASK_HEAD."""
    with pytest.raises(ValueError) as error:
        build_mask_head(noisy_cfg(**head), SHAPE)
    return str(error.value)


def keyword_error(loss_name="bce", **kwargs) -> str:
    """The message of building the head from keywords."""
    with pytest.raises(ValueError) as error:
        build(loss_name, **kwargs)
    return str(error.value)


def test_one_range_rejects_a_value_through_either_door_naming_that_door():
    assert yaml_error(LOSS="dice", DICE_EPS=-1.0) == (
        "MODEL.ROI_MASK_HEAD.DICE_EPS = -1.0 is out of range: it must be > 0"
    )
    assert keyword_error("dice", loss_options={"eps": -1.0}) == (
        "loss_options['eps'] = -1.0 is out of range: it must be > 0 "
        "(MODEL.ROI_MASK_HEAD.DICE_EPS in a YAML config)"
    )
    assert yaml_error(LOSS="sce", SCE_LOG_ZERO=float("-inf")) == (
        "MODEL.ROI_MASK_HEAD.SCE_LOG_ZERO = -inf is out of range: it must be finite and < 0"
    )
    assert keyword_error("sce", loss_options={"log_zero": float("-inf")}) == (
        "loss_options['log_zero'] = -inf is out of range: it must be finite and < 0 "
        "(MODEL.ROI_MASK_HEAD.SCE_LOG_ZERO in a YAML config)"
    )
    # The weight of a term: an element of LOSS_WEIGHTS, or '<term>.weight'.
    assert yaml_error(LOSS="bce+dice", LOSS_WEIGHTS=[1.0, -0.5]) == (
        "MODEL.ROI_MASK_HEAD.LOSS_WEIGHTS[1] = -0.5 is out of range: it must be >= 0"
    )
    assert keyword_error("bce+dice", loss_options={"dice.weight": -0.5}) == (
        "loss_options['dice.weight'] = -0.5 is out of range: it must be >= 0 "
        "(MODEL.ROI_MASK_HEAD.LOSS_WEIGHTS in a YAML config)"
    )
    # The keys of the head itself show their default.
    assert yaml_error(LOSS_WEIGHT=-1.0) == (
        "MODEL.ROI_MASK_HEAD.LOSS_WEIGHT = -1.0 is out of range: it must be >= 0 (1.0 by default)"
    )
    assert keyword_error(loss_weight=-1.0) == (
        "loss_weight = -1.0 is out of range: it must be >= 0 "
        "(1.0 by default; MODEL.ROI_MASK_HEAD.LOSS_WEIGHT in a YAML config)"
    )
    assert yaml_error(MASK_THRESHOLD=1.0) == (
        "MODEL.ROI_MASK_HEAD.MASK_THRESHOLD = 1.0 is out of range: it must be in (0, 1) "
        "(0.5 by default)"
    )
    assert keyword_error(mask_threshold=1.0) == (
        "mask_threshold = 1.0 is out of range: it must be in (0, 1) "
        "(0.5 by default; MODEL.ROI_MASK_HEAD.MASK_THRESHOLD in a YAML config)"
    )
    assert yaml_error(LOSS="dice", DICE_EPS="1e-6") == (
        "MODEL.ROI_MASK_HEAD.DICE_EPS must be a number, got '1e-6'"
    )
    assert keyword_error("dice", loss_options={"eps": "1e-6"}) == (
        "loss_options['eps'] must be a number, got '1e-6'"
    )
    assert keyword_error(mask_threshold="0.5") == "mask_threshold must be a number, got '0.5'"


def out_of_range(key):
    """A value that `key` rejects, the first of a few candidates."""
    return next(v for v in (-1.0, 0.0, 1.5, 11.0, 0.5) if not key.is_valid(v))


@pytest.mark.parametrize(
    "loss, keyword", [(loss, kw) for loss, entry in LOSSES.items() for kw in entry.options]
)
def test_every_option_is_checked_by_its_range_through_both_doors(loss, keyword):
    key = LOSSES[loss].options[keyword]
    value = out_of_range(key)
    message = f"{value!r} is out of range: it must be {key.valid_range}"
    head = {"LOSS": loss, key.name: value}
    if LOSSES[loss].image_colors:  # its check comes after the options', which are what is tested
        head["NAME"] = "NoisyMaskRCNNConvUpsampleHead"
    assert yaml_error(**head) == f"{key.path} = {message}"
    assert keyword_error(loss, loss_options={keyword: value}) == (
        f"loss_options[{keyword!r}] = {message} ({key.path} in a YAML config)"
    )


def test_keywords_take_numpy_numbers_as_before():
    # A keyword may be any real number; a YAML config only ever holds ints and floats.
    head = build("dice", loss_options={"eps": np.float32(0.5)}, loss_weight=np.int64(2))
    assert head.loss_options == {"eps": np.float32(0.5)} and head.loss_weight == 2
    assert keyword_error("dice", loss_options={"eps": np.bool_(True)}) == (
        "loss_options['eps'] must be a number, got True"
    )
    assert keyword_error("dice", loss_options={"eps": True}) == (
        "loss_options['eps'] must be a number, got True"
    )
