"""The pairwise colour loss, the image colours it is given, and the ROI heads that give them.

Values are checked against hand-derived numbers (derivation in the comments), published CIELAB
values, and a pair-by-pair reference written here in float64.
"""
import math

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import Boxes, ImageList, Instances, PolygonMasks
from detectron2.utils.events import EventStorage

from noisy_mask import add_noisy_mask_config, check_noisy_mask_config
from noisy_mask.config import mask_loss_from_config
from noisy_mask.modeling.image_colors import rgb_to_lab, roi_lab_colors
from noisy_mask.losses.pairwise import pairwise_color_loss
from noisy_mask.modeling.roi_heads import COLORS_FIELD


def g(p):
    """-log P(two pixels share a label) for probabilities p and p: -log(p^2 + (1 - p)^2)."""
    return -math.log(p * p + (1 - p) * (1 - p))


def test_pairwise_color_hand_derived():
    # A 3x3 grid, dilation 1: column 0 has colour A, columns 1 and 2 colour B, 100 LAB units
    # away (similarity e^-50 < 0.3). Pairs of one colour: 2 vertical in column 0; in columns
    # 1-2, 4 vertical, 3 horizontal and 2 + 2 diagonal: 13 in all. Column 0 has logit a, the
    # rest v, so L = (2 g(p_a) + 11 g(p_v)) / 13; the 7 pairs across the colour edge, whose
    # labels differ here, cost nothing.
    a, v = 2.0, -0.5
    logits = torch.full((1, 3, 3), v)
    logits[0, :, 0] = a
    colors = torch.zeros(1, 3, 3, 3)
    colors[0, 0, :, 1:] = 100.0
    p_a, p_v = 1 / (1 + math.exp(-a)), 1 / (1 + math.exp(-v))
    expected = (2 * g(p_a) + 11 * g(p_v)) / 13
    loss = pairwise_color_loss(logits, torch.zeros(1, 3, 3), image_colors=colors, dilation=1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_pairwise_color_ignores_the_target_and_is_zero_for_a_confident_uniform_region():
    logits = torch.full((2, 6, 6), 30.0)
    colors = torch.full((2, 3, 6, 6), 40.0)
    for target in (torch.zeros(2, 6, 6), torch.ones(2, 6, 6)):
        assert pairwise_color_loss(logits, target, image_colors=colors).item() < 1e-12


def test_pairwise_color_with_no_similar_pair_is_zero():
    # Every neighbour differs by 10 LAB units along L: similarity e^-5 < 0.3, no pair counts.
    ramp = torch.arange(16.0).reshape(4, 4)
    colors = (10 * (ramp + 4 * ramp.T))[None, None].repeat(1, 3, 1, 1)
    logits = torch.randn(1, 4, 4, requires_grad=True)
    loss = pairwise_color_loss(logits, torch.zeros(1, 4, 4), image_colors=colors, dilation=1)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(1, 4, 4))


def reference_pairwise(logits, colors, theta, threshold, dilation):
    """Pair by pair over the 8-neighbourhood at `dilation`, each unordered pair once."""
    n, m, _ = logits.shape
    total, count = 0.0, 0
    for r in range(n):
        for i in range(m):
            for j in range(m):
                for di, dj in ((0, 1), (1, 0), (1, 1), (1, -1)):
                    k, l = i + di * dilation, j + dj * dilation
                    if not (0 <= k < m and 0 <= l < m):
                        continue
                    distance = torch.linalg.vector_norm(colors[r, :, i, j] - colors[r, :, k, l])
                    if math.exp(-distance.item() / theta) >= threshold:
                        p, q = torch.sigmoid(logits[r, i, j]).item(), torch.sigmoid(logits[r, k, l]).item()
                        total -= math.log(p * q + (1 - p) * (1 - q))
                        count += 1
    return total / max(count, 1)


@pytest.mark.parametrize("theta, threshold, dilation", [(2.0, 0.3, 2), (5.0, 0.5, 1), (1.0, 0.1, 3)])
def test_pairwise_color_agrees_with_a_pair_loop(theta, threshold, dilation):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 9, 9, generator=gen, dtype=torch.float64) * 2
    # Flat regions with small jitter, so that some pairs are similar and some are not.
    regions = (torch.rand(2, 1, 9, 9, generator=gen) < 0.5).double() * 30
    colors = regions + torch.rand(2, 3, 9, 9, generator=gen, dtype=torch.float64)
    loss = pairwise_color_loss(
        logits, torch.zeros(2, 9, 9), image_colors=colors, theta=theta, threshold=threshold,
        dilation=dilation,
    )
    expected = reference_pairwise(logits, colors, theta, threshold, dilation)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_pairwise_color_names_a_wrong_colour_shape():
    with pytest.raises(ValueError, match=r"image_colors must be \(N, 3, M, M\)"):
        pairwise_color_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), image_colors=torch.zeros(2, 3, 5, 5))
    with pytest.raises(ValueError, match="dilation must be an integer >= 1"):
        pairwise_color_loss(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), image_colors=torch.zeros(1, 3, 4, 4), dilation=0)


# ------------------------------------------------------------------------------ colours


@pytest.mark.parametrize(
    "rgb, lab",
    [
        ((255, 255, 255), (100.0, 0.0, 0.0)),
        ((0, 0, 0), (0.0, 0.0, 0.0)),
        # skimage.color.rgb2lab of the sRGB primaries (D65)
        ((255, 0, 0), (53.2408, 80.0925, 67.2032)),
        ((0, 255, 0), (87.7347, -86.1827, 83.1793)),
        ((0, 0, 255), (32.2970, 79.1875, -107.8602)),
        # a dark grey, below the linear-segment knee of sRGB (s = 10 / 255 <= 0.04045) and of
        # f (Y = 0.00304 <= (6/29)^3): L = 116 (Y / (3 (6/29)^2) + 4/29) - 16 = 903.3 Y
        ((10, 10, 10), (903.2963 * (10 / 255 / 12.92), 0.0, 0.0)),
    ],
)
def test_rgb_to_lab_published_values(rgb, lab):
    got = rgb_to_lab(torch.tensor(rgb, dtype=torch.float32)[:, None, None])[:, 0, 0]
    torch.testing.assert_close(got, torch.tensor(lab), atol=2e-3, rtol=0)


def test_roi_colors_undo_the_input_normalization_and_channel_order():
    # A 32x32 BGR input: left half red, right half blue, normalized as the model does. A box
    # over the whole image on a 4x4 grid: columns 0-1 are red's LAB colour, columns 2-3 blue's.
    mean, std = (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)
    bgr = torch.zeros(3, 32, 32)
    bgr[2, :, :16] = 255  # red, in channel 2 of BGR
    bgr[0, :, 16:] = 255  # blue, in channel 0
    normalized = (bgr - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    boxes = [torch.tensor([[0.0, 0.0, 32.0, 32.0]])]
    (colors,) = roi_lab_colors(normalized[None], boxes, 4, mean, std, "BGR")
    red = rgb_to_lab(torch.tensor([255.0, 0, 0])[:, None, None])[:, 0, 0]
    blue = rgb_to_lab(torch.tensor([0, 0, 255.0])[:, None, None])[:, 0, 0]
    assert colors.shape == (1, 3, 4, 4)
    torch.testing.assert_close(colors[0, :, :, :2], red[:, None, None].expand(3, 4, 2), atol=1e-3, rtol=0)
    torch.testing.assert_close(colors[0, :, :, 2:], blue[:, None, None].expand(3, 4, 2), atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="INPUT.FORMAT 'YUV'"):
        roi_lab_colors(normalized[None], boxes, 4, mean, std, "YUV")


# --------------------------------------------------------------------------- ROI heads


def roi_heads_cfg(loss, roi_heads="NoisyMaskROIHeads"):
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_HEADS.NAME = roi_heads
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2"]
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NAME = "NoisyMaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.LOSS = loss
    return cfg


def training_inputs():
    """One 64x64 image, red square at 16..48 on black, its ground truth and two proposals."""
    mean, std = (103.53, 116.28, 123.675), (57.375, 57.12, 58.395)
    bgr = torch.zeros(3, 64, 64)
    bgr[2, 16:48, 16:48] = 255
    images = ImageList.from_tensors([(bgr - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]])
    target = Instances((64, 64))
    target.gt_boxes = Boxes(torch.tensor([[16.0, 16.0, 48.0, 48.0]]))
    target.gt_classes = torch.tensor([1])
    target.gt_masks = PolygonMasks([[[16.0, 16.0, 48.0, 16.0, 48.0, 48.0, 16.0, 48.0]]])
    proposals = Instances((64, 64))
    proposals.proposal_boxes = Boxes(torch.tensor([[14.0, 14.0, 50.0, 50.0], [12.0, 16.0, 46.0, 50.0]]))
    proposals.objectness_logits = torch.tensor([1.0, 1.0])
    features = {"p2": torch.randn(1, 8, 16, 16, generator=torch.Generator().manual_seed(0))}
    return images, features, [proposals], [target], mean, std


def test_roi_heads_give_the_mask_head_each_rois_colours():
    cfg = roi_heads_cfg("bce+pairwise_color")
    images, features, proposals, targets, mean, std = training_inputs()
    cfg.MODEL.PIXEL_MEAN, cfg.MODEL.PIXEL_STD = list(mean), list(std)
    torch.manual_seed(0)
    heads = build_roi_heads(cfg, {"p2": ShapeSpec(channels=8, stride=4)}).train()
    seen = {}
    forward = heads.mask_head.forward

    def spy(x, instances):
        seen["instances"] = instances
        return forward(x, instances)

    heads.mask_head.forward = spy
    with EventStorage():
        _, losses = heads(images, features, proposals, targets)
    (instances,) = seen["instances"]
    colors = instances.get(COLORS_FIELD)
    assert colors.shape == (len(instances), 3, 14, 14) and len(instances) >= 2
    expected = roi_lab_colors(images.tensor, [instances.proposal_boxes.tensor], 14, mean, std, "BGR")[0]
    torch.testing.assert_close(colors, expected)
    # The RoI's centre is the red square's colour.
    red = rgb_to_lab(torch.tensor([255.0, 0, 0])[:, None, None])[:, 0, 0]
    torch.testing.assert_close(colors[0, :, 7, 7], red, atol=1e-3, rtol=0)
    assert torch.isfinite(losses["loss_mask"]) and losses["loss_mask"].item() > 0


def test_roi_heads_without_a_colour_loss_match_standard_roi_heads():
    images, features, proposals, targets, _, _ = training_inputs()
    results = []
    for name in ("NoisyMaskROIHeads", "StandardROIHeads"):
        torch.manual_seed(0)
        heads = build_roi_heads(roi_heads_cfg("dice", name), {"p2": ShapeSpec(channels=8, stride=4)})
        with EventStorage():
            torch.manual_seed(1)
            results.append(heads.train()(images, features, [p[:] for p in proposals], targets)[1])
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert torch.equal(results[0][key], results[1][key]), key


def test_a_colour_loss_needs_the_roi_heads_that_give_colours():
    with pytest.raises(ValueError, match="MODEL.ROI_HEADS.NAME to 'NoisyMaskROIHeads'"):
        check_noisy_mask_config(roi_heads_cfg("bce+pairwise_color", "StandardROIHeads"))
    check_noisy_mask_config(roi_heads_cfg("bce+pairwise_color"))


def test_pairwise_color_options_from_the_config():
    cfg = roi_heads_cfg("pairwise_color")
    cfg.MODEL.ROI_MASK_HEAD.PAIRWISE_COLOR_THETA = 4.0
    cfg.MODEL.ROI_MASK_HEAD.PAIRWISE_COLOR_DILATION = 1
    assert mask_loss_from_config(cfg) == (
        "pairwise_color", {"theta": 4.0, "threshold": 0.3, "dilation": 1.0}, 1.0)
    for key, value in (("PAIRWISE_COLOR_THETA", 0.0), ("PAIRWISE_COLOR_THRESHOLD", 1.5),
                       ("PAIRWISE_COLOR_DILATION", 1.5), ("PAIRWISE_COLOR_DILATION", 0)):
        bad = roi_heads_cfg("pairwise_color")
        bad.MODEL.ROI_MASK_HEAD[key] = value
        with pytest.raises(ValueError, match=f"MODEL.ROI_MASK_HEAD.{key} = .* out of range"):
            check_noisy_mask_config(bad)
