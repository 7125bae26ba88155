"""On CUDA (`pytest -m gpu`; each test skipped, with the reason, where torch sees no GPU): the
losses against the CPU and under mixed precision, the head's fast path against the stock head,
training with AMP, grid runs placed on the GPUs, and the audit's `--weights`.

`scripts/gpu_check.sh` runs these on a bare CUDA machine. Each takes seconds on one H100.
"""

import json
import math
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml
from detectron2.utils.events import EventStorage

from noisy_mask.losses.table import LOSSES, get_mask_loss

TESTS = Path(__file__).resolve().parents[1]
# The helpers of the CPU tests these mirror (pytest puts a test's own folder on sys.path).
for folder in ("modeling", "engine", "audit"):
    sys.path.insert(0, str(TESTS / folder))
from test_audit_models import SMALL, audit_args  # noqa: E402
from test_fast_path import LOSSES as HEAD_LOSSES  # noqa: E402
from test_fast_path import assert_equal_to_1e5, features, gradients, make_heads  # noqa: E402
from test_fast_path import stock_way_loss  # noqa: E402
from test_train_net import metrics_lines  # noqa: E402

from heads import make_instances  # noqa: E402  (tests/modeling/heads.py)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="CUDA is not available (torch.cuda.is_available())"
    ),
]
ROOT = TESTS.parent
CUDA = torch.device("cuda")


@pytest.fixture
def exact_float32():
    """float32 as on the CPU: no TF32 (cuDNN convolutions use it by default, a 10-bit mantissa)
    and deterministic cuDNN algorithms (no atomics in the backward passes)."""
    saved = (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.deterministic,
    )
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    yield
    (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.deterministic,
    ) = saved


def loss_inputs(name, image_options, seed=0):
    """(logits (6, 28, 28) of both signs, {0, 1} targets of blobs, the loss's extra options), on
    the CPU."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, 28, 28, generator=g) * 3
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centers = torch.rand(6, 2, generator=g) * 14 + 7
    radii = torch.rand(6, 1, 1, generator=g) * 6 + 4
    targets = ((ys - centers[:, 0, None, None]) ** 2 + (xs - centers[:, 1, None, None]) ** 2
               < radii**2).float()  # fmt: skip
    return logits, targets, image_options(name, logits)


def loss_and_gradient(name, logits, targets, options, device):
    logits = logits.to(device).requires_grad_(True)
    options = {k: v.to(device) for k, v in options.items()}
    loss = get_mask_loss(name)(logits, targets.to(device), **options)
    loss.backward()
    return loss.detach().cpu(), logits.grad.cpu()


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_and_its_gradient_on_cuda_equal_the_cpu(name, image_options, exact_float32):
    """Tolerances: the GPU sums float32 in another order (parallel reductions) and computes exp
    and log to within 2 ulp, about 1e-7 relative per operation; a loss is a mean over 4704
    pixels, so 1e-5 relative. A pixel's gradient is one chain of operations, 1e-4 relative, and
    1e-5 of the largest where it nearly cancels."""
    logits, targets, options = loss_inputs(name, image_options)
    cpu_loss, cpu_grad = loss_and_gradient(name, logits, targets, options, "cpu")
    cuda_loss, cuda_grad = loss_and_gradient(name, logits, targets, options, CUDA)
    assert cpu_loss.item() != 0.0 and cpu_grad.abs().max() > 0
    torch.testing.assert_close(cuda_loss, cpu_loss, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(
        cuda_grad, cpu_grad, rtol=1e-4, atol=1e-5 * cpu_grad.abs().max().item()
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_is_float32_and_finite_under_autocast(name, dtype, image_options):
    """Logits made by a layer under autocast (in `dtype`, as the model's), some at the extremes
    of float16: the loss is float32, finite, equal to the loss of the same rounded logits given
    in float32 (the losses switch autocast off), and so are the gradients."""
    logits, targets, options = loss_inputs(name, image_options, seed=1)
    logits[0, :4] = 6e4  # near float16's largest, 65504
    logits[1, :4] = -6e4
    options = {k: v.to(CUDA) for k, v in options.items()}
    targets = targets.to(CUDA)
    x = logits.to(CUDA).requires_grad_(True)
    with torch.autocast("cuda", dtype=dtype):
        low = x @ torch.eye(28, device=CUDA)  # a matmul: autocast runs it in `dtype`
        assert low.dtype == dtype
        loss = get_mask_loss(name)(low, targets, **options)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all()
    reference = get_mask_loss(name)(low.detach().float(), targets, **options)
    torch.testing.assert_close(loss.detach(), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("class_agnostic", [False, True], ids=["class-specific", "agnostic"])
@pytest.mark.parametrize("loss", HEAD_LOSSES)
def test_head_fast_path_on_cuda_equals_the_stock_way(loss, class_agnostic, exact_float32):
    """tests/modeling/test_fast_path.py's comparison on the GPU, to the same 1e-5."""
    ours, stock, cfg = make_heads(loss, class_agnostic)
    ours.to(CUDA)
    stock.to(CUDA)
    instances = [i.to(CUDA) for i in make_instances()]
    x, x_ref = (features(7).detach().to(CUDA).requires_grad_(True) for _ in range(2))
    with EventStorage():
        got = ours(x, instances)["loss_mask"]
    got.backward()
    expected = stock_way_loss(stock, x_ref, instances, loss, cfg)
    expected.backward()
    assert got.device.type == CUDA.type and expected.item() != 0.0
    assert_equal_to_1e5(got.detach(), expected.detach(), "loss")
    got_grads, expected_grads = gradients(ours, x), gradients(stock, x_ref)
    for name, expected_grad in expected_grads.items():
        assert_equal_to_1e5(got_grads[name], expected_grad, f"gradient of {name}")
    assert expected_grads["input features"].abs().max() > 0


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from noisy_mask.data import generate_shapes_dataset

    root = tmp_path_factory.mktemp("gpu_shapes")
    return generate_shapes_dataset(root, num_train=16, num_val=4, image_size=96, seed=3)


def test_fifty_amp_iterations_of_train_net_on_cuda(shapes, tmp_path):
    from noisy_mask.engine.launcher import SHAPES_CONFIG, dataset_opts
    from noisy_mask.engine.trainer import tensorboard_available

    cmd = [
        sys.executable, "-m", "noisy_mask.train_net", "--config-file", str(SHAPES_CONFIG),
        *dataset_opts(shapes), "DATASETS.TEST", "()", "OUTPUT_DIR", str(tmp_path),
        "MODEL.DEVICE", "cuda", "SOLVER.AMP.ENABLED", "True", "SOLVER.MAX_ITER", "50",
        "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "10", "SOLVER.CHECKPOINT_PERIOD", "1000",
        *SMALL,
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    lines = [m for m in metrics_lines(tmp_path) if "loss_mask" in m]
    assert lines[-1]["iteration"] == 49
    for line in lines:
        losses = {k: v for k, v in line.items() if k.startswith("loss_") or k == "total_loss"}
        assert losses and all(math.isfinite(v) for v in losses.values()), line
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert config["MODEL"]["DEVICE"] == "cuda" and config["SOLVER"]["AMP"]["ENABLED"] is True
    if not tensorboard_available():  # as on the bare GPU machine: no event files, said so
        assert not list(tmp_path.glob("events.out.tfevents.*"))
        assert "tensorboard is not installed" in log


def test_two_grid_runs_are_placed_on_the_gpus(shapes, tmp_path, monkeypatch):
    from noisy_mask.engine import launcher
    from noisy_mask.engine.placement import plan_slots

    seen = {}  # run folder -> the CUDA_VISIBLE_DEVICES its train_net process was given
    real_run = launcher.subprocess.run

    def spy(cmd, *args, env=None, **kwargs):
        if "noisy_mask.train_net" in cmd:
            seen[cmd[cmd.index("OUTPUT_DIR") + 1]] = (env or os.environ).get("CUDA_VISIBLE_DEVICES")
        return real_run(cmd, *args, env=env, **kwargs)

    monkeypatch.setattr(launcher.subprocess, "run", spy)
    launch = launcher.Launch(device="cuda", jobs=2, gpus_per_run=1)
    slots = plan_slots("cuda", jobs=2, gpus_per_run=1)
    assert launch.slots() == slots and all(len(slot.gpus) == 1 for slot in slots)
    schedule = launcher.Schedule(num_train=16, num_val=4, max_iter=10)
    tasks = []
    for seed, loss in enumerate(("bce", "dice")):
        run_dir = tmp_path / loss
        call = partial(launcher.train_and_evaluate, run_dir, loss, shapes, schedule, seed,
                       extra_opts=SMALL)  # fmt: skip
        tasks.append(launcher.Task(f"{loss} on CUDA", run_dir, call))
    results = launcher.run_in_parallel(tasks, launch)

    assert [0.0 <= r["segm"]["AP"] <= 100.0 for r in results] == [True, True]
    slot_gpus = {",".join(slot.gpus) for slot in slots}
    for task in tasks:
        visible = seen[str(task.run_dir)]
        assert visible in slot_gpus, (visible, slot_gpus)
        config = yaml.safe_load((task.run_dir / "config.yaml").read_text())
        assert config["MODEL"]["DEVICE"] == "cuda"
        # detectron2's environment table lists the GPUs the run saw: its slot's one GPU.
        log = (task.run_dir / "train_net.out").read_text()
        assert re.findall(r"^GPU ([0-9,]+)\s", log, flags=re.MULTILINE) == ["0"]


def test_audit_weights_on_cuda(shapes, tmp_path, exact_float32):
    """A model trained 4 iterations on the GPU audits the validation file there; its class
    probabilities at the annotations' boxes equal the CPU's (float32 without TF32: 1e-4)."""
    from noisy_mask.audit.predict import ImageModel, annotation_boxes, predictor_config
    from noisy_mask.coco.io import read_image
    from noisy_mask.commands.audit import main
    from noisy_mask.engine.launcher import SHAPES_CONFIG, run_train_net
    from noisy_mask.engine.placement import plan_slots

    run_dir = tmp_path / "tiny_run"
    opts = ["DATASETS.REGISTER_COCO", repr([["tiny_train", shapes["train_json"],
                                             shapes["train_images"]]]),
            "DATASETS.TRAIN", "('tiny_train',)", "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "4",
            "SOLVER.CHECKPOINT_PERIOD", "100", *SMALL]  # fmt: skip
    run_train_net(run_dir, opts, "the tiny model", slot=plan_slots("cuda", jobs=1)[0])
    weights = run_dir / "model_final.pth"

    out = tmp_path / "audit"
    assert main(audit_args(shapes, out, "--device", "cuda", "--weights", str(weights), *SMALL)) == 0
    audit = json.loads((out / "audit.json").read_text())
    gt = json.loads(Path(shapes["val_json"]).read_text())
    assert audit["predictions"]["source"] == "weights"
    assert audit["class_scores"] == "box_probabilities"
    assert [r["rank"] for r in audit["annotations"]] == list(range(1, len(gt["annotations"]) + 1))
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions and {p["category_id"] for p in predictions} <= {1, 2, 3, 4}
    assert min(p["score"] for p in predictions) >= 0.05

    models = {device: ImageModel(predictor_config(SHAPES_CONFIG, str(weights), SMALL, device))
              for device in ("cpu", "cuda")}  # fmt: skip
    assert models["cuda"].model.device.type == "cuda"
    boxes = annotation_boxes(gt)
    for image in gt["images"][:2]:
        rgb = read_image(shapes["val_images"], image)
        _, image_boxes = boxes[image["id"]]
        cpu, cuda = (torch.as_tensor(models[d](rgb, image_boxes)[1]).cpu() for d in models)
        torch.testing.assert_close(cuda, cpu, rtol=1e-4, atol=1e-4)
