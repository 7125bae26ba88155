"""Mask targets: each RoI's ground-truth class and its ground-truth mask cropped to the RoI."""

from typing import List, Tuple

import torch
from detectron2.structures import Instances


def mask_targets(
    instances: List[Instances], mask_side_len: int, class_agnostic: bool, device: torch.device
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The class channel and the target of every foreground RoI, as Detectron2's mask loss has them.

    Args:
        instances: per image, the sampled foreground proposals with fields `proposal_boxes`,
            `gt_classes` and `gt_masks` (PolygonMasks or BitMasks).
        mask_side_len: M, the side of the predicted masks.
        class_agnostic: if True every RoI uses channel 0.
        device: where the targets go (the logits' device).

    Returns:
        classes (Tensor): (N,) int64 channel index per RoI.
        masks (Tensor): (N, M, M) bool, the ground truth cropped and resized to each proposal box.
    """
    classes, masks = [], []
    for per_image in instances:
        if len(per_image) == 0:
            continue
        if not class_agnostic:
            classes.append(per_image.gt_classes.to(device=device, dtype=torch.int64))
        cropped = per_image.gt_masks.crop_and_resize(per_image.proposal_boxes.tensor, mask_side_len)
        masks.append(cropped.to(device=device))
    if not masks:
        empty_masks = torch.zeros(
            (0, mask_side_len, mask_side_len), dtype=torch.bool, device=device
        )
        return torch.zeros((0,), dtype=torch.int64, device=device), empty_masks
    masks = torch.cat(masks, dim=0)
    # crop_and_resize gives bool for polygons and bit masks; a float rasterizer is thresholded
    masks = masks if masks.dtype == torch.bool else masks > 0.5
    if class_agnostic:
        return torch.zeros((masks.shape[0],), dtype=torch.int64, device=device), masks
    return torch.cat(classes, dim=0), masks
