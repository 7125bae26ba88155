"""The mask heads and RoIs the head tests share: our registered head and Detectron2's stock
MaskRCNNConvUpsampleHead on the same weights, and a few images of RoIs with polygon masks."""

from typing import List

import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import MaskRCNNConvUpsampleHead, build_mask_head
from detectron2.structures import Boxes, Instances, PolygonMasks

from noisy_mask import add_noisy_mask_config
from noisy_mask.modeling.roi_heads import COLORS_FIELD

NUM_CLASSES = 5
SHAPE = ShapeSpec(channels=8, height=14, width=14)  # masks of 28 x 28


def head_cfg(loss: str = "bce", class_agnostic: bool = False, **options):
    """A config of our head: 2 convs of 16 channels, 5 classes; `options` are ROI_MASK_HEAD keys
    (LOSS_WEIGHT, DICE_EPS, ...)."""
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    head = cfg.MODEL.ROI_MASK_HEAD
    head.NAME, head.LOSS, head.CLS_AGNOSTIC_MASK = (
        "NoisyMaskRCNNConvUpsampleHead", loss, class_agnostic,
    )  # fmt: skip
    head.NUM_CONV, head.CONV_DIM = 2, 16
    for key, value in options.items():
        head[key] = value
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = NUM_CLASSES
    return cfg


def paired_heads(cfg):
    """(our head built from `cfg`, the stock head with the same weights), in training mode."""
    torch.manual_seed(0)
    ours = build_mask_head(cfg, SHAPE)
    # The predictor starts near zero (std 0.001); larger weights give logits of both signs.
    torch.nn.init.normal_(ours.predictor.weight, std=0.3)
    torch.nn.init.normal_(ours.predictor.bias, std=0.3)
    stock = MaskRCNNConvUpsampleHead(cfg, SHAPE)
    stock.load_state_dict(ours.state_dict())
    return ours.train(), stock.train()


def make_instances(counts=(3, 0, 4), seed: int = 0) -> List[Instances]:
    """Images of 80 x 80 with `counts` RoIs (7 in 3 images, one empty, by default), each with a
    random pentagon partly inside its box, and the colours NoisyMaskROIHeads stores per RoI (its
    28 x 28 grid, two regions)."""
    g = torch.Generator().manual_seed(seed)
    images = []
    for n in counts:
        inst = Instances((80, 80))
        xy = torch.rand(n, 2, generator=g) * 40
        wh = torch.rand(n, 2, generator=g) * 25 + 10
        inst.proposal_boxes = Boxes(torch.cat([xy, xy + wh], dim=1))
        inst.gt_classes = torch.randint(0, NUM_CLASSES, (n,), generator=g)
        angles = torch.linspace(0, 2 * torch.pi, 6)[:5]
        polygons = []
        for k in range(n):
            center = xy[k] + wh[k] * (0.3 + 0.4 * torch.rand(2, generator=g))
            radius = wh[k].min() * (0.4 + 0.4 * torch.rand(5, generator=g))
            points = center + radius[:, None] * torch.stack([angles.cos(), angles.sin()], dim=1)
            polygons.append([points.reshape(-1).tolist()])
        inst.gt_masks = PolygonMasks(polygons)
        region = (torch.rand(n, 1, 28, 28, generator=g) < 0.5).float()
        inst.set(COLORS_FIELD, (region * 40).expand(n, 3, 28, 28).contiguous())
        images.append(inst)
    return images
