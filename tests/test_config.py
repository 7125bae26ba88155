"""Config keys, their checks, and every YAML under configs/."""
import glob
import inspect
import math
import os

import numpy as np
import pytest
from detectron2.config import get_cfg

from noisy_mask import add_noisy_mask_config, check_noisy_mask_config
from noisy_mask.config import (
    OPTIONS,
    _numeric_keys,
    add_dataset_checks_config,
    boundary_dilation_ratio,
    mask_loss_from_config,
)
from noisy_mask.losses.basic import soft_dice_loss
from noisy_mask.losses.robust import tversky_loss
from noisy_mask.losses.table import LOSSES, MASK_LOSSES, ConfigKey, LossEntry
from samples import noisy_cfg

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "noisy_mask", "configs")
CONFIGS = sorted(glob.glob(os.path.join(CONFIG_DIR, "**", "*.yaml"), recursive=True))


def test_defaults():
    cfg = noisy_cfg()
    head = cfg.MODEL.ROI_MASK_HEAD
    assert (head.LOSS, head.DICE_EPS, head.LABEL_SMOOTHING, head.LOSS_WEIGHT) == ("bce", 1e-6, 0.05, 1.0)
    assert cfg.DATASETS.REGISTER_COCO == []


def test_every_loss_has_its_options_declared():
    assert set(LOSSES) == set(MASK_LOSSES)
    assert all(key.name in OPTIONS for entry in LOSSES.values() for key in entry.options.values())


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, CONFIG_DIR) for p in CONFIGS])
def test_every_yaml_loads_and_passes_checks(path):
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_file(path)
    check_noisy_mask_config(cfg)
    name = os.path.basename(path)
    for loss in MASK_LOSSES:
        if name.endswith(f"_{loss}.yaml"):
            assert cfg.MODEL.ROI_MASK_HEAD.LOSS == loss
    if not name.startswith("Base-"):
        assert cfg.MODEL.MASK_ON and cfg.MODEL.ROI_MASK_HEAD.NAME == "NoisyMaskRCNNConvUpsampleHead"


def test_coco_configs_differ_only_in_loss():
    def load(loss):
        cfg = get_cfg()
        add_noisy_mask_config(cfg)
        cfg.merge_from_file(os.path.join(CONFIG_DIR, "COCO-InstanceSegmentation",
                                         f"mask_rcnn_R_50_FPN_1x_{loss}.yaml"))
        cfg.MODEL.ROI_MASK_HEAD.LOSS = "bce"
        return cfg.dump()

    assert load("bce") == load("dice") == load("label_smoothing")


def test_options_reach_the_loss():
    cfg = noisy_cfg(LOSS="label_smoothing", LABEL_SMOOTHING=0.2, LOSS_WEIGHT=2.0)
    assert mask_loss_from_config(cfg) == ("label_smoothing", {"smoothing": 0.2}, 2.0)
    cfg = noisy_cfg(LOSS="dice", DICE_EPS=1.0)
    assert mask_loss_from_config(cfg) == ("dice", {"eps": 1.0}, 1.0)


def test_unknown_loss_names_key_and_valid_losses():
    with pytest.raises(ValueError, match=r"MODEL.ROI_MASK_HEAD.LOSS = 'dcie' is unknown; "
                                         r"valid losses: bce, dice, label_smoothing"):
        check_noisy_mask_config(noisy_cfg(LOSS="dcie"))


@pytest.mark.parametrize(
    "key, value",
    [("DICE_EPS", -1e-6), ("DICE_EPS", 0.0), ("LABEL_SMOOTHING", 1.0), ("LABEL_SMOOTHING", -0.1),
     ("LOSS_WEIGHT", -1.0), ("LOSS_WEIGHT", float("nan")), ("DICE_EPS", float("inf"))],
)
def test_out_of_range_values_are_rejected(key, value):
    with pytest.raises(ValueError, match=f"MODEL.ROI_MASK_HEAD.{key} = .* out of range"):
        check_noisy_mask_config(noisy_cfg(**{key: value}))


def test_loss_on_a_stock_head_is_an_error():
    cfg = noisy_cfg(LOSS="dice")
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    with pytest.raises(ValueError, match="read only by NoisyMaskRCNNConvUpsampleHead"):
        check_noisy_mask_config(cfg)
    cfg.MODEL.ROI_MASK_HEAD.LOSS = "bce"
    check_noisy_mask_config(cfg)  # bce on the stock head is what the stock head does


@pytest.mark.parametrize("value", [0.0, 1.0, float("nan")])
def test_mask_threshold_out_of_range_names_the_key(value):
    with pytest.raises(ValueError, match=r"MODEL.ROI_MASK_HEAD.MASK_THRESHOLD = .* \(0, 1\)"):
        check_noisy_mask_config(noisy_cfg(MASK_THRESHOLD=value))


def test_mask_threshold_on_a_stock_head_is_an_error():
    cfg = noisy_cfg(MASK_THRESHOLD=0.7)
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    with pytest.raises(ValueError, match="MASK_THRESHOLD = 0.7 is read only by NoisyMask"):
        check_noisy_mask_config(cfg)


def test_misspelled_option_is_rejected_by_merge(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("MODEL:\n  ROI_MASK_HEAD:\n    LABEL_SMOOTHNG: 0.1\n")
    cfg = noisy_cfg()
    with pytest.raises(KeyError, match="LABEL_SMOOTHNG"):
        cfg.merge_from_file(str(path))


def test_missing_config_keys_say_what_to_call():
    cfg = get_cfg()
    with pytest.raises(KeyError, match="add_noisy_mask_config"):
        mask_loss_from_config(cfg)


def test_config_defaults_are_the_loss_functions_defaults():
    head = noisy_cfg().MODEL.ROI_MASK_HEAD
    for entry in LOSSES.values():
        parameters = inspect.signature(entry.function).parameters
        for keyword, key in entry.options.items():
            default = parameters[keyword].default
            # The type too: an int key such as BOUNDARY_BAND_WIDTH must merge an int from YAML.
            assert head[key.name] == default and type(head[key.name]) is type(default), key.name
    assert head.LOSS_WEIGHT == 1.0
    # Every numeric key is LOSS_WEIGHT or the option of exactly one loss.
    loss_keys = [key.name for entry in LOSSES.values() for key in entry.options.values()]
    assert sorted(OPTIONS) == sorted(["LOSS_WEIGHT"] + loss_keys)
    assert len(set(loss_keys)) == len(loss_keys)


def test_a_config_key_given_to_two_options_is_rejected():
    def eps_key(name):
        return ConfigKey(name, lambda v: v > 0, "> 0", "eps")

    tversky_options = {**LOSSES["tversky"].options, "eps": eps_key("EPS")}
    twice = {
        "dice": LossEntry(soft_dice_loss, {"eps": eps_key("EPS")}),
        "tversky": LossEntry(tversky_loss, tversky_options),
    }
    with pytest.raises(ValueError, match=r"ROI_MASK_HEAD.EPS \(option 'eps' of the loss 'tversky'"):
        _numeric_keys(twice)
    with pytest.raises(ValueError, match=r"ROI_MASK_HEAD.LOSS_WEIGHT \(option 'eps' .* already"):
        _numeric_keys({"dice": LossEntry(soft_dice_loss, {"eps": eps_key("LOSS_WEIGHT")})})


def test_boundary_dilation_ratio_default_and_range():
    cfg = noisy_cfg()
    # the metric authors' value, the default of the evaluation functions too
    assert cfg.TEST.BOUNDARY_DILATION_RATIO == 0.02
    check_noisy_mask_config(cfg)
    cfg.TEST.BOUNDARY_DILATION_RATIO = 1  # the whole diagonal: the upper end
    check_noisy_mask_config(cfg)
    for value in (0.0, -0.01, 1.5, float("nan"), float("inf")):
        cfg.TEST.BOUNDARY_DILATION_RATIO = value
        with pytest.raises(ValueError) as error:
            check_noisy_mask_config(cfg)
        finite = "" if math.isfinite(value) else "finite and "
        assert str(error.value) == (
            f"TEST.BOUNDARY_DILATION_RATIO = {value!r} is out of range: it must be {finite}in "
            "(0, 1], a fraction of the image diagonal (0.02 by default)"
        )
    for value in ("0.01", True, None):
        cfg.TEST.BOUNDARY_DILATION_RATIO = value
        with pytest.raises(ValueError, match=r"^TEST.BOUNDARY_DILATION_RATIO must be a number"):
            check_noisy_mask_config(cfg)
    with pytest.raises(KeyError, match="TEST.BOUNDARY_DILATION_RATIO is missing: call add_noisy"):
        boundary_dilation_ratio(get_cfg())  # without add_noisy_mask_config


def test_yaml_values_are_ints_and_floats():
    # What yaml and yacs give; a float subclass (numpy's float64) passes as a float.
    cfg = noisy_cfg(LOSS="dice", DICE_EPS=np.float64(0.5), LOSS_WEIGHTS=[])
    assert mask_loss_from_config(cfg) == ("dice", {"eps": 0.5}, 1.0)
    for value in (np.float32(0.5), True, "0.5", None):
        with pytest.raises(ValueError, match="^MODEL.ROI_MASK_HEAD.DICE_EPS must be a number, got"):
            check_noisy_mask_config(noisy_cfg(LOSS="dice", DICE_EPS=value))


def test_the_dataset_check_keys_are_defined_here():
    cfg = get_cfg()
    add_dataset_checks_config(cfg)
    datasets = cfg.DATASETS
    assert (datasets.VALIDATE, datasets.VALIDATE_IMAGES, datasets.SKIP_DEGENERATE_ANNOTATIONS) == (
        True,
        False,
        False,
    )
    assert noisy_cfg().DATASETS.VALIDATE is True  # add_noisy_mask_config adds them
