"""Seconds per training iteration of the CPU shapes model: our mask head (each loss) against stock.

    python benchmarks/bench_train_iter.py [--losses bce dice lovasz | all] [--batches 4]
        [--rounds 5] [--threads N] [--config configs/shapes/Base-Shapes-R18-FPN.yaml]
        [--device cpu | cuda]

One process: a shapes dataset of 32 training images is generated in a temporary folder and
registered, one data loader (`build_detection_train_loader`) fills a fixed list of batches, and
one model (`build_model`) is built with Detectron2's `MaskRCNNConvUpsampleHead`. Each variant is
that model with its mask head swapped for `NoisyMaskRCNNConvUpsampleHead` and one loss. Before
every timed iteration the model is reset to the same initial weights, gets a fresh optimizer
(`build_optimizer`) and the same random seed, so that every variant does the same work on the
same batch: same proposals, same sampled RoIs (checked: the losses other than `loss_mask` must
be equal across variants).

Timed with `time.perf_counter`: forward, backward and the SGD step (`gc.collect()` runs before,
untimed). One warm-up iteration per variant, then `--rounds` rounds over the batches. At each
batch the stock model runs between every two variants, S A S B S .., the order of A, B, ..
reversed at every other batch, so that drift of a shared CPU cancels. A variant's ratio is its
time over the mean of the two stock times around it. Reported: median seconds per iteration,
the median and quartiles of the ratio over batches and rounds. Goal: median ratio at most 1.03
for every loss.

`--device cuda`: the model on the GPU (MODEL.DEVICE cuda), `torch.cuda.synchronize()` before
every clock reading (kernels run asynchronously), and a goal line per loss at the end.
"""

import argparse
import copy
import gc
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import torch
from detectron2.config import get_cfg
from detectron2.data import build_detection_train_loader
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.roi_heads.mask_head import build_mask_head
from detectron2.solver import build_optimizer
from detectron2.utils.events import EventStorage

from bench_mask_head import now, parse_losses  # benchmarks/ is on the path as a script
from noisy_mask import add_noisy_mask_config
from noisy_mask.data import generate_shapes_dataset
from noisy_mask.data.register import register_coco_datasets

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "shapes" / "Base-Shapes-R18-FPN.yaml"
DATASET = "noisy_mask_bench_shapes_train"
STOCK = "stock"
GOAL = 1.03
# The stock loss, a per-RoI ratio and the costliest loss (a sort per RoI); --losses all for all.
DEFAULT_LOSSES = ("bce", "dice", "lovasz")


def make_cfg(config_file: str, train_json: str, train_images: str):
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.DATASETS.REGISTER_COCO = [[DATASET, train_json, train_images]]
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (DATASET,), ()
    cfg.DATALOADER.NUM_WORKERS = 0  # the batches are fetched once, before any timing
    cfg.MODEL.ROI_MASK_HEAD.NAME = "MaskRCNNConvUpsampleHead"
    cfg.MODEL.ROI_MASK_HEAD.LOSS = "bce"
    return cfg


def our_head(cfg, loss: str):
    """Our head with `loss`, built as StandardROIHeads builds the configured one."""
    cfg = cfg.clone()
    cfg.MODEL.ROI_MASK_HEAD.NAME, cfg.MODEL.ROI_MASK_HEAD.LOSS = (
        "NoisyMaskRCNNConvUpsampleHead",
        loss,
    )
    side = cfg.MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION
    shape = ShapeSpec(channels=cfg.MODEL.FPN.OUT_CHANNELS, height=side, width=side)
    return build_mask_head(cfg, shape)


def train_step(model, cfg, initial_state, batch, seed: int):
    """(seconds of forward + backward + SGD step, {loss name: value}) from `initial_state`."""
    model.load_state_dict(initial_state)
    optimizer = build_optimizer(cfg, model)
    torch.manual_seed(seed)
    gc.collect()  # not inside the timed step
    start = now(model.device)
    losses = model(batch)
    total = sum(losses.values())
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    seconds = now(model.device) - start
    return seconds, {name: value.item() for name, value in losses.items()}


def run_benchmark(
    cfg, losses: Sequence[str], num_batches: int, rounds: int
) -> Tuple[Dict[str, Dict[str, float]], float]:
    """({variant: {"s_per_iter", "ratio", "ratio_q1", "ratio_q3", "loss_mask"}}, mean number of
    foreground RoIs per image) for "stock" and each loss.

    At each batch the stock head runs between every two variants, S A S B S ..., the order of
    A, B, .. reversed at every other batch; a variant's ratio is its time over the mean of the
    two stock times around it.
    """
    register_coco_datasets(cfg.DATASETS.REGISTER_COCO)
    batches = []
    for batch in build_detection_train_loader(cfg):
        batches.append(batch)
        if len(batches) == num_batches:
            break
    torch.manual_seed(cfg.SEED)
    model = build_model(cfg).train()
    heads = {STOCK: model.roi_heads.mask_head}
    heads.update({loss: our_head(cfg, loss).train() for loss in losses})
    initial_state = copy.deepcopy(model.state_dict())
    seconds: Dict[str, List[float]] = {v: [] for v in heads}
    ratios: Dict[str, List[float]] = {v: [] for v in heads}
    mask_losses: Dict[str, List[float]] = {v: [] for v in heads}
    with EventStorage(0) as storage:

        def run(variant: str, index: int) -> Tuple[float, Dict[str, float]]:
            model.roi_heads.mask_head = heads[variant]
            return train_step(model, cfg, initial_state, batches[index], seed=index)

        for variant in heads:  # warm-up
            run(variant, 0)
        num_fg = []
        for round_index in range(rounds):
            for index in range(len(batches)):
                flip = (round_index * len(batches) + index) % 2
                before, values = run(STOCK, index)
                num_fg.append(storage.history("roi_head/num_fg_samples").latest())
                seconds[STOCK].append(before)
                results = {STOCK: values}
                for variant in losses[::-1] if flip else losses:
                    took, results[variant] = run(variant, index)
                    after, _ = run(STOCK, index)
                    seconds[variant].append(took)
                    seconds[STOCK].append(after)
                    ratios[variant].append(2 * took / (before + after))
                    before = after
                # CUDA kernels may sum in another order from run to run, and the stock
                # predictor is a TF32 convolution (a 10-bit mantissa).
                check_same_work(results, index, 1e-6 if cfg.MODEL.DEVICE == "cpu" else 1e-4)
                for variant, values in results.items():
                    mask_losses[variant].append(values["loss_mask"])
    model.roi_heads.mask_head = heads[STOCK]
    summary = {}
    for v in heads:
        values = ratios[v] if v != STOCK else [1.0]
        median = statistics.median(values)
        q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (median,) * 3
        summary[v] = {
            "s_per_iter": statistics.median(seconds[v]),
            "ratio": median,
            "ratio_q1": q1,
            "ratio_q3": q3,
            "loss_mask": statistics.mean(mask_losses[v]),
        }
    return summary, statistics.mean(num_fg)


def check_same_work(
    values: Dict[str, Dict[str, float]], batch_index: int, tolerance: float = 1e-6
) -> None:
    """All variants saw the same proposals and RoIs: their other losses are equal (to
    `tolerance`, relative), and bce's loss_mask is stock's (to 10 `tolerance`)."""
    stock = values[STOCK]
    for variant, losses in values.items():
        for name, value in losses.items():
            bound = tolerance * max(1.0, abs(value))
            if name != "loss_mask" and abs(value - stock[name]) > bound:
                raise AssertionError(
                    f"batch {batch_index}: {name} of {variant} is {value}, stock's {stock[name]}:"
                    " the variants did not do the same work"
                )
    if "bce" in values and abs(values["bce"]["loss_mask"] - stock["loss_mask"]) > 10 * tolerance:
        raise AssertionError(f"batch {batch_index}: loss_mask of bce differs from stock's")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--losses",
        nargs="+",
        default=list(DEFAULT_LOSSES),
        help=f"losses to time, or 'all' (default: {' '.join(DEFAULT_LOSSES)})",
    )
    parser.add_argument("--batches", type=int, default=4, help="fixed batches, fetched first")
    parser.add_argument("--rounds", type=int, default=5, help="timed passes over the batches")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no GPU here")
    torch.set_num_threads(args.threads)
    started, load_at_start = time.perf_counter(), os.getloadavg()[0]
    losses = parse_losses(args.losses)
    with tempfile.TemporaryDirectory() as tmp:
        paths = generate_shapes_dataset(tmp, num_train=32, num_val=1)
        cfg = make_cfg(args.config, paths["train_json"], paths["train_images"])
        cfg.MODEL.DEVICE = args.device
        results, num_fg = run_benchmark(cfg, losses, args.batches, args.rounds)

    on = f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(
        f"torch {torch.__version__}{on}, {args.threads} thread(s); {Path(args.config).name}, "
        f"{cfg.SOLVER.IMS_PER_BATCH} images per batch, {num_fg:.1f} foreground RoIs per image; "
        f"{args.batches} batches x {args.rounds} rounds per variant after a warm-up"
    )
    print("The losses other than loss_mask were equal across variants on every batch.")
    print(
        f"Load average (1 min): {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the "
        f"end; {time.perf_counter() - started:.0f} s in all\n"
    )
    header = ["head", "median s/iter", "ratio to stock", "quartiles", "mean loss_mask", "goal"]
    rows = []
    for variant, r in results.items():
        goal = "" if variant == STOCK else ("met" if r["ratio"] <= GOAL else "NOT met")
        name = "stock (MaskRCNNConvUpsampleHead)" if variant == STOCK else f"ours, {variant}"
        quartiles = "" if variant == STOCK else f"{r['ratio_q1']:.3f}-{r['ratio_q3']:.3f}"
        rows.append(
            [
                name,
                f"{r['s_per_iter']:.3f}",
                f"{r['ratio']:.3f}",
                quartiles,
                f"{r['loss_mask']:.4f}",
                goal,
            ]
        )
    widths = [max(len(str(v)) for v in column) for column in zip(header, *rows)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print(
            "  ".join(
                str(v).ljust(w) if i == 0 else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(row, widths))
            )
        )
    if args.device == "cuda":
        print("\nGoals")
        for variant, r in results.items():
            if variant != STOCK:
                print(
                    f"  training iteration, {variant}: ours / stock = {r['ratio']:.3f} "
                    f"(goal <= {GOAL:g}): {'met' if r['ratio'] <= GOAL else 'NOT met'}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
