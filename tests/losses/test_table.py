"""The loss table: each entry's config keys match its function's keywords, checked when defined."""
import inspect

import pytest

from noisy_mask.losses.basic import bce_loss, label_smoothing_bce_loss, soft_dice_loss
from noisy_mask.losses.pairwise import pairwise_color_loss
from noisy_mask.losses.table import (
    IMAGE_COLORS,
    IMAGE_LOSSES,
    INPUTS,
    LOSSES,
    MASK_LOSSES,
    ConfigKey,
    LossEntry,
)

EPS = ConfigKey("TEST_EPS", lambda v: v > 0, "> 0", "eps")


def options_of(function):
    """The keywords of a loss function that are options: all but its inputs and image_colors."""
    names = tuple(inspect.signature(function).parameters)
    assert names[: len(INPUTS)] == INPUTS
    return {name for name in names[len(INPUTS) :] if name != IMAGE_COLORS}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_keyword_of_every_loss_has_a_config_key(name):
    entry = LOSSES[name]
    assert set(entry.options) == options_of(entry.function)
    parameters = inspect.signature(entry.function).parameters
    for keyword, key in entry.options.items():
        default = parameters[keyword].default
        assert entry.defaults[keyword] == default and type(entry.defaults[keyword]) is type(default)
        assert key.is_valid(default), (name, keyword)
    assert entry.image_colors == (IMAGE_COLORS in parameters)


def test_views_are_the_table():
    assert MASK_LOSSES == {name: entry.function for name, entry in LOSSES.items()}
    assert IMAGE_LOSSES == {"pairwise_color"}
    assert list(MASK_LOSSES)[:3] == ["bce", "dice", "label_smoothing"]  # the order of the docs
    assert LOSSES["dice"].defaults == {"eps": 1e-6}
    assert LOSSES["label_smoothing"].defaults == {"smoothing": 0.05}
    assert LOSSES["bce"].defaults == {}


def test_a_key_for_a_keyword_the_function_lacks_is_rejected():
    with pytest.raises(TypeError, match=r"bce_loss has the options \[\], but .* for \['eps'\]"):
        LossEntry(bce_loss, {"eps": EPS})


def test_a_keyword_without_a_key_is_rejected():
    with pytest.raises(TypeError, match=r"soft_dice_loss has the options \['eps'\]"):
        LossEntry(soft_dice_loss)


def test_image_colors_must_match_the_function():
    with pytest.raises(TypeError, match="pairwise_color_loss takes image_colors"):
        LossEntry(pairwise_color_loss, LOSSES["pairwise_color"].options)
    with pytest.raises(TypeError, match="bce_loss does not take image_colors"):
        LossEntry(bce_loss, image_colors=True)


def test_a_default_out_of_its_range_is_rejected():
    # label_smoothing_bce_loss defaults to smoothing = 0.05, outside (0.1, 1).
    narrow = ConfigKey("TEST_SMOOTHING", lambda v: 0.1 < v < 1, "in (0.1, 1)", "s")
    with pytest.raises(ValueError) as error:
        LossEntry(label_smoothing_bce_loss, {"smoothing": narrow})
    assert str(error.value) == (
        "label_smoothing_bce_loss(smoothing=0.05), a config default: MODEL.ROI_MASK_HEAD."
        "TEST_SMOOTHING = 0.05 is out of range: it must be in (0.1, 1)"
    )


def loss_with_default(default):
    def loss(pred_logits, target_masks, eps=default):
        return pred_logits.sum()

    return loss


def loss_without_default(pred_logits, target_masks, *, eps):
    return pred_logits.sum()


@pytest.mark.parametrize(
    "loss", [loss_without_default, loss_with_default(True), loss_with_default("1e-6")]
)
def test_a_default_that_is_not_a_number_is_rejected(loss):
    # A bool would reach the config as a bool, which YAML numbers cannot then override.
    with pytest.raises(ValueError, match=r"\(eps=.*\), a config default: .*TEST_EPS must be a num"):
        LossEntry(loss, {"eps": EPS})


def test_a_function_must_take_logits_and_targets_first():
    def loss(target_masks, pred_logits):
        return pred_logits.sum()

    with pytest.raises(TypeError, match="must take pred_logits, target_masks first"):
        LossEntry(loss)


def test_entries_are_frozen():
    with pytest.raises(TypeError):
        LOSSES["dice"].options["smoothing"] = EPS
    with pytest.raises(AttributeError):
        LOSSES["dice"].image_colors = True
