"""The training fast path: logits of the ground-truth class only, against the stock computation.

For every loss, the head's loss and every gradient (its parameters and its input features) must
equal those of the stock way: all C channels from `MaskRCNNConvUpsampleHead.layers`, the
ground-truth channel picked afterwards, the targets from Detectron2's `crop_and_resize`. And a
training step must read no more values back to the host than the stock head does.
"""

from collections import Counter
from typing import Dict, List, Tuple

import pytest
import torch
from detectron2.structures import Instances
from detectron2.utils.events import EventStorage
from heads import SHAPE, head_cfg, make_instances, paired_heads

from noisy_mask import MASK_LOSSES
from noisy_mask.config import mask_loss_from_config
from noisy_mask.losses.table import get_mask_loss, uses_image_colors
from noisy_mask.modeling.roi_heads import COLORS_FIELD

LOSSES = sorted(MASK_LOSSES) + ["bce+dice", "bce+pairwise_color"]
# Tensor methods that copy a value to the host: on a GPU each one waits for the device.
HOST_READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: one thread avoids waiting on OpenMP barriers when the CPU is busy (20x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_heads(loss: str, class_agnostic: bool, loss_weight: float = 1.5):
    """(our head, the stock head with the same weights, the config)."""
    cfg = head_cfg(loss, class_agnostic, LOSS_WEIGHT=loss_weight)
    return (*paired_heads(cfg), cfg)


def features(num_rois: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(num_rois, SHAPE.channels, SHAPE.height, SHAPE.width, generator=g)
    return x.requires_grad_(True)


def stock_way_loss(stock, x, instances, loss: str, cfg) -> torch.Tensor:
    """The reference: all C logits, then the ground-truth channel, as `mask_rcnn_loss` picks it."""
    name, options, weight = mask_loss_from_config(cfg)
    assert name == loss
    logits = stock.layers(x)  # (R, C, M, M)
    if logits.shape[1] == 1:
        picked = logits[:, 0]
    else:
        classes = torch.cat([i.gt_classes for i in instances])
        picked = logits[torch.arange(len(classes)), classes]
    side = logits.shape[-1]
    targets = torch.cat(
        [i.gt_masks.crop_and_resize(i.proposal_boxes.tensor, side) for i in instances if len(i)]
    )
    if uses_image_colors(loss):
        options["image_colors"] = torch.cat([i.get(COLORS_FIELD) for i in instances if len(i)])
    return weight * get_mask_loss(loss)(picked, targets.float(), **options)


def gradients(head, x) -> Dict[str, torch.Tensor]:
    grads = {name: p.grad for name, p in head.named_parameters()}
    grads["input features"] = x.grad
    return grads


def assert_equal_to_1e5(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """|got - expected| <= 1e-5 |expected| + 1e-6 elementwise.

    The fast path sums the predictor's D products in another order than the 1x1 convolution, so
    float32 results differ by rounding (about 1e-7 relative); the gradients here are 1e-2 to 1.
    """
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("class_agnostic", [False, True], ids=["class-specific", "agnostic"])
@pytest.mark.parametrize("loss", LOSSES)
def test_loss_and_all_gradients_equal_the_stock_way(loss, class_agnostic):
    ours, stock, cfg = make_heads(loss, class_agnostic)
    instances = make_instances()
    x, x_ref = features(7), features(7)
    with EventStorage():
        got = ours(x, instances)["loss_mask"]
    got.backward()
    expected = stock_way_loss(stock, x_ref, instances, loss, cfg)
    expected.backward()

    assert_equal_to_1e5(got.detach(), expected.detach(), "loss")
    assert expected.item() != 0.0
    got_grads, expected_grads = gradients(ours, x), gradients(stock, x_ref)
    assert got_grads.keys() == expected_grads.keys()
    for name, expected_grad in expected_grads.items():
        assert_equal_to_1e5(got_grads[name], expected_grad, f"gradient of {name}")
    # The comparison is not vacuous: the loss reaches the predictor and the input.
    assert expected_grads["predictor.weight"].abs().max() > 0
    assert expected_grads["input features"].abs().max() > 0


def test_class_logits_equal_the_predictor_channel_in_float64():
    ours, _, _ = make_heads("bce", class_agnostic=False)
    ours = ours.double()
    trunk_out = torch.randn(6, 16, 28, 28, dtype=torch.float64)
    classes = torch.tensor([4, 0, 4, 2, 1, 3])
    expected = ours.predictor(trunk_out)[torch.arange(6), classes]
    torch.testing.assert_close(
        ours.class_logits(trunk_out, classes), expected, rtol=1e-12, atol=1e-12
    )


@pytest.fixture
def host_reads(monkeypatch) -> List[Tuple[str, object]]:
    """Every (method, returned value) of the HOST_READS methods called on a tensor, in order."""
    calls: List[Tuple[str, object]] = []
    for method in HOST_READS:
        original = getattr(torch.Tensor, method)

        def wrapper(self, *args, _method=method, _original=original, **kwargs):
            value = _original(self, *args, **kwargs)
            calls.append((_method, value))
            return value

        monkeypatch.setattr(torch.Tensor, method, wrapper)
    return calls


def training_step(head, instances, x) -> None:
    """Forward and backward; the stock head's forward is its layers, then `mask_rcnn_loss`."""
    with EventStorage():
        head(x, instances)["loss_mask"].backward()


@pytest.mark.parametrize("class_agnostic", [False, True], ids=["class-specific", "agnostic"])
def test_one_host_read_per_step_where_the_stock_head_has_four(host_reads, class_agnostic):
    ours, stock, _ = make_heads("bce", class_agnostic)
    instances, x_stock, x_ours = make_instances(), features(7), features(7)
    host_reads.clear()
    training_step(stock, instances, x_stock)
    stock_counts = Counter(method for method, _ in host_reads)
    host_reads.clear()
    training_step(ours, instances, x_ours)
    our_counts = Counter(method for method, _ in host_reads)
    # mask_rcnn_loss: accuracy, number of positives, false positives, false negatives.
    assert stock_counts == {"item": 4}
    # _log_diagnostics: the three rates stacked into one tensor, read with one tolist().
    assert our_counts == {"tolist": 1}


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_reads_one_value_of_the_batch(host_reads, loss):
    """Reads whose value depends on the batch are syncs; reads of a constant are not.

    Two batches with different RoIs and features: exactly one read differs between them (the
    diagnostics). Any other read returns the same value for both, a constant such as the
    convolution kernel that `svls` and `bpm` build on the host, which needs no device wait.
    """
    ours, _, _ = make_heads(loss, class_agnostic=False)
    runs = []
    for seed in (0, 1):
        instances, x = make_instances(seed=seed), features(7, seed=seed + 10)
        host_reads.clear()
        training_step(ours, instances, x)
        runs.append(list(host_reads))
    first, second = runs
    assert [method for method, _ in first] == [method for method, _ in second]
    assert {method for method, _ in first} <= {"tolist"}
    batch_dependent = [a for a, b in zip(first, second) if a != b]
    assert len(batch_dependent) == 1
    accuracy, false_positive, false_negative = batch_dependent[0][1]
    assert 0 < accuracy < 1 and 0 <= false_positive <= 1 and 0 <= false_negative <= 1


@pytest.mark.parametrize("class_agnostic", [False, True], ids=["class-specific", "agnostic"])
def test_inference_keeps_the_predicted_class_masks(class_agnostic):
    ours, stock, _ = make_heads("lovasz", class_agnostic)
    ours.eval(), stock.eval()
    x = torch.randn(4, SHAPE.channels, SHAPE.height, SHAPE.width)
    pred_classes = torch.tensor([0, 3, 4, 3])
    masks = []
    for head in (ours, stock):
        inst = Instances((80, 80))
        inst.pred_classes = pred_classes
        with torch.no_grad():
            head(x, [inst])
        masks.append(inst.pred_masks)
    with torch.no_grad():
        logits = stock.layers(x)
    channel = torch.zeros_like(pred_classes) if class_agnostic else pred_classes
    expected = logits[torch.arange(4), channel][:, None].sigmoid()
    torch.testing.assert_close(masks[0], masks[1], rtol=0, atol=0)
    torch.testing.assert_close(masks[0], expected, rtol=0, atol=0)
