"""The noise-robust mask losses, their weighted sums and their config keys.

Values are checked against hand-derived numbers (derivation in the comments) and against
straightforward reference implementations written here, mostly pixel by pixel in float64.
"""
import functools
import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import build_mask_head
from detectron2.structures import Boxes, Instances, PolygonMasks
from detectron2.utils.events import EventStorage
from torchvision.ops import sigmoid_focal_loss

from noisy_mask import check_noisy_mask_config
from noisy_mask.losses.boundary import (
    boundary_band_bce_loss,
    bpm_bce_loss,
    gaussian_blur,
    morph_tolerant_bce_loss,
    outline_band,
    svls_loss,
)
from noisy_mask.config import DEFAULTS, mask_loss_from_config
from noisy_mask.losses.basic import bce_loss, soft_dice_loss
from noisy_mask.losses.table import (
    LOSSES,
    MASK_LOSSES,
    get_mask_loss,
    loss_terms,
    weighted_sum_loss,
)
from noisy_mask.losses.robust import (
    bootstrap_hard_loss,
    bootstrap_soft_loss,
    focal_loss,
    gce_loss,
    lovasz_hinge_loss,
    symmetric_ce_loss,
    tversky_loss,
)
from noisy_mask.modeling.targets import mask_targets
from samples import noisy_cfg

LN2, LN3 = math.log(2.0), math.log(3.0)


def random_case(n=4, m=10, seed=0):
    """float64 logits of a few units and {0, 1} targets: a random rectangle plus flipped pixels."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, m, m, generator=g, dtype=torch.float64) * 3
    target = torch.zeros(n, m, m, dtype=torch.float64)
    for i in range(n):
        y0, x0 = torch.randint(0, m // 2, (2,), generator=g).tolist()
        h, w = torch.randint(2, m // 2 + 1, (2,), generator=g).tolist()
        target[i, y0 : y0 + h, x0 : x0 + w] = 1
    flips = torch.rand(n, m, m, generator=g) < 0.1
    return logits, torch.where(flips, 1 - target, target)


def sigmoid(x):
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def pixels(logits, target):
    return zip(logits.flatten().tolist(), target.flatten().tolist())


def softplus(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


def pixel_bce(x, t):
    # -[t log p + (1 - t) log(1 - p)] with log p = -softplus(-x) and log(1 - p) = -softplus(x)
    return t * softplus(-x) + (1 - t) * softplus(x)


def close(ours, expected, rel=1e-5, tol=1e-6):
    assert ours.dtype == torch.float32
    assert ours.item() == pytest.approx(expected, rel=rel, abs=tol)


# ---------------------------------------------------------------- references, pixel by pixel


def reference_gce(logits, target, q):
    total = 0.0
    for x, y in pixels(logits, target):
        p_t = sigmoid(x) if y == 1 else 1 - sigmoid(x)
        total += (1 - p_t**q) / q
    return total / logits.numel()


def reference_sce(logits, target, alpha, beta, log_zero):
    def log_or_a(v):
        return log_zero if v == 0 else math.log(v)

    total = 0.0
    for x, y in pixels(logits, target):
        p = sigmoid(x)
        rce = -(p * log_or_a(y) + (1 - p) * log_or_a(1 - y))
        total += alpha * pixel_bce(x, y) + beta * rce
    return total / logits.numel()


def reference_bootstrap(logits, target, beta, hard):
    total = 0.0
    for x, y in pixels(logits, target):
        p = sigmoid(x)
        predicted = float(p > 0.5) if hard else p
        total += pixel_bce(x, beta * y + (1 - beta) * predicted)
    return total / logits.numel()


# Berman et al.'s lovasz_losses.py, `lovasz_grad` and `lovasz_hinge_flat`, transcribed.
def authors_lovasz_grad(gt_sorted):
    p = len(gt_sorted)
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.float().cumsum(0)
    union = gts + (1 - gt_sorted).float().cumsum(0)
    jaccard = 1.0 - intersection / union
    if p > 1:  # cover 1-pixel case
        jaccard[1:p] = jaccard[1:p] - jaccard[0:-1]
    return jaccard


def authors_lovasz_hinge_flat(logits, labels):
    if len(labels) == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels.float() - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    gt_sorted = labels[perm]
    grad = authors_lovasz_grad(gt_sorted)
    return torch.dot(F.relu(errors_sorted), grad)


def reference_lovasz(logits, target):
    # per_image=True: the mean over images of lovasz_hinge_flat on the flattened image; in
    # float32, as the authors' `.float()` calls have it.
    losses = [
        authors_lovasz_hinge_flat(x.reshape(-1), y.reshape(-1))
        for x, y in zip(logits.float(), target.float())
    ]
    return torch.stack(losses).mean()


def reference_tversky(logits, target, alpha, beta, eps):
    scores = []
    for x_roi, y_roi in zip(logits, target):
        tp = fp = fn = 0.0
        for x, y in pixels(x_roi, y_roi):
            p = sigmoid(x)
            tp, fp, fn = tp + p * y, fp + p * (1 - y), fn + (1 - p) * y
        scores.append((2 * tp + eps) / (2 * tp + 2 * alpha * fp + 2 * beta * fn + eps))
    return 1 - sum(scores) / len(scores)


def clamped(grid, i, j):
    """grid[i][j] with indices clamped into the grid: replicate padding."""
    m = len(grid)
    return grid[min(max(i, 0), m - 1)][min(max(j, 0), m - 1)]


def reference_blur(mask, sigma):
    """A direct 2-D convolution with the normalized Gaussian of radius ceil(2 sigma)."""
    m, r = len(mask), math.ceil(2 * sigma)
    g = {d: math.exp(-d * d / (2 * sigma * sigma)) for d in range(-r, r + 1)}
    z = sum(g.values()) ** 2
    out = [[0.0] * m for _ in range(m)]
    for i in range(m):
        for j in range(m):
            for a in range(-r, r + 1):
                for b in range(-r, r + 1):
                    out[i][j] += g[a] * g[b] * clamped(mask, i + a, j + b) / z
    return out


def reference_svls(logits, target, sigma):
    total = 0.0
    for x_roi, y_roi in zip(logits, target):
        blurred = reference_blur(y_roi.tolist(), sigma)
        for x, t in zip(x_roi.flatten().tolist(), sum(blurred, [])):
            total += pixel_bce(x, t)
    return total / logits.numel()


def reference_band(mask, width):
    """Pixels within `width` (chessboard) of a pixel having a differing 8-neighbour in the grid."""
    m = len(mask)
    inside = range(m)

    def neighbours(i, j, d):
        return [
            (a, b)
            for a in range(i - d, i + d + 1)
            for b in range(j - d, j + d + 1)
            if a in inside and b in inside
        ]

    outline = [
        [any(mask[a][b] != mask[i][j] for a, b in neighbours(i, j, 1)) for j in inside]
        for i in inside
    ]
    return [
        [any(outline[a][b] for a, b in neighbours(i, j, width)) for j in inside] for i in inside
    ]


def reference_boundary_band(logits, target, width, band_weight):
    num = den = 0.0
    for x_roi, y_roi in zip(logits, target):
        band = sum(reference_band(y_roi.tolist(), width), [])
        for (x, y), in_band in zip(pixels(x_roi, y_roi), band):
            w = band_weight if in_band else 1.0
            num, den = num + w * pixel_bce(x, y), den + w
    return num / den if den > 0 else 0.0


def reference_bpm_weights(logits, scale):
    weights = []
    for x_roi in logits:
        p = [[sigmoid(x) for x in row] for row in x_roi.tolist()]
        m = len(p)
        neighbours = [(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1) if (a, b) != (0, 0)]
        lap = [
            [
                abs(8 * p[i][j] - sum(clamped(p, i + a, j + b) for a, b in neighbours))
                for j in range(m)
            ]
            for i in range(m)
        ]
        mean = sum(map(sum, lap)) / m**2
        weights.append(
            [[(1 - scale) + scale * (b / mean if mean > 0 else 1.0) for b in row] for row in lap]
        )
    return torch.tensor(weights, dtype=torch.float64)


def reference_bpm(logits, target, scale):
    weights = reference_bpm_weights(logits, scale).flatten().tolist()
    return (
        sum(w * pixel_bce(x, y) for w, (x, y) in zip(weights, pixels(logits, target)))
        / logits.numel()
    )


# ------------------------------------------------------------------------------ per loss


def test_gce_hand_derived():
    # Logits 0 and ln 3 (p = 1/2, 3/4), targets 1 and 0: p_t = 1/2 and 1/4.
    # q = 1:   mean(1 - p_t) = (1/2 + 3/4) / 2 = 0.625, the mean absolute error |y - p|.
    # q = 1/2: mean(2 (1 - sqrt(p_t))) = (2 - sqrt 2 + 2 - 1) / 2 = (3 - sqrt 2) / 2.
    logits = torch.tensor([[[0.0, LN3]]])
    target = torch.tensor([[[1.0, 0.0]]])
    close(gce_loss(logits, target, q=1.0), 0.625)
    close(gce_loss(logits, target, q=0.5), (3 - math.sqrt(2)) / 2)
    close(gce_loss(logits, target, q=1.0), (target - torch.sigmoid(logits)).abs().mean().item())


def test_gce_tends_to_bce_as_q_goes_to_zero():
    # (1 - p^q) / q = -log p - q (log p)^2 / 2 + O(q^2): at q = 1e-5 within 1e-4 of BCE.
    logits, target = random_case(seed=1)
    torch.testing.assert_close(
        gce_loss(logits, target, q=1e-5), bce_loss(logits, target), rtol=1e-4, atol=0
    )


def test_sce_hand_derived():
    # Pixel 1: logit ln 3 (p = 3/4), target 0: BCE = ln 4, RCE = -(p A + (1 - p) log 1) = -3/4 A.
    # Pixel 2: logit 0 (p = 1/2), target 1:    BCE = ln 2, RCE = -(p log 1 + (1 - p) A) = -1/2 A.
    # With A = -4: RCE = 3 and 2.  alpha = 0.5, beta = 2:
    #   L = 0.5 (ln 4 + ln 2) / 2 + 2 (3 + 2) / 2.
    logits = torch.tensor([[[LN3, 0.0]]])
    target = torch.tensor([[[0.0, 1.0]]])
    loss = symmetric_ce_loss(logits, target, alpha=0.5, beta=2.0, log_zero=-4.0)
    close(loss, 0.5 * (3 * LN2) / 2 + 2 * 5 / 2)
    # beta = 0 leaves alpha BCE.
    logits, target = random_case(seed=2)
    torch.testing.assert_close(
        symmetric_ce_loss(logits, target, alpha=0.3, beta=0.0), 0.3 * bce_loss(logits, target)
    )


def test_bootstrap_hand_derived():
    # Logit ln 3 (p = 3/4), target 0.  Soft, beta 0.95: t = 0.05 * 3/4 = 0.0375,
    # L = -(t ln 3/4 + (1 - t) ln 1/4).  Hard, beta 0.8: t = 0.2 * 1[3/4 > 1/2] = 0.2.
    logits = torch.tensor([[[LN3]]])
    target = torch.zeros(1, 1, 1)
    close(
        bootstrap_soft_loss(logits, target, beta=0.95),
        -(0.0375 * math.log(0.75) + 0.9625 * math.log(0.25)),
    )
    close(
        bootstrap_hard_loss(logits, target, beta=0.8),
        -(0.2 * math.log(0.75) + 0.8 * math.log(0.25)),
    )


@pytest.mark.parametrize("loss", [bootstrap_soft_loss, bootstrap_hard_loss])
def test_bootstrap_with_beta_one_is_bce(loss):
    logits, target = random_case(seed=3)
    torch.testing.assert_close(loss(logits, target, beta=1.0), bce_loss(logits, target))


def test_bootstrap_gradient_treats_the_prediction_as_a_constant():
    # With t detached, dL/dx = (p - t) / n, the BCE gradient towards the mixed target.
    logits, target = random_case(seed=4)
    p = torch.sigmoid(logits)
    for loss, t in (
        (lambda x: bootstrap_soft_loss(x, target, beta=0.9), 0.9 * target + 0.1 * p),
        (
            lambda x: bootstrap_hard_loss(x, target, beta=0.7),
            0.7 * target + 0.3 * (p > 0.5).double(),
        ),
    ):
        x = logits.clone().requires_grad_(True)
        loss(x).backward()
        torch.testing.assert_close(x.grad, (p - t) / logits.numel(), rtol=1e-4, atol=1e-9)


def test_focal_hand_derived():
    # Logit 0 (p = 1/2), target 1: p_t = 1/2, BCE = ln 2.  gamma 2, alpha 1/4: 1/4 * (1/2)^2 * ln 2.
    # gamma 0 and alpha -1 leave plain BCE.
    close(focal_loss(torch.zeros(1, 1, 1), torch.ones(1, 1, 1)), LN2 / 16)
    logits, target = random_case(seed=5)
    torch.testing.assert_close(
        focal_loss(logits, target, gamma=0.0, alpha=-1.0), bce_loss(logits, target)
    )


@pytest.mark.parametrize("gamma, alpha", [(2.0, 0.25), (0.5, 0.75), (1.0, -1.0), (3.0, 0.0)])
def test_focal_agrees_with_torchvision(gamma, alpha):
    logits, target = random_case(seed=6)
    reference = sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction="mean")
    torch.testing.assert_close(
        focal_loss(logits, target, gamma=gamma, alpha=alpha).double(),
        reference,
        rtol=1e-5,
        atol=1e-7,
    )


def test_focal_gradient_is_finite_where_torchvision_is_not():
    # gamma < 1 at p_t = 1: d(1 - p_t)^gamma / dp_t is infinite, times a zero sigmoid slope.
    logits = torch.tensor([[[1e4, -1e4]]], requires_grad=True)
    focal_loss(logits, torch.tensor([[[1.0, 0.0]]]), gamma=0.5).backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_lovasz_hand_derived():
    # Logits (2, 0.5), labels (1, 0): errors 1 - 2 = -1 and 1 + 0.5 = 1.5.  Sorted: 1.5 (label 0),
    # then -1 (label 1).  P = 1; J_1 = 1 - (1 - 0) / (1 + 1) = 1/2, J_2 = 1 - (1 - 1) / 2 = 1.
    # L = relu(1.5) * 1/2 + relu(-1) * (1 - 1/2) = 0.75.
    close(lovasz_hinge_loss(torch.tensor([[[2.0, 0.5]]]), torch.tensor([[[1.0, 0.0]]])), 0.75)
    # Every pixel on the right side with margin >= 1: all errors <= 0, loss 0 (empty mask too).
    target = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]])
    close(lovasz_hinge_loss((2 * target - 1) * 3, target), 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lovasz_agrees_with_the_authors_code(seed):
    logits, target = random_case(seed=seed)
    target[0] = 0  # an empty mask
    target[1] = 1  # and a full one
    x1, x2 = logits.float().requires_grad_(True), logits.float().requires_grad_(True)
    ours, reference = lovasz_hinge_loss(x1, target), reference_lovasz(x2, target)
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)
    ours.backward()
    reference.backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-6, atol=1e-9)


def test_tversky_hand_derived():
    # Logits 0 (p = 1/2) on a 2x2 RoI with two foreground pixels: TP = 1, FP = 1, FN = 1.
    # alpha 0.3, beta 0.7: T = (2 + eps) / (2 + 0.6 + 1.4 + eps) = (2 + eps) / (4 + eps).
    eps = 1e-3
    loss = tversky_loss(
        torch.zeros(1, 2, 2), torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]), alpha=0.3, beta=0.7, eps=eps
    )
    close(loss, 1 - (2 + eps) / (4 + eps))
    # alpha = 1, beta = 0, all predicted background: T = (0 + eps) / (0 + 0 + eps) = 1, loss 0.
    close(tversky_loss(torch.full((1, 2, 2), -1e4), torch.ones(1, 2, 2), alpha=1.0, beta=0.0), 0.0)


@pytest.mark.parametrize("eps", [1e-6, 1.0])
def test_tversky_with_equal_halves_is_the_soft_dice(eps):
    logits, target = random_case(seed=7)
    torch.testing.assert_close(
        tversky_loss(logits, target, alpha=0.5, beta=0.5, eps=eps),
        soft_dice_loss(logits, target, eps=eps),
    )


def test_gaussian_blur_hand_derived():
    # One foreground pixel in the middle of a 7x7 grid, sigma 1 (radius 2): the 1-D weights are
    # e^(-d^2/2) / Z with Z = 1 + 2 e^(-1/2) + 2 e^(-2), so the centre becomes 1 / Z^2, its
    # edge neighbour e^(-1/2) / Z^2 and its corner neighbour e^(-1) / Z^2.
    mask = torch.zeros(1, 7, 7)
    mask[0, 3, 3] = 1
    z = 1 + 2 * math.exp(-0.5) + 2 * math.exp(-2)
    blurred = gaussian_blur(mask, 1.0)
    assert blurred[0, 3, 3].item() == pytest.approx(1 / z**2, rel=1e-12)
    assert blurred[0, 3, 4].item() == pytest.approx(math.exp(-0.5) / z**2, rel=1e-12)
    assert blurred[0, 2, 2].item() == pytest.approx(math.exp(-1) / z**2, rel=1e-12)
    assert blurred.sum().item() == pytest.approx(1.0, rel=1e-12)  # far from the border: mass kept
    # Foreground and background are treated alike: blur(1 - y) = 1 - blur(y).
    torch.testing.assert_close(gaussian_blur(1 - mask, 1.0), 1 - blurred)


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_svls_on_a_uniform_target_is_bce(fill):
    # Replicate padding: a uniform target blurs to itself, exactly, so the loss is BCE bit for bit.
    logits, _ = random_case(seed=8)
    target = torch.full_like(logits, fill)
    assert torch.equal(svls_loss(logits, target, sigma=2.0), bce_loss(logits, target))


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.7])
def test_svls_agrees_with_a_direct_convolution(sigma):
    logits, target = random_case(n=2, seed=9)
    close(svls_loss(logits, target, sigma=sigma), reference_svls(logits, target, sigma))


def square_target(m, lo, hi):
    target = torch.zeros(1, m, m)
    target[0, lo:hi, lo:hi] = 1
    return target


def test_outline_band_of_a_square_counted_by_hand():
    # A 4x4 square (rows and columns 2..5) in an 8x8 grid.  Its outline is its own border ring,
    # 4 * 4 - 2 * 2 = 12 pixels, plus the ring just outside, 6 * 6 - 4 * 4 = 20 pixels: 32 for
    # width 0.  The 2x2 core and the grid's outer ring (64 - 36 = 28 pixels) are not in it.
    target = square_target(8, 2, 6)
    band = outline_band(target, 0)[0]
    assert band.sum().item() == 32
    assert not band[3:5, 3:5].any() and not band[0].any() and not band[:, 7].any()
    # Width 1 in a 10x10 grid (square at 3..6): the band is rows and columns 1..8, 64 pixels,
    # leaving only the grid's outer ring of 36 pixels.
    band = outline_band(square_target(10, 3, 7), 1)[0]
    assert band.sum().item() == 64 and band[1:9, 1:9].all()


def test_boundary_band_loss_hand_derived():
    # Same 8x8 square, every logit v.  Outside the band (width 0): 4 foreground pixels with
    # BCE softplus(-v) and 28 background pixels with softplus(v).  In the band: 12 foreground
    # and 20 background pixels, with weight 1/2 here:
    #   L = (4 s(-v) + 28 s(v) + 1/2 (12 s(-v) + 20 s(v))) / (32 + 1/2 * 32)
    v = 0.7
    target = square_target(8, 2, 6)
    logits = torch.full_like(target, v)
    expected = (
        4 * softplus(-v) + 28 * softplus(v) + 0.5 * (12 * softplus(-v) + 20 * softplus(v))
    ) / 48
    close(boundary_band_bce_loss(logits, target, width=0, band_weight=0.5), expected)
    # The band ignored: the mean over the 32 pixels outside it.
    close(
        boundary_band_bce_loss(logits, target, width=0), (4 * softplus(-v) + 28 * softplus(v)) / 32
    )


def test_boundary_band_all_ignored_is_zero_with_zero_gradient():
    # Width 1 around the 8x8 square covers the whole grid: every weight is 0.
    logits = torch.full((1, 8, 8), 0.3, requires_grad=True)
    loss = boundary_band_bce_loss(logits, square_target(8, 2, 6), width=1)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_boundary_band_without_an_outline_is_bce(fill):
    logits, _ = random_case(seed=10)
    target = torch.full_like(logits, fill)
    torch.testing.assert_close(
        boundary_band_bce_loss(logits, target, width=2), bce_loss(logits, target)
    )


@pytest.mark.parametrize("width, band_weight", [(0, 0.0), (1, 0.25), (2, 0.0), (100, 0.5)])
def test_boundary_band_agrees_with_a_pixel_loop(width, band_weight):
    logits, target = random_case(n=3, seed=11)
    loss = boundary_band_bce_loss(logits, target, width=width, band_weight=band_weight)
    close(loss, reference_boundary_band(logits, target, width, band_weight))


def test_boundary_band_rejects_a_fractional_width():
    with pytest.raises(ValueError, match="width must be an integer >= 0"):
        boundary_band_bce_loss(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), width=1.5)


def test_bpm_hand_derived():
    # A 1x3 RoI with p = (1/2, 3/4, 3/4), targets (1, 1, 0).  With replicate padding every 3x3
    # neighbourhood has three identical rows, so |8 p - neighbours| = 3 |2 p_j - p_left - p_right|
    # with the outer neighbours replicated: 3 (1/4, 1/4, 0); mean 1/2, map (3/2, 3/2, 0).
    # scale 1: L = (3/2 ln 2 + 3/2 ln(4/3) + 0 * ln 4) / 3 = ln(8/3) / 2.
    logits = torch.tensor([[[0.0, LN3, LN3]]])
    target = torch.tensor([[[1.0, 1.0, 0.0]]])
    close(bpm_bce_loss(logits, target, scale=1.0), math.log(8 / 3) / 2)
    # scale 1/2: weights (5/4, 5/4, 1/2).
    close(
        bpm_bce_loss(logits, target, scale=0.5),
        (1.25 * LN2 + 1.25 * math.log(4 / 3) + 0.5 * math.log(4)) / 3,
    )


def test_bpm_reduces_to_bce():
    logits, target = random_case(seed=12)
    torch.testing.assert_close(bpm_bce_loss(logits, target, scale=0.0), bce_loss(logits, target))
    # A flat prediction has no Laplacian anywhere: the guard gives every pixel weight 1.
    flat = torch.full_like(logits, -1e4)
    torch.testing.assert_close(bpm_bce_loss(flat, target, scale=1.0), bce_loss(flat, target))


@pytest.mark.parametrize("scale", [1.0, 0.3])
def test_bpm_agrees_with_a_pixel_loop_and_detaches_the_map(scale):
    logits, target = random_case(n=3, seed=13)
    close(bpm_bce_loss(logits, target, scale=scale), reference_bpm(logits, target, scale))
    # The map is a constant: dL/dx = w (p - y) / n, where each RoI's weights average 1.
    weights = reference_bpm_weights(logits, scale)
    torch.testing.assert_close(weights.mean(dim=(1, 2)), torch.ones(3, dtype=torch.float64))
    x = logits.clone().requires_grad_(True)
    bpm_bce_loss(x, target, scale=scale).backward()
    expected = weights * (torch.sigmoid(logits) - target) / logits.numel()
    torch.testing.assert_close(x.grad, expected, rtol=1e-4, atol=1e-8)


# ------------------------------------------------------------------------- all the losses

SMOOTH_LOSSES = [
    (gce_loss, {"q": 0.7}),
    (symmetric_ce_loss, {"alpha": 0.5, "beta": 1.0}),
    (focal_loss, {"gamma": 2.0, "alpha": 0.25}),
    (tversky_loss, {"alpha": 0.3, "beta": 0.7, "eps": 1.0}),
    (svls_loss, {"sigma": 1.0}),
    (boundary_band_bce_loss, {"width": 0, "band_weight": 0.25}),
]


@pytest.mark.parametrize("loss, options", SMOOTH_LOSSES, ids=[f.__name__ for f, _ in SMOOTH_LOSSES])
def test_gradcheck(loss, options):
    # The losses compute in float32, so finite differences use a float32-sized step and tolerance.
    logits, target = random_case(n=1, m=4, seed=14)
    logits = (logits / 3).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: loss(x, target, **options).double(), (logits,), eps=1e-2, atol=1e-4, rtol=1e-3
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_pixel_losses_agree_with_pixel_loops(seed):
    logits, target = random_case(seed=seed)
    for q in (0.7, 0.2, 1.0):
        close(gce_loss(logits, target, q=q), reference_gce(logits, target, q))
    for alpha, beta, a in ((1.0, 1.0, -4.0), (0.1, 1.0, -6.0)):
        close(
            symmetric_ce_loss(logits, target, alpha=alpha, beta=beta, log_zero=a),
            reference_sce(logits, target, alpha, beta, a),
        )
    close(
        bootstrap_soft_loss(logits, target, beta=0.95),
        reference_bootstrap(logits, target, 0.95, hard=False),
    )
    close(
        bootstrap_hard_loss(logits, target, beta=0.8),
        reference_bootstrap(logits, target, 0.8, hard=True),
    )
    for alpha, beta in ((0.5, 0.5), (0.3, 0.7), (1.0, 0.0)):
        close(
            tversky_loss(logits, target, alpha=alpha, beta=beta),
            reference_tversky(logits, target, alpha, beta, 1e-6),
        )


def empty_full_and_square(m=14):
    target = torch.zeros(3, m, m)
    target[1] = 1
    target[2, 3:9, 4:11] = 1
    return target


@pytest.mark.parametrize(
    "name", sorted(MASK_LOSSES) + ["bce+dice", "focal+lovasz+bpm", "bce+pairwise_color"]
)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_extreme_logits_on_empty_full_and_partial_masks(name, dtype, image_options):
    # Logits +-1e4 in a checkerboard: every pixel saturated, half of them wrong.
    sign = torch.tensor([1.0, -1.0]).repeat(3, 14, 7).reshape(3, 14, 14)
    sign[:, 1::2] *= -1
    logits = (sign * 1e4).to(dtype).requires_grad_(True)
    loss = get_mask_loss(name)(logits, empty_full_and_square(), **image_options(name, logits))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad.float()).all()


@pytest.mark.parametrize("name", sorted(MASK_LOSSES) + ["bce+dice", "bce+pairwise_color"])
def test_autocast_does_not_lower_the_precision(name, image_options):
    logits, _ = random_case(n=3, m=14, seed=15)
    logits, target = logits.float(), empty_full_and_square()
    loss_fn = functools.partial(get_mask_loss(name), **image_options(name, logits))
    expected = loss_fn(logits, target)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = loss_fn(logits, target)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- weighted sums


def test_weighted_sum_adds_its_terms():
    logits, target = random_case(seed=16)
    combined = get_mask_loss("bce+dice")
    assert not isinstance(combined, torch.nn.Module)
    torch.testing.assert_close(
        combined(logits, target), bce_loss(logits, target) + soft_dice_loss(logits, target)
    )
    options = {"bce.weight": 0.5, "dice.weight": 2.0, "dice.eps": 1.0, "focal.gamma": 1.0}
    expected = (
        0.5 * bce_loss(logits, target)
        + 2.0 * soft_dice_loss(logits, target, eps=1.0)
        + focal_loss(logits, target, gamma=1.0)
    )
    torch.testing.assert_close(
        get_mask_loss(" bce + dice + focal ")(logits, target, **options), expected
    )
    torch.testing.assert_close(
        weighted_sum_loss(logits, target, terms=("bce", "dice", "focal"), **options), expected
    )


def test_weighted_sum_of_zero_rois_is_zero_and_connected():
    logits = torch.zeros(0, 28, 28, requires_grad=True)
    loss = get_mask_loss("bce+dice+lovasz")(logits, torch.zeros(0, 28, 28))
    assert loss.item() == 0.0 and loss.requires_grad


def test_loss_names_are_checked():
    assert loss_terms("bce") == ("bce",) and loss_terms("bce+dice") == ("bce", "dice")
    valid = "valid losses: bce, dice, label_smoothing, gce, sce, bootstrap_soft, bootstrap_hard"
    with pytest.raises(ValueError, match=rf"LOSS = 'bce\+dcie': term 'dcie' is unknown; {valid}"):
        get_mask_loss("bce+dcie")
    with pytest.raises(ValueError, match="term 'bce' appears twice"):
        get_mask_loss("bce+dice+bce")
    with pytest.raises(ValueError, match="term '' is unknown"):
        get_mask_loss("bce+")
    with pytest.raises(
        TypeError, match=r"Unexpected option 'tversky.alpha' for the loss 'bce\+dice'"
    ):
        get_mask_loss("bce+dice")(
            torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), **{"tversky.alpha": 0.3}
        )


# ----------------------------------------------------------------------- morph_tolerant


def reference_morph(mask, steps):
    """Dilation (steps > 0) or erosion (steps < 0) by |steps| 3x3 squares, with clamped indices."""
    grid = mask.tolist()
    m = len(grid)
    pick = max if steps > 0 else min
    for _ in range(abs(steps)):
        grid = [
            [pick(clamped(grid, i + di, j + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1))
             for j in range(m)]
            for i in range(m)
        ]
    return torch.tensor(grid, dtype=torch.float64)


def reference_morph_tolerant(logits, target, radius):
    per_roi = []
    for x, y in zip(logits, target):
        per_roi.append(min(
            sum(pixel_bce(a, b) for a, b in pixels(x, reference_morph(y, k))) / y.numel()
            for k in range(-radius, radius + 1)
        ))
    return sum(per_roi) / len(per_roi)


def test_morph_tolerant_hand_derived():
    # A 2x2 square in a 6x6 grid, every logit v.  Erosion by one step empties it (0 foreground
    # pixels), the target has 4 and the dilation the 4x4 square around it, 16.  Each candidate's
    # mean BCE is (f softplus(-v) + (36 - f) softplus(v)) / 36 for f foreground pixels, so for
    # v < 0 the fewest foreground pixels win (the erosion: softplus(v)), for v > 0 the most
    # (the dilation: (16 softplus(-v) + 20 softplus(v)) / 36).
    target = torch.zeros(1, 6, 6)
    target[0, 2:4, 2:4] = 1
    for v in (-0.8, 1.3):
        logits = torch.full_like(target, v)
        expected = softplus(v) if v < 0 else (16 * softplus(-v) + 20 * softplus(v)) / 36
        close(morph_tolerant_bce_loss(logits, target), expected)


def test_morph_tolerant_forgives_an_outline_one_pixel_off():
    # The prediction is confidently the target's dilation (an annotation drawn a pixel too
    # tight): BCE charges the 12-pixel ring at about 8 each, morph_tolerant almost nothing.
    target = square_target(8, 3, 5)
    logits = torch.where(reference_morph(target[0], 1).bool(), 8.0, -8.0)[None].float()
    assert bce_loss(logits, target).item() == pytest.approx(12 * softplus(8.0) / 64, rel=1e-3)
    assert morph_tolerant_bce_loss(logits, target).item() == pytest.approx(softplus(-8.0), rel=1e-3)
    # Two pixels off is beyond radius 1 but within radius 2.
    logits2 = torch.where(reference_morph(target[0], 2).bool(), 8.0, -8.0)[None].float()
    assert morph_tolerant_bce_loss(logits2, target).item() > 0.5
    assert morph_tolerant_bce_loss(logits2, target, radius=2).item() < 1e-3


@pytest.mark.parametrize("radius", [1, 2])
@pytest.mark.parametrize("seed", [0, 1])
def test_morph_tolerant_agrees_with_a_pixel_loop(radius, seed):
    logits, target = random_case(n=3, seed=20 + seed)
    close(morph_tolerant_bce_loss(logits, target, radius=radius),
          reference_morph_tolerant(logits, target, radius))


def test_morph_tolerant_gradient_is_bce_against_the_chosen_candidate():
    # Per RoI, the gradient is that of BCE against its closest candidate, divided by N.
    logits, target = random_case(n=3, seed=23)
    logits = logits.float().requires_grad_(True)
    morph_tolerant_bce_loss(logits, target).backward()
    for i in range(3):
        candidates = [reference_morph(target[i], k).float() for k in (-1, 0, 1)]
        losses = [bce_loss(logits[i : i + 1].detach(), c[None]).item() for c in candidates]
        chosen = candidates[losses.index(min(losses))]
        expected = (torch.sigmoid(logits[i].detach()) - chosen) / (3 * target[i].numel())
        torch.testing.assert_close(logits.grad[i], expected, rtol=1e-5, atol=1e-7)


def test_morph_tolerant_rejects_a_radius_below_one():
    with pytest.raises(ValueError, match="radius must be an integer >= 1"):
        morph_tolerant_bce_loss(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), radius=0)


# ---------------------------------------------------------------------------------- config


NEW_DEFAULTS = {
    "GCE_Q": 0.7,
    "SCE_ALPHA": 1.0,
    "SCE_BETA": 1.0,
    "SCE_LOG_ZERO": -4.0,
    "BOOTSTRAP_SOFT_BETA": 0.95,
    "BOOTSTRAP_HARD_BETA": 0.8,
    "FOCAL_GAMMA": 2.0,
    "FOCAL_ALPHA": 0.25,
    "TVERSKY_ALPHA": 0.5,
    "TVERSKY_BETA": 0.5,
    "TVERSKY_EPS": 1e-6,
    "SVLS_SIGMA": 1.0,
    "BOUNDARY_BAND_WIDTH": 1,
    "BOUNDARY_BAND_WEIGHT": 0.0,
    "BPM_SCALE": 1.0,
    "MORPH_TOLERANT_RADIUS": 1,
}


def test_new_defaults_match_the_functions():
    head = noisy_cfg().MODEL.ROI_MASK_HEAD
    assert {key: head[key] for key in NEW_DEFAULTS} == NEW_DEFAULTS
    assert head.LOSS_WEIGHTS == []
    # The config defaults are the functions' keyword defaults, so both ways of calling agree.
    for name, entry in LOSSES.items():
        signature = inspect.signature(MASK_LOSSES[name])
        for kw, key in entry.options.items():
            assert signature.parameters[kw].default == DEFAULTS[key.name], (name, kw)


@pytest.mark.parametrize(
    "loss, head, expected",
    [
        ("gce", {"GCE_Q": 0.3}, {"q": 0.3}),
        (
            "sce",
            {"SCE_ALPHA": 0.1, "SCE_BETA": 2.0, "SCE_LOG_ZERO": -6.0},
            {"alpha": 0.1, "beta": 2.0, "log_zero": -6.0},
        ),
        ("bootstrap_soft", {"BOOTSTRAP_SOFT_BETA": 0.9}, {"beta": 0.9}),
        ("bootstrap_hard", {"BOOTSTRAP_HARD_BETA": 0.6}, {"beta": 0.6}),
        ("focal", {"FOCAL_GAMMA": 0.0, "FOCAL_ALPHA": -1.0}, {"gamma": 0.0, "alpha": -1.0}),
        ("lovasz", {}, {}),
        (
            "tversky",
            {"TVERSKY_ALPHA": 0.3, "TVERSKY_BETA": 0.7, "TVERSKY_EPS": 1.0},
            {"alpha": 0.3, "beta": 0.7, "eps": 1.0},
        ),
        ("svls", {"SVLS_SIGMA": 2.0}, {"sigma": 2.0}),
        (
            "boundary_band",
            {"BOUNDARY_BAND_WIDTH": 2, "BOUNDARY_BAND_WEIGHT": 0.5},
            {"width": 2.0, "band_weight": 0.5},
        ),
        ("bpm", {"BPM_SCALE": 0.5}, {"scale": 0.5}),
        ("morph_tolerant", {"MORPH_TOLERANT_RADIUS": 2}, {"radius": 2.0}),
    ],
)
def test_options_reach_each_loss(loss, head, expected):
    cfg = noisy_cfg(LOSS=loss, **head)
    check_noisy_mask_config(cfg)
    assert mask_loss_from_config(cfg) == (loss, expected, 1.0)


@pytest.mark.parametrize(
    "key, value",
    [
        ("GCE_Q", 0.0), ("GCE_Q", 1.5), ("GCE_Q", -0.7),
        ("SCE_ALPHA", -0.1), ("SCE_BETA", -1.0), ("SCE_LOG_ZERO", 0.0), ("SCE_LOG_ZERO", 1.0),
        ("SCE_LOG_ZERO", float("-inf")),
        ("BOOTSTRAP_SOFT_BETA", 1.01), ("BOOTSTRAP_SOFT_BETA", -0.1), ("BOOTSTRAP_HARD_BETA", 2.0),
        ("FOCAL_GAMMA", -1.0), ("FOCAL_ALPHA", 1.5), ("FOCAL_ALPHA", -0.5), ("FOCAL_ALPHA", -2.0),
        ("TVERSKY_ALPHA", -0.1), ("TVERSKY_BETA", -0.1), ("TVERSKY_EPS", 0.0),
        ("SVLS_SIGMA", 0.0), ("SVLS_SIGMA", -1.0), ("SVLS_SIGMA", 11.0),
        ("BOUNDARY_BAND_WIDTH", -1), ("BOUNDARY_BAND_WIDTH", 1.5),
        ("BOUNDARY_BAND_WEIGHT", 1.5), ("BOUNDARY_BAND_WEIGHT", -0.5),
        ("BPM_SCALE", 1.5), ("BPM_SCALE", -0.1), ("BPM_SCALE", float("nan")),
        ("MORPH_TOLERANT_RADIUS", 0), ("MORPH_TOLERANT_RADIUS", 1.5), ("MORPH_TOLERANT_RADIUS", 6),
    ],
)  # fmt: skip
def test_out_of_range_values_name_the_key(key, value):
    with pytest.raises(
        ValueError, match=f"MODEL.ROI_MASK_HEAD.{key} = .* out of range: it must be"
    ):
        check_noisy_mask_config(noisy_cfg(**{key: value}))


def test_a_weighted_sum_from_a_yaml_file(tmp_path):
    path = tmp_path / "sum.yaml"
    path.write_text(
        "MODEL:\n  ROI_MASK_HEAD:\n    LOSS: bce+dice\n    LOSS_WEIGHTS: [1.0, 2.5]\n"
        "    DICE_EPS: 0.5\n"
        "    LOSS_WEIGHT: 2.0\n"
    )
    cfg = noisy_cfg()
    cfg.merge_from_file(str(path))
    check_noisy_mask_config(cfg)
    name, options, weight = mask_loss_from_config(cfg)
    assert (name, options, weight) == (
        "bce+dice",
        {"bce.weight": 1.0, "dice.weight": 2.5, "dice.eps": 0.5},
        2.0,
    )
    logits, target = random_case(seed=17)
    expected = bce_loss(logits, target) + 2.5 * soft_dice_loss(logits, target, eps=0.5)
    torch.testing.assert_close(get_mask_loss(name)(logits, target, **options), expected)
    # Without LOSS_WEIGHTS every term weighs 1.
    cfg.MODEL.ROI_MASK_HEAD.LOSS_WEIGHTS = []
    assert mask_loss_from_config(cfg)[1] == {"bce.weight": 1.0, "dice.weight": 1.0, "dice.eps": 0.5}


def test_band_width_is_an_integer_key_in_yaml(tmp_path):
    path = tmp_path / "band.yaml"
    path.write_text(
        "MODEL:\n  ROI_MASK_HEAD:\n    LOSS: boundary_band\n    BOUNDARY_BAND_WIDTH: 2\n"
    )
    cfg = noisy_cfg()
    cfg.merge_from_file(str(path))
    assert mask_loss_from_config(cfg) == ("boundary_band", {"width": 2.0, "band_weight": 0.0}, 1.0)


@pytest.mark.parametrize(
    "loss, weights, message",
    [
        ("bce+dice", [1.0], r"LOSS_WEIGHTS = \[1.0\] does not match LOSS = 'bce\+dice': 1 weight"),
        ("bce+dice", [1.0, 1.0, 1.0], r"'bce\+dice': 3 weight\(s\) for 2 terms"),
        (
            "dice",
            [2.0],
            r"LOSS = 'dice' is a single loss: leave MODEL.ROI_MASK_HEAD.LOSS_WEIGHTS empty",
        ),
        ("bce+dice", [1.0, -1.0], r"LOSS_WEIGHTS\[1\] = -1.0 is out of range: it must be >= 0"),
        ("bce+dice", [1.0, "a"], r"LOSS_WEIGHTS\[1\] must be a number, got 'a'"),
        ("bce+dice", 2.0, "LOSS_WEIGHTS must be a list of numbers, got 2.0"),
        ("bce+dcie", [], r"LOSS = 'bce\+dcie': term 'dcie' is unknown; valid losses: bce, dice"),
    ],
)
def test_bad_sums_name_the_key(loss, weights, message):
    with pytest.raises(ValueError, match=message):
        check_noisy_mask_config(noisy_cfg(LOSS=loss, LOSS_WEIGHTS=weights))


def test_a_sum_on_a_stock_head_is_an_error():
    cfg = noisy_cfg(LOSS="bce+dice")
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    with pytest.raises(ValueError, match="read only by NoisyMaskRCNNConvUpsampleHead"):
        check_noisy_mask_config(cfg)


def test_the_head_trains_on_a_weighted_sum_unchanged():
    # The registered head calls get_mask_loss(name)(logits, targets, **options) as for any loss.
    torch.manual_seed(0)
    cfg = noisy_cfg(LOSS="bce+tversky", LOSS_WEIGHTS=[1.0, 0.5], TVERSKY_ALPHA=0.3, LOSS_WEIGHT=2.0)
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV, cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 1, 8
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    head = build_mask_head(cfg, ShapeSpec(channels=4, height=7, width=7))
    instances = Instances((40, 40))
    instances.proposal_boxes = Boxes(
        torch.tensor([[2.0, 3.0, 30.0, 28.0], [10.0, 5.0, 38.0, 39.0]])
    )
    instances.gt_classes = torch.tensor([0, 2])
    instances.gt_masks = PolygonMasks([[[5, 5, 25, 8, 20, 26]], [[12, 10, 35, 12, 30, 36, 14, 30]]])
    x = torch.randn(2, 4, 7, 7)
    head.train()
    with EventStorage():
        loss = head(x, [instances])["loss_mask"]
    classes, targets = mask_targets([instances], 14, False, x.device)
    logits = head.class_logits(head.trunk(x), classes)
    expected = 2.0 * (bce_loss(logits, targets) + 0.5 * tversky_loss(logits, targets, alpha=0.3))
    torch.testing.assert_close(loss, expected)
    # The combined loss is a plain function, not a layer of the nn.Sequential head.
    bce_head = build_mask_head(
        noisy_cfg(**{k: cfg.MODEL.ROI_MASK_HEAD[k] for k in ("NUM_CONV", "CONV_DIM")}),
        ShapeSpec(channels=4, height=7, width=7),
    )
    assert [n for n, _ in head.named_children()] == [n for n, _ in bce_head.named_children()]
