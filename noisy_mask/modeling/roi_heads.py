"""Detectron2's StandardROIHeads, giving the mask head the image's colours of each RoI in training.

Only a mask loss that uses the image (`pairwise_color`) needs these ROI heads; with any other
loss they behave exactly as StandardROIHeads.
"""

from typing import Dict, List, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads
from detectron2.structures import ImageList, Instances

from .image_colors import roi_lab_colors

COLORS_FIELD = "proposal_lab_colors"


@ROI_HEADS_REGISTRY.register()
class NoisyMaskROIHeads(StandardROIHeads):
    """StandardROIHeads that, in training and when the mask head asks for them
    (`mask_head.uses_image_colors`), store each sampled proposal's CIELAB colours on its
    M x M mask grid in the field `proposal_lab_colors`, (R, 3, M, M)."""

    @configurable
    def __init__(
        self,
        *,
        pixel_mean: Sequence[float] = (0.0, 0.0, 0.0),
        pixel_std: Sequence[float] = (1.0, 1.0, 1.0),
        input_format: str = "BGR",
        **kwargs,
    ):
        """
        Args:
            pixel_mean, pixel_std, input_format: how the model normalized its input images
                (MODEL.PIXEL_MEAN, MODEL.PIXEL_STD, INPUT.FORMAT), to recover their colours.
            kwargs: as for StandardROIHeads.
        """
        super().__init__(**kwargs)
        self.pixel_mean = tuple(pixel_mean)
        self.pixel_std = tuple(pixel_std)
        self.input_format = input_format

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.update(
            pixel_mean=tuple(cfg.MODEL.PIXEL_MEAN),
            pixel_std=tuple(cfg.MODEL.PIXEL_STD),
            input_format=cfg.INPUT.FORMAT,
        )
        return ret

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ):
        if not (self.training and self.mask_on and getattr(self.mask_head, "uses_image_colors", False)):
            return super().forward(images, features, proposals, targets)
        # StandardROIHeads.forward in training, with the colours added after sampling.
        assert targets, "'targets' argument is required during training"
        proposals = self.label_and_sample_proposals(proposals, targets)
        del targets
        side = 2 * self.mask_pooler.output_size[0]  # the conv-upsample head doubles the pooler's side
        colors = roi_lab_colors(
            images.tensor,
            [p.proposal_boxes.tensor for p in proposals],
            side,
            self.pixel_mean,
            self.pixel_std,
            self.input_format,
        )
        for per_image, per_image_colors in zip(proposals, colors):
            per_image.set(COLORS_FIELD, per_image_colors)
        losses = self._forward_box(features, proposals)
        losses.update(self._forward_mask(features, proposals))
        losses.update(self._forward_keypoint(features, proposals))
        return proposals, losses
