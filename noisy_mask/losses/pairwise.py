"""A mask loss that also looks at the image: neighbouring pixels of one colour share a label.

Noisy outlines disagree with the image: an outline drawn a pixel too wide puts a pixel of the
background's colour into the mask. The pairwise term of BoxInst (Tian et al. 2021) asks that
neighbouring pixels of similar colour get the same label, so, added to BCE against the noisy
mask, it pulls the predicted outline onto the colour edge nearby. Same convention as
`noisy_mask.losses`, plus the colours of each RoI's M x M grid (`noisy_mask.modeling.image_colors`).
"""

import torch
import torch.nn.functional as F

from .utils import float32_loss

# Each unordered pair of neighbours once: right, down, down-right, down-left (times dilation).
NEIGHBOUR_OFFSETS = ((0, 1), (1, 0), (1, 1), (1, -1))


def neighbour_pairs(grid: torch.Tensor, dilation: int):
    """For each offset (dy, dx) of NEIGHBOUR_OFFSETS times `dilation`, the two (N, C, H', W')
    views of `grid` (N, C, M, M) whose pixels are those neighbours, both inside the grid."""
    m_y, m_x = grid.shape[-2:]
    for dy, dx in NEIGHBOUR_OFFSETS:
        dy, dx = dy * dilation, dx * dilation
        x0, x1 = max(0, -dx), m_x - max(0, dx)
        if dy >= m_y or x1 <= x0:
            continue
        yield grid[..., : m_y - dy, x0:x1], grid[..., dy:, x0 + dx : x1 + dx]


@float32_loss
def pairwise_color_loss(
    pred_logits: torch.Tensor,
    target_masks: torch.Tensor,
    image_colors: torch.Tensor,
    theta: float = 2.0,
    threshold: float = 0.3,
    dilation: int = 2,
) -> torch.Tensor:
    """BoxInst's pairwise affinity loss (Tian et al. 2021) within each RoI; the target is unused.

    For neighbours i, j at `dilation` px (8-neighbourhood) in a RoI's M x M grid, with CIELAB
    colours c and p = sigmoid(x):

        S_ij = exp(-||c_i - c_j|| / theta),    E = {(i, j) : S_ij >= threshold}
        L = sum_{(i,j) in E} -log(p_i p_j + (1 - p_i)(1 - p_j)) / max(|E|, 1)

    over all RoIs, each pair counted once. -log of the probability that i and j share a label
    is computed from logsigmoid terms (finite for any logits). BoxInst's values: theta 2 (its
    0.5 factor), threshold 0.3, dilation 2.

    Args:
        image_colors (Tensor): (N, 3, M, M) CIELAB colours of each RoI's grid (L in [0, 100]).
    """
    if dilation < 1 or dilation != int(dilation):
        raise ValueError(f"dilation must be an integer >= 1, got {dilation!r}")
    if image_colors.shape != (pred_logits.shape[0], 3, *pred_logits.shape[1:]):
        raise ValueError(
            f"image_colors must be (N, 3, M, M) = {(pred_logits.shape[0], 3, *pred_logits.shape[1:])}"
            f" for logits of shape {tuple(pred_logits.shape)}, got {tuple(image_colors.shape)}"
        )
    log_fg, log_bg = F.logsigmoid(pred_logits)[:, None], F.logsigmoid(-pred_logits)[:, None]
    total = pred_logits.new_zeros(())
    count = pred_logits.new_zeros(())
    pairs = zip(
        neighbour_pairs(image_colors.float(), int(dilation)),
        neighbour_pairs(log_fg, int(dilation)),
        neighbour_pairs(log_bg, int(dilation)),
    )
    for (c_i, c_j), (fg_i, fg_j), (bg_i, bg_j) in pairs:
        similarity = torch.exp(-torch.linalg.vector_norm(c_i - c_j, dim=1, keepdim=True) / theta)
        in_pairs = (similarity >= threshold).float()
        log_same = torch.logaddexp(fg_i + fg_j, bg_i + bg_j)
        total = total - (in_pairs * log_same).sum()
        count = count + in_pairs.sum()
    return total / count.clamp(min=1.0)
