"""Time and memory of the training step of the mask head: ours against Detectron2's stock head.

    python benchmarks/bench_mask_head.py [--classes 80 1203] [--losses bce dice lovasz | all]
        [--head-classes 80] [--head-losses bce | all] [--rois 256] [--repeats 3]
        [--head-repeats 2] [--threads N] [--seed 0] [--device cpu | cuda]

The COCO mask head: 256-channel RoI features of 14 x 14, four 3x3 convolutions of 256, a 2x2
deconvolution to 28 x 28, a 1x1 predictor of C classes. "stock" is `MaskRCNNConvUpsampleHead`
with Detectron2's `mask_rcnn_loss` (BCE); "ours" is `NoisyMaskRCNNConvUpsampleHead` with the loss
named in the row, on the same weights. Three tables:

1. Targets: 256 RoIs of COCO-like polygons (2 images of 640 x 480, about 7 objects each, 8 to
   40 vertices, some in two parts; boxes jittered around the object) cropped and resized to
   28 x 28 by Detectron2's `PolygonMasks.crop_and_resize` and `BitMasks.crop_and_resize`, and by
   the head's `mask_targets`, which calls them per image; run in turn D H D H .. D, the ratio is
   the median of (time of H) / (mean of the two D times around it).
2. After the trunk: the trunk's output (R, 256, 28, 28) given, requiring grad; the predictor,
   targets, diagnostics and loss, then backward. Stock: `mask_rcnn_loss(predictor(f))`; ours:
   the head's own forward with the trunk replaced by the identity.
3. Whole head: forward and backward of trunk, predictor and loss from (R, 256, 14, 14) features
   that require grad (they come from the FPN in a real model); `--head-classes`, `--head-losses`.

Timing: `time.perf_counter` around forward and backward; one warm-up step per variant, then
`--repeats` rounds that run every variant once, in alternating order (A B .. B A ..) so that
drift of a shared CPU affects all alike; medians, speed-up = stock's median / ours. The whole
head, where the difference is a few percent, runs stock between every two others instead
(`--head-repeats` rounds of S A S B S ..) and its speed-up is the median over runs of (mean of
the two stock times around the run) / (its time).
Peak memory: measured in the warm-up step with `torch.distributed._tools.mem_tracker`, a
dispatch mode that follows every tensor storage from its allocation to its release: the peak
of live tensor bytes minus those live before the step (weights, input features), i.e. what the
step adds. Allocator overhead and scratch memory inside an operator are not seen.

Goals printed at the end: after the trunk, ours at least 3x faster than stock at 80 classes and
10x at 1203; the whole head no slower than stock for every loss; targets no slower than
Detectron2's crop_and_resize.

`--device cuda`: everything on the GPU, `torch.cuda.synchronize()` before every clock reading
(kernels run asynchronously), peak memory from the CUDA allocator (`max_memory_allocated`, scratch
memory included), and the whole head's goal at 1203 classes ours / stock <= 0.5.
"""

import argparse
import contextlib
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.mask_head import (
    MaskRCNNConvUpsampleHead,
    build_mask_head,
    mask_rcnn_loss,
)
from detectron2.structures import BitMasks, Boxes, Instances, PolygonMasks
from detectron2.structures.masks import polygons_to_bitmask
from detectron2.utils.events import EventStorage
from torch.distributed._tools.mem_tracker import MemTracker

from noisy_mask import MASK_LOSSES, add_noisy_mask_config
from noisy_mask.losses.table import IMAGE_LOSSES
from noisy_mask.modeling.targets import mask_targets

WIDTH, HEIGHT = 640, 480
OBJECTS_PER_IMAGE = 7  # COCO train2017: 7.3 instances per image
ROIS_PER_IMAGE = 128  # Detectron2: 512 sampled RoIs per image, 25 % foreground
CHANNELS, POOLER, CONV_DIM, NUM_CONV = 256, 14, 256, 4  # the COCO mask head
MASK_SIZE = 2 * POOLER
# Timed rounds of the target table: BitMasks.crop_and_resize takes seconds for 256 RoIs.
CROP_REPEATS = {"PolygonMasks": 40, "BitMasks": 6}
# Classes -> least speed-up of ours over stock after the trunk.
SPEED_UP_GOALS = {80: 3.0, 1203: 10.0}
# Classes -> most time of our whole head over stock's on CUDA (1 for other class counts).
CUDA_HEAD_GOALS = {1203: 0.5}
# The stock loss, a per-RoI ratio and the costliest loss (a sort per RoI); --losses all for all.
DEFAULT_LOSSES = ("bce", "dice", "lovasz")


def now(device: torch.device) -> float:
    """`time.perf_counter()` once the device has finished its queued work (CUDA is asynchronous)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def blob(rng: np.random.Generator, center: np.ndarray, radius: float) -> List[float]:
    """Flat [x0, y0, ...] star-like polygon: vertex k of n at angle 2 pi (k + u_k) / n, radius
    r (1 + v_k), u, v ~ U(-0.3, 0.3), n in [8, 40], clipped to the image."""
    n = int(rng.integers(8, 41))
    angles = 2 * np.pi * (np.arange(n) + rng.uniform(-0.3, 0.3, n)) / n
    radii = radius * (1 + rng.uniform(-0.3, 0.3, n))
    xy = center + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return np.clip(xy, 0, [WIDTH, HEIGHT]).round(2).reshape(-1).tolist()


def coco_like_rois(num_rois: int, num_classes: int, seed: int) -> List[Instances]:
    """Foreground RoIs as the ROI heads hand them to the mask head, ROIS_PER_IMAGE per image.

    Each image has OBJECTS_PER_IMAGE objects, radii log-uniform in [16, 150] px, one in ten made
    of two polygons. A RoI takes a random object and its box with each side moved by
    N(0, (0.08 size)^2), so that most RoIs overlap their object with IoU > 0.5. Fields:
    proposal_boxes, gt_classes, gt_masks (PolygonMasks) and gt_bitmasks (BitMasks, same masks).
    """
    rng = np.random.default_rng(seed)
    images = []
    for start in range(0, num_rois, ROIS_PER_IMAGE):
        count = min(ROIS_PER_IMAGE, num_rois - start)
        objects, boxes = [], []
        for _ in range(OBJECTS_PER_IMAGE):
            radius = float(np.exp(rng.uniform(np.log(16), np.log(150))))
            center = rng.uniform(
                [radius / 2, radius / 2], [WIDTH - radius / 2, HEIGHT - radius / 2]
            )
            parts = [blob(rng, center, radius)]
            if rng.random() < 0.1:
                parts.append(blob(rng, center + rng.normal(0, radius, 2), radius / 3))
            xy = np.concatenate([np.reshape(p, (-1, 2)) for p in parts])
            objects.append(parts)
            boxes.append(np.concatenate([xy.min(axis=0), xy.max(axis=0)]))
        matched = rng.integers(0, OBJECTS_PER_IMAGE, count)
        gt_boxes = np.stack(boxes)[matched]
        size = np.tile(gt_boxes[:, 2:] - gt_boxes[:, :2], 2)
        proposals = gt_boxes + rng.normal(0, 0.08, gt_boxes.shape) * size
        proposals[:, 2:] = np.maximum(proposals[:, 2:], proposals[:, :2] + 1)
        bitmasks = np.stack([polygons_to_bitmask(parts, HEIGHT, WIDTH) for parts in objects])
        inst = Instances((HEIGHT, WIDTH))
        inst.proposal_boxes = Boxes(torch.as_tensor(proposals, dtype=torch.float32))
        inst.gt_classes = torch.as_tensor(rng.integers(0, num_classes, count))
        inst.gt_masks = PolygonMasks([objects[j] for j in matched])
        inst.gt_bitmasks = BitMasks(torch.from_numpy(bitmasks[matched]))
        images.append(inst)
    return images


def head_config(num_classes: int, loss: str):
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    head = cfg.MODEL.ROI_MASK_HEAD
    head.NAME, head.LOSS, head.NUM_CONV, head.CONV_DIM = (
        "NoisyMaskRCNNConvUpsampleHead",
        loss,
        NUM_CONV,
        CONV_DIM,
    )
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    return cfg


def build_heads(num_classes: int, losses: Sequence[str], seed: int):
    """(stock head, {loss: our head}), all on the stock head's (seeded) weights, in train mode."""
    shape = ShapeSpec(channels=CHANNELS, height=POOLER, width=POOLER)
    torch.manual_seed(seed)
    stock = MaskRCNNConvUpsampleHead(head_config(num_classes, "bce"), shape).train()
    # Detectron2 starts the predictor at std 0.001; a trained one has logits of both signs.
    torch.nn.init.normal_(stock.predictor.weight, std=0.01)
    ours = {}
    for loss in losses:
        ours[loss] = build_mask_head(head_config(num_classes, loss), shape).train()
        ours[loss].load_state_dict(stock.state_dict())
    return stock, ours


@contextlib.contextmanager
def trunk_skipped(head):
    """Our head with its trunk replaced by the identity: `head(f, instances)` starts at the trunk's
    output f. An instance attribute (not a module), removed on exit."""
    head.trunk = lambda features: features
    try:
        yield head
    finally:
        del head.trunk


@dataclass
class Step:
    """A training step without the optimizer, and what exists before it (inputs, heads)."""

    forward: Callable[[], torch.Tensor]
    existing: Sequence[object]  # tensors and modules

    def __call__(self) -> None:
        for thing in self.existing:
            if isinstance(thing, torch.nn.Module):
                thing.zero_grad(set_to_none=True)
            elif isinstance(thing, torch.Tensor):
                thing.grad = None
        self.forward().backward()


def _total_mib(tracker: MemTracker, which: str) -> float:
    return (
        max((d["Total"] for d in tracker.get_tracker_snapshot(which).values()), default=0) / 2**20
    )


def peak_mib(step: Step, device: torch.device = torch.device("cpu")) -> float:
    """Peak of the tensor memory the step adds to what exists before it.

    MemTracker sees every tensor made by an operator; registering the existing tensors first
    keeps views of them (`flatten`, indexing) from being counted as new memory. On CUDA, the
    allocator's own count.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    tracker = MemTracker()
    tracker.track_external(*step.existing)
    with tracker:
        before = _total_mib(tracker, "current")
        step()
        return _total_mib(tracker, "peak") - before


def measure(
    steps: Dict[str, Step],
    repeats: int,
    paired: bool = False,
    device: torch.device = torch.device("cpu"),
) -> Dict[str, Tuple[float, float, float]]:
    """{name: (median seconds, peak MiB, speed-up over "stock")}, after a warm-up that measures
    memory.

    Each of the `repeats` rounds runs every step once, in alternating order; the speed-up is the
    ratio of the medians. With `paired`, a round runs "stock" between every two others instead,
    S A S B S .., and the speed-up is the median of (mean of the two stock times around a run)
    / (its time): drift of a shared CPU cancels within each pair.
    """
    peaks = {name: peak_mib(run, device) for name, run in steps.items()}
    times: Dict[str, List[float]] = {name: [] for name in steps}
    ratios: Dict[str, List[float]] = {name: [] for name in steps}

    def timed(name: str) -> float:
        start = now(device)
        steps[name]()
        times[name].append(now(device) - start)
        return times[name][-1]

    others = [name for name in steps if name != "stock"]
    for round_index in range(repeats):
        order = others if round_index % 2 == 0 else others[::-1]
        if not paired:
            for name in ["stock", *order] if round_index % 2 == 0 else [*order, "stock"]:
                timed(name)
            continue
        before = timed("stock")
        for name in order:
            took = timed(name)
            after = timed("stock")
            ratios[name].append((before + after) / 2 / took)
            before = after
    results = {}
    for name in steps:
        median = statistics.median(times[name])
        speed_up = statistics.median(times["stock"]) / median
        if paired and name != "stock":
            speed_up = statistics.median(ratios[name])
        results[name] = (median, peaks[name], speed_up)
    return results


def time_targets(
    instances: List[Instances], repeats: Dict[str, int], device: torch.device = torch.device("cpu")
) -> List[Tuple[str, str, float, float]]:
    """(mask type, way, median seconds, ratio to Detectron2's way) for each way to make the
    (R, 28, 28) targets of all RoIs.

    Detectron2's way: `crop_and_resize` of each image, concatenated, as in `mask_rcnn_loss`;
    the head's way: `mask_targets`. Both must give the same masks. Timed D H D H .. D after a
    warm-up; the ratio is the median of (time of H) / (mean of the two D times around it).
    """

    def detectron2_way(field: str) -> Callable[[], torch.Tensor]:
        return lambda: torch.cat(
            [i.get(field).crop_and_resize(i.proposal_boxes.tensor, MASK_SIZE) for i in instances]
        )

    def head_way(field: str) -> Callable[[], torch.Tensor]:
        views = []
        for inst in instances:
            view = Instances(inst.image_size, proposal_boxes=inst.proposal_boxes)
            view.gt_classes, view.gt_masks = inst.gt_classes, inst.get(field)
            views.append(view)
        return lambda: mask_targets(views, MASK_SIZE, False, device)[1]

    def timed(run: Callable[[], torch.Tensor]) -> float:
        start = now(device)
        run()
        return now(device) - start

    rows = []
    for kind, field in (("PolygonMasks", "gt_masks"), ("BitMasks", "gt_bitmasks")):
        detectron2, head = detectron2_way(field), head_way(field)
        if not torch.equal(detectron2(), head()):  # also the warm-up
            raise AssertionError(f"mask_targets differs from {kind}.crop_and_resize")
        detectron2_times, head_times, ratios = [timed(detectron2)], [], []
        for _ in range(repeats[kind]):
            head_times.append(timed(head))
            detectron2_times.append(timed(detectron2))
            ratios.append(2 * head_times[-1] / sum(detectron2_times[-2:]))
        rows.append((kind, "crop_and_resize", statistics.median(detectron2_times), 1.0))
        rows.append(
            (kind, "mask_targets", statistics.median(head_times), statistics.median(ratios))
        )
    return rows


def check_same_loss(stock, ours, features, instances) -> None:
    """Our bce head after the trunk gives the stock head's loss: same weights, same targets."""
    with torch.no_grad(), EventStorage(), trunk_skipped(ours) as head:
        got = head(features, instances)["loss_mask"]
        expected = mask_rcnn_loss(stock.predictor(features), instances) * stock.loss_weight
    # On CUDA the stock predictor is a cuDNN convolution, in TF32 by default (10-bit mantissa).
    tolerance = 1e-3 if features.is_cuda else 1e-5
    if not math.isclose(got.item(), expected.item(), rel_tol=tolerance):
        raise AssertionError(f"bce after the trunk: ours {got.item()} != stock {expected.item()}")


def after_trunk_steps(stock, ours, features, instances) -> Dict[str, Step]:
    inputs = [features] + [t for i in instances for t in (i.proposal_boxes.tensor, i.gt_classes)]

    def stock_forward():
        return mask_rcnn_loss(stock.predictor(features), instances) * stock.loss_weight

    def our_forward(head):
        def forward():
            with trunk_skipped(head):
                return head(features, instances)["loss_mask"]

        return forward

    steps = {"stock": Step(stock_forward, [stock, *inputs])}
    for loss, head in ours.items():
        steps[loss] = Step(our_forward(head), [head, *inputs])
    return steps


def whole_head_steps(stock, ours, x, instances) -> Dict[str, Step]:
    inputs = [x] + [t for i in instances for t in (i.proposal_boxes.tensor, i.gt_classes)]
    steps = {"stock": Step(lambda: stock(x, instances)["loss_mask"], [stock, *inputs])}
    for loss, head in ours.items():
        steps[loss] = Step(lambda head=head: head(x, instances)["loss_mask"], [head, *inputs])
    return steps


def print_table(title: str, header: Sequence[str], rows: List[Sequence]) -> None:
    widths = [max(len(str(v)) for v in column) for column in zip(header, *rows)]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print(
            "  ".join(
                str(v).rjust(w) if i else str(v).ljust(w)
                for i, (v, w) in enumerate(zip(row, widths))
            )
        )


def compare_rows(num_classes: int, results: Dict[str, Tuple[float, float, float]]) -> List[List]:
    """Rows: classes, loss, ours ms, stock ms, speed-up (stock / ours), ours MiB, stock MiB."""
    stock_s, stock_mib, _ = results["stock"]
    rows = []
    for loss, (ours_s, ours_mib, speed_up) in results.items():
        if loss != "stock":
            rows.append(
                [
                    num_classes,
                    loss,
                    f"{1e3 * ours_s:.1f}",
                    f"{1e3 * stock_s:.1f}",
                    f"{speed_up:.2f}",
                    f"{ours_mib:.0f}",
                    f"{stock_mib:.0f}",
                ]
            )
    return rows


def parse_losses(names: Sequence[str]) -> List[str]:
    """The losses named, or for "all" every loss that needs no image colours, and bce+dice.

    The colour losses (IMAGE_LOSSES) need NoisyMaskROIHeads, which these benchmarks do not build;
    their cost shows in the run times of benchmarks/robustness.py.
    """
    if list(names) == ["all"]:
        return [name for name in MASK_LOSSES if name not in IMAGE_LOSSES] + ["bce+dice"]
    return list(names)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--classes",
        type=int,
        nargs="*",
        default=[80, 1203],
        help="class counts of the after-the-trunk table (default 80 1203)",
    )
    parser.add_argument(
        "--head-classes",
        type=int,
        nargs="*",
        default=[80],
        help="class counts of the whole-head table (default 80: at 1203 the stock predictor "
        "alone costs more than our whole head after the trunk)",
    )
    parser.add_argument("--rois", type=int, default=256)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed rounds after the warm-up, after the trunk"
    )
    parser.add_argument(
        "--head-repeats", type=int, default=2, help="timed rounds after the warm-up, whole head"
    )
    parser.add_argument(
        "--losses",
        nargs="*",
        default=list(DEFAULT_LOSSES),
        help=f"losses of the after-the-trunk table, 'all', or none to skip it "
        f"(default: {' '.join(DEFAULT_LOSSES)})",
    )
    parser.add_argument(
        "--head-losses",
        nargs="*",
        default=["bce"],
        help="losses of the whole-head table (default bce), 'all', or none to skip it",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    if not args.classes + args.head_classes:
        parser.error("give at least one class count in --classes or --head-classes")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no GPU here")
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    started, load_at_start = time.perf_counter(), os.getloadavg()[0]
    losses, head_losses = parse_losses(args.losses), parse_losses(args.head_losses)
    all_losses = list(dict.fromkeys(["bce"] + losses + head_losses))
    on = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    print(
        f"torch {torch.__version__}{on}, {args.threads} thread(s), {args.rois} RoIs; medians of "
        f"{args.repeats} (after the trunk) and {args.head_repeats} (whole head) timed rounds, "
        "each after a warm-up"
    )

    instances = coco_like_rois(args.rois, max(args.classes + args.head_classes), args.seed)
    instances = [inst.to(device) for inst in instances]  # the polygons stay on the host
    drawn_classes = [inst.gt_classes for inst in instances]
    targets = time_targets(instances, CROP_REPEATS, device)
    target_rows = [[kind, way, f"{1e3 * s:.1f}", f"{r:.2f}"] for kind, way, s, r in targets]
    rounds = ", ".join(f"{n} for {kind}" for kind, n in CROP_REPEATS.items())
    print_table(
        f"Targets of {args.rois} RoIs, {MASK_SIZE} x {MASK_SIZE}; paired runs: {rounds}",
        ["masks", "way", "median ms", "/ crop_and_resize"],
        target_rows,
    )

    g = torch.Generator().manual_seed(args.seed)
    after_rows, head_rows = [], []
    for num_classes in dict.fromkeys(args.classes + args.head_classes):
        for inst, classes in zip(instances, drawn_classes):  # this run's classes, same draw
            inst.gt_classes = classes % num_classes
        stock, ours = build_heads(num_classes, all_losses, args.seed)
        stock.to(device)
        for head in ours.values():
            head.to(device)
        f = F.relu(torch.randn(args.rois, CONV_DIM, MASK_SIZE, MASK_SIZE, generator=g))
        f = f.to(device).requires_grad_(True)
        check_same_loss(stock, ours["bce"], f, instances)
        with EventStorage():
            if losses and num_classes in args.classes:
                results = measure(
                    after_trunk_steps(stock, {k: ours[k] for k in losses}, f, instances),
                    args.repeats,
                    device=device,
                )
                after_rows += compare_rows(num_classes, results)
            del f
            x = torch.randn(args.rois, CHANNELS, POOLER, POOLER, generator=g)
            x = x.to(device).requires_grad_(True)
            if head_losses and num_classes in args.head_classes:
                results = measure(
                    whole_head_steps(stock, {k: ours[k] for k in head_losses}, x, instances),
                    args.head_repeats,
                    paired=True,
                    device=device,
                )
                head_rows += compare_rows(num_classes, results)
        print(f"... {num_classes} classes done", flush=True)

    header = ["classes", "loss", "ours ms", "stock ms", "speed-up", "ours MiB", "stock MiB"]
    if after_rows:
        print_table(
            "After the trunk: predictor, targets, diagnostics, loss; forward + backward",
            header,
            after_rows,
        )
    if head_rows:
        print_table(
            "Whole head: trunk, predictor, targets, diagnostics, loss; forward + backward",
            header,
            head_rows,
        )

    print(
        f"\nLoad average (1 min): {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at "
        f"the end; {time.perf_counter() - started:.0f} s in all"
    )
    print("\nGoals")
    for row in after_rows:
        if row[0] in SPEED_UP_GOALS:
            goal = SPEED_UP_GOALS[row[0]]
            print(
                f"  after the trunk, {row[0]} classes, {row[1]}: speed-up {row[4]} "
                f"(goal >= {goal:g}): {'met' if float(row[4]) >= goal else 'NOT met'}"
            )
    for row in head_rows:
        ratio = 1 / float(row[4])
        goal = CUDA_HEAD_GOALS.get(row[0], 1) if device.type == "cuda" else 1
        print(
            f"  whole head, {row[0]} classes, {row[1]}: ours / stock = {ratio:.3f} "
            f"(goal <= {goal:g}): {'met' if ratio <= goal else 'NOT met'}"
        )
    for kind, way, ratio in ((r[0], r[1], r[3]) for r in target_rows):
        if way == "mask_targets":
            print(
                f"  targets, {kind}: mask_targets / crop_and_resize = {ratio} (goal <= 1, "
                "within timing noise: both make the same crop_and_resize calls)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
