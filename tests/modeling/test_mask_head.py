"""The registered head against Detectron2's stock MaskRCNNConvUpsampleHead on the same weights."""
import pytest
import torch
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.modeling.roi_heads.mask_head import ROI_MASK_HEAD_REGISTRY
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from heads import NUM_CLASSES, SHAPE, head_cfg, make_instances, paired_heads

from noisy_mask import NoisyMaskRCNNConvUpsampleHead
from noisy_mask.losses.table import label_smoothing_bce_loss, soft_dice_loss


def make_heads(loss="bce", class_agnostic=False, **options):
    """(our head, the stock head with the same weights); `options` are ROI_MASK_HEAD keys."""
    return paired_heads(head_cfg(loss, class_agnostic, **options))


def run_training(head, instances, seed=1):
    head.train()
    num_rois = sum(len(i) for i in instances)
    x = torch.randn(num_rois, SHAPE.channels, 14, 14, generator=torch.Generator().manual_seed(seed))
    head.zero_grad()
    with EventStorage() as storage:
        loss = head(x, instances)["loss_mask"]
        loss.backward()
        scalars = {k: v[0] for k, v in storage.latest().items()}
    grads = {name: p.grad.clone() for name, p in head.named_parameters()}
    return loss.detach(), grads, scalars


def stock_class_logits(stock, instances, x):
    logits = stock.layers(x)
    if logits.shape[1] == 1:
        return logits[:, 0]
    classes = torch.cat([i.gt_classes for i in instances])
    return logits[torch.arange(len(classes)), classes]


def test_registered_and_built_by_name():
    assert ROI_MASK_HEAD_REGISTRY.get("NoisyMaskRCNNConvUpsampleHead") is NoisyMaskRCNNConvUpsampleHead
    ours, _ = make_heads("dice", DICE_EPS=0.5)
    assert isinstance(ours, NoisyMaskRCNNConvUpsampleHead)
    assert (ours.loss_name, ours.loss_options) == ("dice", {"eps": 0.5})


@pytest.mark.parametrize("class_agnostic", [False, True])
def test_bce_equals_stock_loss_gradients_and_diagnostics(class_agnostic):
    ours, stock = make_heads("bce", class_agnostic)
    instances = make_instances()
    loss, grads, scalars = run_training(ours, instances)
    stock_loss, stock_grads, stock_scalars = run_training(stock, instances)
    assert abs(loss.item() - stock_loss.item()) <= 1e-6
    for name in stock_grads:
        torch.testing.assert_close(grads[name], stock_grads[name], rtol=1e-5, atol=1e-7)
    for key in ("mask_rcnn/accuracy", "mask_rcnn/false_positive", "mask_rcnn/false_negative"):
        assert scalars[key] == pytest.approx(stock_scalars[key], abs=1e-6)
    assert 0.0 < scalars["mask_rcnn/accuracy"] < 1.0


@pytest.mark.parametrize(
    "loss, options, reference",
    [
        ("dice", {"DICE_EPS": 1e-6}, lambda x, y: soft_dice_loss(x, y, eps=1e-6)),
        ("label_smoothing", {"LABEL_SMOOTHING": 0.1},
         lambda x, y: label_smoothing_bce_loss(x, y, smoothing=0.1)),
    ],
)
def test_other_losses_apply_to_the_ground_truth_class_channel(loss, options, reference):
    ours, stock = make_heads(loss, LOSS_WEIGHT=2.0, **options)
    instances = make_instances()
    got, _, _ = run_training(ours, instances)
    # Reference: the stock head's logits, the ground-truth channel, the stock crop of the targets.
    x = torch.randn(7, SHAPE.channels, 14, 14, generator=torch.Generator().manual_seed(1))
    logits = stock_class_logits(stock, instances, x)
    targets = torch.cat(
        [i.gt_masks.crop_and_resize(i.proposal_boxes.tensor, 28) for i in instances if len(i)]
    ).float()
    expected = 2.0 * reference(logits, targets)
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)


def test_no_rois_gives_zero_loss_and_zero_gradients():
    ours, _ = make_heads("dice")
    loss, grads, _ = run_training(ours, make_instances(counts=(0, 0)))
    assert loss.item() == 0.0
    assert all(float(g.abs().max()) == 0.0 for g in grads.values())


def test_inference_equals_stock():
    ours, stock = make_heads("dice")
    ours.eval(), stock.eval()
    x = torch.randn(4, SHAPE.channels, 14, 14)
    masks = []
    for head in (ours, stock):
        inst = Instances((64, 64))
        inst.pred_classes = torch.tensor([0, 3, 4, 3])
        head(x, [inst])
        masks.append(inst.pred_masks)
    assert masks[0].shape == (4, 1, 28, 28)
    torch.testing.assert_close(masks[0], masks[1])


def test_mask_threshold_keeps_the_pixels_above_it_through_the_paste():
    """With MASK_THRESHOLD 0.8 the pasted mask is the stock head's probabilities above 0.8, where
    the paste's resampling is the identity (one RoI pasted into a box of its own size)."""
    ours, stock = make_heads("dice", MASK_THRESHOLD=0.8)
    ours.eval(), stock.eval()
    x = 4 * torch.randn(1, SHAPE.channels, 14, 14)
    pasted = []
    for head in (ours, stock):
        inst = Instances((28, 28))
        inst.pred_classes = torch.tensor([2])
        inst.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 28.0, 28.0]]))
        inst.scores = torch.tensor([0.9])
        with torch.no_grad():
            head(x, [inst])
        pasted.append(inst)
    probabilities = pasted[1].pred_masks[0, 0]
    assert 0 < int((probabilities > 0.8).sum()) < int((probabilities > 0.5).sum())
    torch.testing.assert_close(pasted[0].pred_masks, torch.sigmoid(
        torch.logit(pasted[1].pred_masks.double()) - torch.logit(torch.tensor(0.8).double())
    ).float(), rtol=1e-4, atol=1e-6)
    masks = detector_postprocess(pasted[0], 28, 28).pred_masks[0]
    assert torch.equal(masks, probabilities > 0.8)
    with pytest.raises(ValueError, match=r"^mask_threshold = 1.0 is out of range: .* \(0, 1\)"):
        NoisyMaskRCNNConvUpsampleHead(SHAPE, num_classes=NUM_CLASSES, conv_dims=[8],
                                      mask_threshold=1.0)
