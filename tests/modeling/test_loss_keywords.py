"""The head built from keywords, as a LazyConfig builds it, checks its loss, options and weight
with the loss table's ranges and names the keyword at fault; a YAML config's messages still name
its MODEL.ROI_MASK_HEAD keys."""

import pytest
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import build_mask_head

from noisy_mask import NoisyMaskRCNNConvUpsampleHead, add_noisy_mask_config, model_zoo
from noisy_mask.losses.table import LOSSES, get_mask_loss

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
            "(MODEL.ROI_MASK_HEAD.LOSS_WEIGHT in a YAML config)",
        ),
        (
            ["loss_name=sce", "loss_options.log_zero=-inf"],
            "loss_options['log_zero'] = -inf is out of range: it must be finite and < 0 "
            "(MODEL.ROI_MASK_HEAD.SCE_LOG_ZERO in a YAML config)",
        ),
        (["loss_options.eps='1e-6'"], "loss_options['eps'] must be a number, got '1e-6'"),
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
