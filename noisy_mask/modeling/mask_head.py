"""The registered mask head: Detectron2's conv-upsample head with the loss chosen in the config."""

import math
from typing import List, Mapping, Optional

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads.mask_head import (
    ROI_MASK_HEAD_REGISTRY,
    MaskRCNNConvUpsampleHead,
    mask_rcnn_inference,
)
from detectron2.structures import Instances
from detectron2.utils.events import get_event_storage

from ..config import (
    MASK_THRESHOLD_DEFAULT,
    check_head_keywords,
    flat_loss_options,
    mask_loss_from_config,
    mask_threshold,
)
from ..losses.table import get_mask_loss, uses_image_colors
from .roi_heads import COLORS_FIELD
from .targets import mask_targets


@ROI_MASK_HEAD_REGISTRY.register()
class NoisyMaskRCNNConvUpsampleHead(MaskRCNNConvUpsampleHead):
    """`MaskRCNNConvUpsampleHead` whose training loss is `MASK_LOSSES[MODEL.ROI_MASK_HEAD.LOSS]`.

    Architecture, weights and inference are the stock head's. In training the predictor is
    evaluated for the ground-truth class of each RoI only: the logits, loss and gradients equal
    the stock computation of all C channels followed by picking one, without the C-fold work.
    In inference, a mask_threshold t other than 0.5 shifts the logits by logit(t), so that
    detectron2's paste, which keeps the pixels above 0.5, keeps those of probability above t
    (before its bilinear resampling, which it does on the shifted probabilities).
    """

    @configurable
    def __init__(
        self,
        input_shape,
        *,
        loss_name: str = "bce",
        loss_options: Optional[Mapping[str, float]] = None,
        loss_weight: float = 1.0,
        mask_threshold: float = MASK_THRESHOLD_DEFAULT,
        **kwargs,
    ):
        """
        Args:
            loss_name: a key of `noisy_mask.MASK_LOSSES`, or a sum of them such as "bce+dice".
            loss_options: keyword options of that loss, e.g. {"eps": 1e-6} for "dice"; for a sum,
                "<term>.weight" and "<term>.<keyword>", e.g. {"dice.weight": 2.0} (or nested,
                {"dice": {"weight": 2.0}}).
            loss_weight: multiplier of loss_mask.
            mask_threshold: in (0, 1): the probability above which a predicted mask's pixel is
                the object's (detectron2's is 0.5).
            kwargs: as for `MaskRCNNConvUpsampleHead` (num_classes, conv_dims, ...).

        Raises ValueError naming the keyword for an unknown loss or option, or a value out of
        its range (a YAML config's values were checked before, naming MODEL.ROI_MASK_HEAD keys).
        """
        loss_options = flat_loss_options(loss_options)
        check_head_keywords(loss_name, loss_options, loss_weight, mask_threshold)
        super().__init__(input_shape, loss_weight=loss_weight, **kwargs)
        self.threshold_logit = math.log(mask_threshold / (1.0 - mask_threshold))
        self.loss_name = loss_name
        self.loss_options = loss_options
        # A plain function, not an nn.Module: a module attribute would become a layer here.
        self.loss_fn = get_mask_loss(loss_name)
        # Read by NoisyMaskROIHeads: whether to give each RoI the image's colours.
        self.uses_image_colors = uses_image_colors(loss_name)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        loss_name, loss_options, loss_weight = mask_loss_from_config(cfg)
        ret.update(
            loss_name=loss_name,
            loss_options=loss_options,
            loss_weight=loss_weight,
            mask_threshold=mask_threshold(cfg),
        )
        return ret

    def forward(self, x, instances: List[Instances]):
        if not self.training:
            if self.threshold_logit == 0.0:
                return super().forward(x, instances)
            mask_rcnn_inference(self.layers(x) - self.threshold_logit, instances)
            return instances
        features = self.trunk(x)
        class_agnostic = self.predictor.out_channels == 1
        classes, gt_masks = mask_targets(
            instances, features.shape[-1], class_agnostic, features.device
        )
        logits = self.class_logits(features, classes)
        self._log_diagnostics(logits, gt_masks)
        options = dict(self.loss_options)
        if self.uses_image_colors:
            options["image_colors"] = self.image_colors(instances, logits)
        # Every loss computes in float32 with autocast off (losses.utils.float32_loss).
        loss = self.loss_fn(logits, gt_masks, **options)
        return {"loss_mask": loss * self.loss_weight}

    def image_colors(self, instances: List[Instances], logits: torch.Tensor) -> torch.Tensor:
        """(N, 3, M, M) CIELAB colours of the RoIs, as NoisyMaskROIHeads stored them."""
        if any(len(x) and not x.has(COLORS_FIELD) for x in instances):
            raise ValueError(
                f"MODEL.ROI_MASK_HEAD.LOSS = {self.loss_name!r} needs the image's colours of each "
                "RoI: set MODEL.ROI_HEADS.NAME to 'NoisyMaskROIHeads'"
            )
        colors = [x.get(COLORS_FIELD) for x in instances if len(x)]
        if not colors:
            return logits.new_zeros((0, 3, *logits.shape[1:]))
        return torch.cat(colors).to(logits.device)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """All layers before the predictor: (R, C_in, H, W) -> (R, D, M, M) features."""
        for layer in self:
            if layer is self.predictor:
                break
            x = layer(x)
        return x

    def class_logits(self, features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """The predictor's 1x1 convolution for one channel per RoI.

        Args:
            features (Tensor): (N, D, M, M) trunk output.
            classes (Tensor): (N,) int64 channel of each RoI.
        Returns:
            Tensor: (N, M, M) logits, equal to `self.predictor(features)[arange(N), classes]`.
        """
        weight = self.predictor.weight[classes, :, 0, 0]  # (N, D)
        # (N, 1, D) x (N, D, M*M): the trunk output is used in place (einsum copied it).
        logits = torch.bmm(weight[:, None, :], features.flatten(2))
        logits = logits.view(features.shape[0], *features.shape[2:])
        if self.predictor.bias is not None:
            logits = logits + self.predictor.bias[classes, None, None]
        return logits

    def _log_diagnostics(self, logits: torch.Tensor, gt_masks: torch.Tensor) -> None:
        """Detectron2's mask accuracy and false positive/negative rates, with one host sync."""
        storage = get_event_storage()
        incorrect = (logits.detach() > 0.0) != gt_masks
        num_pixels = gt_masks.numel()
        num_positive = gt_masks.sum()
        accuracy, false_positive, false_negative = torch.stack(
            [
                1 - incorrect.sum() / max(num_pixels, 1),
                (incorrect & ~gt_masks).sum() / (num_pixels - num_positive).clamp(min=1),
                (incorrect & gt_masks).sum() / num_positive.clamp(min=1),
            ]
        ).tolist()
        storage.put_scalar("mask_rcnn/accuracy", accuracy)
        storage.put_scalar("mask_rcnn/false_positive", false_positive)
        storage.put_scalar("mask_rcnn/false_negative", false_negative)
        if self.vis_period > 0 and storage.iter % self.vis_period == 0:
            vis_masks = torch.cat([logits.detach().sigmoid(), gt_masks.float()], dim=2)
            name = "Left: mask prediction;   Right: mask GT"
            for idx, vis_mask in enumerate(vis_masks):
                storage.put_image(name + f" ({idx})", torch.stack([vis_mask] * 3, dim=0))
