"""Per-pixel and per-RoI losses from the noisy-label and segmentation literature.

Same convention as `noisy_mask.losses`: (N, M, M) logits x and {0, 1} targets y, p = sigmoid(x),
a float32 scalar. Powers and logs of p are taken through `logsigmoid`, so logits of +-1e4 give
finite values and gradients.
"""

import torch
import torch.nn.functional as F

from .utils import float32_loss


@float32_loss
def gce_loss(pred_logits: torch.Tensor, target_masks: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Generalized cross entropy (Zhang and Sabuncu 2018), mean over all pixels.

    With p_t the probability of the target label (p for y = 1, 1 - p for y = 0):

        L = mean_i (1 - p_t^q) / q,    q in (0, 1]

    q = 1 gives the mean absolute error |y - p|, and q -> 0 tends to BCE, -log p_t.
    """
    # (1 - p^q) / q = -expm1(q log p) / q, without cancellation for small q.
    loss_if_positive = -torch.expm1(q * F.logsigmoid(pred_logits)) / q
    loss_if_negative = -torch.expm1(q * F.logsigmoid(-pred_logits)) / q
    return (target_masks * loss_if_positive + (1 - target_masks) * loss_if_negative).mean()


@float32_loss
def symmetric_ce_loss(
    pred_logits: torch.Tensor,
    target_masks: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    log_zero: float = -4.0,
) -> torch.Tensor:
    """Symmetric cross entropy (Wang et al. 2019), mean over all pixels.

        L = alpha BCE(p, y) + beta RCE,    RCE = -mean_i [p log y + (1 - p) log(1 - y)]

    with log 0 := A (`log_zero`, the paper's A = -4), so that for y in {0, 1} RCE = -A |y - p|,
    a scaled mean absolute error. The paper tunes alpha and beta per data set (alpha 0.1,
    beta 1 on CIFAR-10); the defaults 1 and 1 keep BCE at its usual scale and add the reverse
    term with the same weight.
    """
    probs = torch.sigmoid(pred_logits)
    bce = F.binary_cross_entropy_with_logits(pred_logits, target_masks, reduction="mean")
    log_target = torch.log(target_masks).clamp(min=log_zero)
    log_one_minus_target = torch.log1p(-target_masks).clamp(min=log_zero)
    rce = -(probs * log_target + (1 - probs) * log_one_minus_target).mean()
    return alpha * bce + beta * rce


@float32_loss
def bootstrap_soft_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, beta: float = 0.95
) -> torch.Tensor:
    """Soft bootstrapping (Reed et al. 2014): BCE against a mix of the label and the prediction.

        t = beta y + (1 - beta) p,    L = BCE(x, t), mean over all pixels

    p in t is detached: the prediction acts as a target, not as a term to optimize.
    """
    probs = torch.sigmoid(pred_logits.detach())
    target = beta * target_masks + (1 - beta) * probs
    return F.binary_cross_entropy_with_logits(pred_logits, target, reduction="mean")


@float32_loss
def bootstrap_hard_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, beta: float = 0.8
) -> torch.Tensor:
    """Hard bootstrapping (Reed et al. 2014): BCE against a mix of the label and the prediction.

    t = beta y + (1 - beta) 1[p > 1/2],    L = BCE(x, t), mean over all pixels
    """
    predicted = (pred_logits.detach() > 0).float()  # p > 1/2  <=>  x > 0
    target = beta * target_masks + (1 - beta) * predicted
    return F.binary_cross_entropy_with_logits(pred_logits, target, reduction="mean")


@float32_loss
def focal_loss(
    pred_logits: torch.Tensor, target_masks: torch.Tensor, gamma: float = 2.0, alpha: float = 0.25
) -> torch.Tensor:
    """Sigmoid focal loss (Lin et al. 2017), mean over all pixels: torchvision's
    `sigmoid_focal_loss(x, y, alpha, gamma, reduction="mean")`.

        p_t = p y + (1 - p)(1 - y),    a_t = alpha y + (1 - alpha)(1 - y)
        L = mean_i a_t (1 - p_t)^gamma BCE_i,    alpha = -1: no a_t factor

    (1 - p_t)^gamma is exp(gamma log(1 - p_t)) with log(1 - p_t) = y logsigmoid(-x)
    + (1 - y) logsigmoid(x) (exact for y in {0, 1}), whose gradient stays finite at p_t = 1
    also for gamma < 1.
    """
    bce = F.binary_cross_entropy_with_logits(pred_logits, target_masks, reduction="none")
    log_p, log_one_minus_p = F.logsigmoid(pred_logits), F.logsigmoid(-pred_logits)
    log_one_minus_pt = target_masks * log_one_minus_p + (1 - target_masks) * log_p
    loss = torch.exp(gamma * log_one_minus_pt) * bce
    if alpha >= 0:
        loss = (alpha * target_masks + (1 - alpha) * (1 - target_masks)) * loss
    return loss.mean()


@float32_loss
def lovasz_hinge_loss(pred_logits: torch.Tensor, target_masks: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge (Berman et al. 2018) of each RoI, mean over RoIs (the authors' per_image=True).

    For one RoI with hinge errors e_i = 1 - x_i (2 y_i - 1), sorted so that e_(1) >= e_(2) >= ...,
    P = sum_i y_i, and the Jaccard loss of the first k errors

        J_k = 1 - (P - sum_{i<=k} y_(i)) / (P + sum_{i<=k} (1 - y_(i))),

    L_RoI = sum_k relu(e_(k)) (J_k - J_{k-1}) with J_0 = 0: the Lovasz extension of the
    Jaccard loss evaluated at the errors. The union never vanishes: if P = 0, the first sorted
    pixel is a background one.
    """
    num_rois = pred_logits.shape[0]
    logits = pred_logits.reshape(num_rois, -1)
    labels = target_masks.reshape(num_rois, -1)
    errors = 1 - logits * (2 * labels - 1)
    errors_sorted, order = errors.sort(dim=1, descending=True)
    labels_sorted = labels.gather(1, order)
    positives = labels_sorted.sum(dim=1, keepdim=True)
    intersection = positives - labels_sorted.cumsum(dim=1)
    union = positives + (1 - labels_sorted).cumsum(dim=1)
    jaccard = 1 - intersection / union
    steps = torch.cat([jaccard[:, :1], jaccard[:, 1:] - jaccard[:, :-1]], dim=1)
    return (F.relu(errors_sorted) * steps).sum(dim=1).mean()


@float32_loss
def tversky_loss(
    pred_logits: torch.Tensor,
    target_masks: torch.Tensor,
    alpha: float = 0.5,
    beta: float = 0.5,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Tversky loss (Salehi et al. 2017), mean over RoIs.

    With sums over the M x M pixels of one RoI, TP = sum p y, FP = sum p (1 - y) and
    FN = sum (1 - p) y:

        T = (2 TP + eps) / (2 TP + 2 alpha FP + 2 beta FN + eps),    L = 1 - mean_RoIs(T)

    that is TP / (TP + alpha FP + beta FN), smoothed by eps on the scale of the soft Dice: since
    2 TP + FP + FN = sum p + sum y, alpha = beta = 1/2 is `dice` with the same eps. alpha weighs
    false positives and beta false negatives.
    """
    probs = torch.sigmoid(pred_logits)
    true_positive = (probs * target_masks).sum(dim=(1, 2))
    false_positive = (probs * (1 - target_masks)).sum(dim=(1, 2))
    false_negative = ((1 - probs) * target_masks).sum(dim=(1, 2))
    numerator = 2 * true_positive + eps
    denominator = numerator + 2 * alpha * false_positive + 2 * beta * false_negative
    return 1 - (numerator / denominator).mean()
