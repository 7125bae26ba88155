"""A diverging training run stops with the iteration and, for a non-finite loss, the terms at fault.

detectron2's `SimpleTrainer` checks once per iteration that the summed loss is finite and raises
`FloatingPointError("Loss became infinite or NaN at iteration=12! loss_dict = {...}")`; the RPN
raises `FloatingPointError("Predicted boxes or scores contain Inf/NaN. Training has diverged.")`
without an iteration. `CheckedSimpleTrainer` and `CheckedAMPTrainer` re-raise both naming the
iteration, and the first names the non-finite terms: `loss_mask is nan at iteration 12; other
terms: loss_cls=0.6931, ...`. They add no host synchronization: the terms are read again only
after detectron2's own check has failed. The advice that ends the message names the keys of the
run's config: YAML keys (`ADVICE`), or LazyConfig keys (`LAZY_ADVICE`).
"""

import math
from typing import Mapping, Optional, Type

import torch
from detectron2.engine import AMPTrainer, SimpleTrainer

ADVICE = (
    "lower SOLVER.BASE_LR, lengthen SOLVER.WARMUP_ITERS or set SOLVER.CLIP_GRADIENTS.ENABLED True"
)
# detectron2's lazy configs have no gradient clipping key; the warmup is a share of training.
LAZY_ADVICE = (
    "lower optimizer.lr or lengthen lr_multiplier.warmup_length (the warmup's share of training, "
    "in [0, 1])"
)


class NonFiniteLossError(FloatingPointError):
    """The loss of a training iteration is NaN or infinite."""


class TrainingDivergedError(FloatingPointError):
    """A training iteration produced NaN or infinite values outside the loss."""


def non_finite_loss_message(
    losses: Mapping[str, float],
    iteration: int,
    detail: Optional[str] = None,
    advice: str = ADVICE,
) -> str:
    """`loss_mask is nan at iteration 12; other terms: loss_cls=0.6931, loss_box_reg=0.1234; ...`.

    Args:
        losses: each loss term's value in this process.
        iteration: the training iteration (0-based, as in detectron2's logs and metrics.json).
        detail: detectron2's message, quoted when no term of this process is non-finite (in
            multi-process training the check is on the mean over the processes).
        advice: what to change, in the keys of the run's config (ADVICE or LAZY_ADVICE).
    """
    bad = [f"{key} is {_show(value)}" for key, value in losses.items() if not math.isfinite(value)]
    others = ", ".join(f"{k}={_show(v)}" for k, v in losses.items() if math.isfinite(v)) or "none"
    if bad:
        head = f"{' and '.join(bad)} at iteration {iteration}; other terms: {others}"
    else:
        head = (
            f"the loss is non-finite at iteration {iteration} in another process; in this one "
            f"every term is finite: {others}"
        )
        if detail:
            head += f" ({' '.join(detail.split())})"
    return f"{head}. Training stopped: {advice}"


def _show(value: float) -> str:
    return f"{value:.4g}"  # nan, inf, -inf, 0.6931


class NamedNonFiniteLoss:
    """Mixin for detectron2's `SimpleTrainer` and `AMPTrainer`: clearer divergence errors.

    Takes the trainer's arguments, and `advice`: the end of the messages, ADVICE for a YAML
    config, LAZY_ADVICE for a LazyConfig.
    """

    def __init__(self, *args, advice: str = ADVICE, **kwargs):
        super().__init__(*args, **kwargs)
        self.advice = advice

    def _write_metrics(self, loss_dict, data_time, prefix: str = "", iter=None) -> None:
        try:
            super()._write_metrics(loss_dict, data_time, prefix=prefix, iter=iter)
        except FloatingPointError as e:
            iteration = self.iter if iter is None else iter
            losses = {k: float(torch.as_tensor(v).detach().float()) for k, v in loss_dict.items()}
            message = non_finite_loss_message(losses, iteration, str(e), self.advice)
            raise NonFiniteLossError(message) from e

    def run_step(self) -> None:
        try:
            super().run_step()
        except NonFiniteLossError:
            raise
        except FloatingPointError as e:
            raise TrainingDivergedError(
                f"training diverged at iteration {self.iter}: {' '.join(str(e).split())} "
                f"Training stopped: {self.advice}"
            ) from e


class CheckedSimpleTrainer(NamedNonFiniteLoss, SimpleTrainer):
    """detectron2's `SimpleTrainer`, naming the non-finite loss terms and the iteration."""


class CheckedAMPTrainer(NamedNonFiniteLoss, AMPTrainer):
    """detectron2's `AMPTrainer`, naming the non-finite loss terms and the iteration."""


def checked_trainer_class(amp: bool) -> Type[SimpleTrainer]:
    """The trainer for `SOLVER.AMP.ENABLED` (`train.amp.enabled`) = `amp`."""
    return CheckedAMPTrainer if amp else CheckedSimpleTrainer
