"""Loss values against hand-derived numbers and the original experiment's code."""
import math

import pytest
import torch
import torch.nn.functional as F

from noisy_mask.losses.basic import bce_loss, label_smoothing_bce_loss, soft_dice_loss
from noisy_mask.losses.table import MASK_LOSSES, get_mask_loss


# The original experiment's functions, verbatim: the contract for `dice` and `label_smoothing`.
def seed_soft_dice_loss(pred_logits, target_masks, eps=1e-6):
    pred_probs = torch.sigmoid(pred_logits)
    intersection = (pred_probs * target_masks).sum(dim=(1, 2))
    union = pred_probs.sum(dim=(1, 2)) + target_masks.sum(dim=(1, 2))
    dice_score = (2.0 * intersection + eps) / (union + eps)
    return 1 - dice_score.mean()


def seed_label_smoothing_bce_loss(pred_logits, target_masks, smoothing=0.05):
    target_smoothed = target_masks * (1 - smoothing) + 0.5 * smoothing
    return F.binary_cross_entropy_with_logits(pred_logits, target_smoothed)


def random_case(n=6, m=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, m, m, generator=g, dtype=torch.float64) * 3
    target = (torch.rand(n, m, m, generator=g) > 0.6).double()
    return logits, target


def test_bce_hand_derived():
    # Pixel 1: logit 0 (p = 1/2), target 1: -ln(1/2) = ln 2.
    # Pixel 2: logit ln 3 (p = 3/4), target 0: -ln(1 - 3/4) = ln 4 = 2 ln 2.  Mean: 1.5 ln 2.
    logits = torch.tensor([[[0.0, math.log(3.0)]]])
    target = torch.tensor([[[1.0, 0.0]]])
    assert bce_loss(logits, target).item() == pytest.approx(1.5 * math.log(2.0), rel=1e-6)


def test_bce_gradient_is_sigmoid_minus_target_over_count():
    logits, target = random_case()
    logits.requires_grad_(True)
    bce_loss(logits, target).backward()
    expected = (torch.sigmoid(logits.detach()) - target) / logits.numel()
    torch.testing.assert_close(logits.grad, expected.to(logits.grad.dtype), rtol=1e-5, atol=1e-9)


def test_dice_hand_derived():
    # All logits 0 -> p = 1/2 on a 2x2 RoI whose target has two foreground pixels:
    # intersection = 2 * 1/2 = 1, union = 4 * 1/2 + 2 = 4, dice = (2 + eps) / (4 + eps).
    eps = 1e-6
    logits = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    expected = 1 - (2 + eps) / (4 + eps)
    assert soft_dice_loss(logits, target, eps=eps).item() == pytest.approx(expected, rel=1e-6)


def test_dice_is_mean_over_rois():
    # RoI 1 predicts its target perfectly (logits +-1e4): dice 1.  RoI 2 predicts background on an
    # all-foreground target: intersection 0, dice = eps / (4 + eps) ~ 0.  Loss = 1 - (1 + 0) / 2.
    big = 1e4
    logits = torch.tensor([[[big, -big], [-big, big]], [[-big, -big], [-big, -big]]])
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]])
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.5, abs=1e-6)


def test_label_smoothing_hand_derived():
    # s = 0.2: a foreground target becomes 1 - s/2 = 0.9.  Logit ln 3 -> p = 3/4:
    # L = -(0.9 ln(3/4) + 0.1 ln(1/4)).
    logits = torch.tensor([[[math.log(3.0)]]])
    target = torch.ones(1, 1, 1)
    expected = -(0.9 * math.log(0.75) + 0.1 * math.log(0.25))
    loss = label_smoothing_bce_loss(logits, target, smoothing=0.2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_label_smoothing_zero_is_bce():
    logits, target = random_case(seed=3)
    torch.testing.assert_close(label_smoothing_bce_loss(logits, target, smoothing=0.0),
                               bce_loss(logits, target).to(torch.float32))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agree_with_seed_code(seed):
    logits, target = random_case(seed=seed)
    for eps in (1e-6, 1.0):
        ours = soft_dice_loss(logits, target, eps=eps)
        torch.testing.assert_close(ours.double(), seed_soft_dice_loss(logits, target, eps), rtol=1e-6, atol=1e-7)
    for smoothing in (0.05, 0.3):
        ours = label_smoothing_bce_loss(logits, target, smoothing=smoothing)
        reference = seed_label_smoothing_bce_loss(logits, target, smoothing)
        torch.testing.assert_close(ours.double(), reference, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_agree_with_seed_code(seed):
    logits, target = random_case(seed=seed)
    for ours_fn, reference_fn in (
        (soft_dice_loss, seed_soft_dice_loss),
        (label_smoothing_bce_loss, seed_label_smoothing_bce_loss),
    ):
        x1 = logits.clone().requires_grad_(True)
        x2 = logits.clone().requires_grad_(True)
        ours_fn(x1, target).backward()
        reference_fn(x2, target).backward()
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("name", sorted(MASK_LOSSES))
def test_zero_rois_give_zero_connected_loss(name, image_options):
    logits = torch.zeros(0, 28, 28, requires_grad=True)
    loss = MASK_LOSSES[name](logits, torch.zeros(0, 28, 28), **image_options(name, logits))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert logits.grad.shape == (0, 28, 28)


@pytest.mark.parametrize("name", sorted(MASK_LOSSES))
@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_extreme_logits_and_uniform_targets_stay_finite(name, fill, dtype, image_options):
    logits = torch.tensor([1e4, -1e4]).repeat(2, 14, 7).reshape(2, 14, 14)
    logits = logits.clamp(torch.finfo(dtype).min, torch.finfo(dtype).max).to(dtype)
    logits.requires_grad_(True)
    loss = MASK_LOSSES[name](logits, torch.full((2, 14, 14), fill), **image_options(name, logits))
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad.float()).all()


def test_all_background_perfect_prediction_has_zero_dice_loss():
    # No foreground anywhere and p = 0: dice = (0 + eps) / (0 + eps) = 1, loss 0.
    logits = torch.full((3, 28, 28), -1e4)
    assert soft_dice_loss(logits, torch.zeros(3, 28, 28)).item() == 0.0


def test_low_precision_inputs_are_computed_in_float32():
    logits, target = random_case(seed=4)
    reference = bce_loss(logits.float(), target.float())
    half = bce_loss(logits.half(), target.bool())
    assert half.dtype == torch.float32
    # Only the rounding of the logits to float16 differs.
    assert half.item() == pytest.approx(reference.item(), rel=1e-3)


def test_unknown_loss_lists_valid_names():
    with pytest.raises(ValueError, match="bce, dice, label_smoothing"):
        get_mask_loss("dcie")
