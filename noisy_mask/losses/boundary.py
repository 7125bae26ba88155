"""BCE variants that treat the pixels near a mask's outline differently.

Noisy annotations are wrong mostly along the outline. These losses soften the targets there
(`svls`), ignore or down-weight them (`boundary_band`), re-weight pixels by the edges of the
prediction (`bpm`), or train against the closest of the target's erosions and dilations
(`morph_tolerant`). Same convention as `noisy_mask.losses`; distances are in pixels of the
M x M grid, and the grid's own border is never an outline (replicate padding).
"""

import math

import torch
import torch.nn.functional as F

from .utils import float32_loss


def _shifted_sum(padded: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
    """sum_k weights[k] * padded shifted by k along `dim`, cropping the padding of that dim."""
    size = padded.shape[dim] - (len(weights) - 1)
    return sum(w * padded.narrow(dim, k, size) for k, w in enumerate(weights.tolist()))


def gaussian_blur(masks: torch.Tensor, sigma: float) -> torch.Tensor:
    """(N, M, M) masks convolved with a normalized 2-D Gaussian of standard deviation `sigma` px.

    The kernel has radius r = ceil(2 sigma), weights exp(-d^2 / (2 sigma^2)) normalized to sum 1,
    and is applied separably to the replicate-padded masks. Computed in float64 and returned as
    such, so that uniform regions of a {0, 1} mask round back to exactly 0 or 1 in float32.
    """
    radius = math.ceil(2 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    weights = weights / weights.sum()
    padded = F.pad(masks.double(), (radius, radius, radius, radius), mode="replicate")
    return _shifted_sum(_shifted_sum(padded, weights, dim=1), weights, dim=2)


def outline_band(masks: torch.Tensor, width: int) -> torch.Tensor:
    """(N, M, M) bool: the pixels within `width` px (chessboard distance) of a mask's outline.

    The outline is the set of pixels whose 3x3 neighbourhood inside the grid holds both labels,
    so it is two pixels thick, one on each side of the edge. The band is its dilation by a
    (2 width + 1) square; width = 0 is the outline itself.
    """
    grid = masks[:, None].float()
    local_max = F.max_pool2d(grid, 3, stride=1, padding=1)
    local_min = -F.max_pool2d(-grid, 3, stride=1, padding=1)
    outline = (local_max != local_min).float()
    # A dilation wider than the grid covers what one of the grid's size covers.
    width = min(width, max(masks.shape[-2:]))
    band = F.max_pool2d(outline, 2 * width + 1, stride=1, padding=width)
    return band[:, 0] > 0


def laplacian_magnitude(probs: torch.Tensor) -> torch.Tensor:
    """|8 p_ij - sum of its 8 neighbours| of (N, M, M) maps, with replicate padding."""
    padded = F.pad(probs, (1, 1, 1, 1), mode="replicate")
    ones = torch.ones(3)
    box_sum = _shifted_sum(_shifted_sum(padded, ones, dim=1), ones, dim=2)
    return (9 * probs - box_sum).abs()


@float32_loss
def svls_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, sigma: float = 1.0
) -> torch.Tensor:
    """Spatially varying label smoothing (Islam and Glocker 2021): BCE against a blurred target.

        y~ = G_sigma * y (replicate padding),    L = BCE(x, y~), mean over all pixels

    Uniform regions keep their exact 0 or 1 targets; only pixels within about 2 sigma of the
    outline are smoothed, towards the local fraction of foreground. G_sigma is the normalized
    Gaussian of `gaussian_blur` (radius ceil(2 sigma)), so sigma sets the width of the smoothing;
    the authors' 3x3 kernel instead fixes the centre weight at 1/2.
    """
    smoothed = gaussian_blur(target_masks, sigma).clamp(0, 1).float()
    return F.binary_cross_entropy_with_logits(pred_logits, smoothed, reduction="mean")


@float32_loss
def boundary_band_bce_loss(
    pred_logits: torch.Tensor,
    target_masks: torch.Tensor,
    width: int = 1,
    band_weight: float = 0.0,
) -> torch.Tensor:
    """BCE that ignores or down-weights the pixels near the ground-truth outline.

    Pixels of `outline_band(y, width)` get weight w_i = band_weight, all others 1 (band_weight 0
    ignores the band, like PointRend's ignore label):

        L = sum_i w_i BCE_i / sum_i w_i    over all N * M * M pixels, and 0 if every w_i = 0
    """
    if width < 0 or width != int(width):
        raise ValueError(f"width must be an integer >= 0, got {width!r}")
    band = outline_band(target_masks, int(width))
    weights = torch.where(band, band_weight, 1.0)
    bce = F.binary_cross_entropy_with_logits(pred_logits, target_masks, reduction="none")
    total_weight = weights.sum()
    return (weights * bce).sum() / torch.where(total_weight > 0, total_weight, 1.0)


@float32_loss
def bpm_bce_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, scale: float = 1.0
) -> torch.Tensor:
    """BCE weighted by a boundary-preserving map (after Wang et al., "Noisy Boundaries", CVPR 2022).

    The map is the magnitude of the 8-neighbour Laplacian of the detached probabilities,
    normalized to mean 1 in each RoI (b_i := 1 in a RoI whose map is all zero):

        b = |lap(p)| / mean_RoI |lap(p)|,    w = (1 - scale) + scale b,    L = mean_i w_i BCE_i

    Each RoI's weights average 1, so L stays on the scale of BCE; scale in [0, 1] mixes uniform
    weights (0) with the map alone (1). The authors' released code uses the same kernel with
    zero padding and a mean of 3, and multiplies the map into the already averaged BCE; here it
    weights each pixel, and the grid's border is not taken for an edge.
    """
    lap = laplacian_magnitude(torch.sigmoid(pred_logits.detach()))
    mean = lap.mean(dim=(1, 2), keepdim=True)
    normalized = torch.where(mean > 0, lap / mean.clamp(min=torch.finfo(lap.dtype).tiny), 1.0)
    weights = (1 - scale) + scale * normalized
    bce = F.binary_cross_entropy_with_logits(pred_logits, target_masks, reduction="none")
    return (weights * bce).mean()


def morph_stack(masks: torch.Tensor, r: int) -> torch.Tensor:
    """(2 r + 1, N, M, M): the erosions by r ... 1, the masks, then their dilations by 1 ... r.

    Erosion and dilation by k are k steps of a 3x3 square (a k-pixel shift of every edge, in
    chessboard distance). Replicate padding: the grid's border is never an outline, so a mask
    that fills the grid stays full and an empty one stays empty.
    """
    grid = masks[:, None].float()
    eroded, dilated = [], []
    low = high = grid
    for _ in range(r):
        low = -F.max_pool2d(F.pad(-low, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        high = F.max_pool2d(F.pad(high, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        eroded.insert(0, low[:, 0])
        dilated.append(high[:, 0])
    return torch.stack([*eroded, grid[:, 0], *dilated])


@float32_loss
def morph_tolerant_bce_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, radius: int = 1
) -> torch.Tensor:
    """BCE against whichever of the target's erosions and dilations the prediction is closest to.

    With y_k the target dilated by k px (eroded by -k for k < 0) in the M x M grid:

        L = mean_RoIs min_{|k| <= radius} mean_pixels BCE(x, y_k)

    The min over hypotheses of multiple choice learning (Guzman-Rivera et al. 2012), taken over
    the outlines an annotator drawing up to `radius` px too wide or too tight could have meant.
    When the outlines of different annotations of a shape err by +-radius px around the true
    one, the true outline is the only prediction that every annotation's set reaches, so the
    loss no longer pays for fitting each annotation's own error. The gradient is that of BCE
    against the chosen y_k, one per RoI.
    """
    if radius < 1 or radius != int(radius):
        raise ValueError(f"radius must be an integer >= 1, got {radius!r}")
    candidates = morph_stack(target_masks, int(radius))
    logits = pred_logits.unsqueeze(0).expand_as(candidates)
    bce = F.binary_cross_entropy_with_logits(logits, candidates, reduction="none")
    per_roi = bce.mean(dim=(2, 3))  # (2 radius + 1, N)
    return per_roi.min(dim=0).values.mean()
