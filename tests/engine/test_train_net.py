"""train_net.py end to end on the CPU: train, checkpoint, evaluate, resume, two processes and
two machines."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from noisy_mask.data import generate_shapes_dataset

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "shapes" / "mask_rcnn_R18_FPN_shapes_dice.yaml"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return generate_shapes_dataset(tmp_path_factory.mktemp("shapes"), num_train=16, num_val=4, seed=3)


def train_net(shapes, output_dir, *args, opts=(), timeout=600):
    datasets = [["tiny_train", shapes["train_json"], shapes["train_images"]],
                ["tiny_val", shapes["val_json"], shapes["val_images"]]]
    cmd = [
        sys.executable, str(ROOT / "train_net.py"), "--config-file", str(CONFIG), *args,
        "DATASETS.REGISTER_COCO", repr(datasets),
        "DATASETS.TRAIN", "('tiny_train',)", "DATASETS.TEST", "('tiny_val',)",
        "OUTPUT_DIR", str(output_dir), "SOLVER.IMS_PER_BATCH", "2", "SOLVER.WARMUP_ITERS", "5",
        "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", "10", "TEST.DETECTIONS_PER_IMAGE", "20",
        *opts,
    ]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result.stdout + result.stderr


def metrics_lines(output_dir):
    return [json.loads(line) for line in Path(output_dir, "metrics.json").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run")
    log = train_net(shapes, output_dir, opts=["SOLVER.MAX_ITER", "20"])
    return output_dir, log


def test_training_writes_checkpoints_and_clean_mask_metrics(trained):
    output_dir, log = trained
    assert "Starting training from iteration 0" in log
    for name in ("model_0000009.pth", "model_final.pth", "last_checkpoint", "config.yaml"):
        assert (output_dir / name).is_file(), name
    results = json.loads((output_dir / "eval_results.json").read_text())
    for task in ("segm", "boundary"):
        assert set(results[task]) >= {"AP", "AP50", "AP75"}
        assert 0.0 <= results[task]["AP"] <= 100.0
    # The same numbers reach detectron2's metrics.json through the EvalHook.
    last = metrics_lines(output_dir)[-1]
    assert last["segm/AP"] == pytest.approx(results["segm"]["AP"])
    iterations = [m["iteration"] for m in metrics_lines(output_dir) if "loss_mask" in m]
    assert iterations[-1] == 19
    assert "LOSS: dice" in (output_dir / "config.yaml").read_text()


def test_resume_continues_from_the_last_checkpoint(shapes, trained, tmp_path):
    output_dir, _ = trained
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    for name in ("model_final.pth", "last_checkpoint"):
        (resumed / name).write_bytes((output_dir / name).read_bytes())
    log = train_net(shapes, resumed, "--resume", opts=["SOLVER.MAX_ITER", "30"])
    assert "Starting training from iteration 20" in log
    iterations = [m["iteration"] for m in metrics_lines(resumed) if "loss_mask" in m]
    assert iterations[0] >= 20 and iterations[-1] == 29
    assert (resumed / "model_final.pth").stat().st_mtime > (output_dir / "model_final.pth").stat().st_mtime


def test_eval_only_reproduces_the_final_evaluation(shapes, trained, tmp_path):
    output_dir, _ = trained
    weights = str(output_dir / "model_final.pth")
    train_net(shapes, tmp_path, "--eval-only", opts=["MODEL.WEIGHTS", weights])
    again = json.loads((tmp_path / "eval_results.json").read_text())
    first = json.loads((output_dir / "eval_results.json").read_text())
    assert again["segm"]["AP"] == pytest.approx(first["segm"]["AP"], abs=1e-6)
    assert again["boundary"]["AP"] == pytest.approx(first["boundary"]["AP"], abs=1e-6)


def test_two_processes_on_the_cpu_train_and_gather_the_evaluation(shapes, trained, tmp_path):
    output_dir, _ = trained
    log = train_net(shapes, tmp_path, "--num-gpus", "2", opts=["SOLVER.MAX_ITER", "4"])
    assert "Starting training from iteration 0" in log
    results = json.loads((tmp_path / "eval_results.json").read_text())
    results_file = tmp_path / "inference" / "tiny_val" / "coco_instances_results.json"
    predictions = json.loads(results_file.read_text())
    # Both processes' images are gathered (an untrained model detects something everywhere).
    val_ids = {image["id"] for image in json.loads(Path(shapes["val_json"]).read_text())["images"]}
    assert {p["image_id"] for p in predictions} == val_ids
    assert 0.0 <= results["segm"]["AP"] <= 100.0
    # The gathered metrics equal a single-process evaluation of the same checkpoint.
    single = tmp_path / "single"
    train_net(shapes, single, "--eval-only", opts=["MODEL.WEIGHTS", str(tmp_path / "model_final.pth")])
    alone = json.loads((single / "eval_results.json").read_text())
    assert alone["segm"]["AP"] == pytest.approx(results["segm"]["AP"], abs=1e-6)
    assert alone["boundary"]["AP"] == pytest.approx(results["boundary"]["AP"], abs=1e-6)


def test_a_missing_dataset_file_is_named(shapes, tmp_path):
    cmd = [sys.executable, str(ROOT / "train_net.py"), "--config-file", str(CONFIG),
           "--register-coco", "mine", str(tmp_path / "absent.json"), str(tmp_path),
           "DATASETS.REGISTER_COCO", "[]", "DATASETS.TRAIN", "('mine',)", "OUTPUT_DIR", str(tmp_path)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"'mine': no annotation file {tmp_path / 'absent.json'}" in result.stderr


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_machines_train_together_and_rank_0_evaluates(shapes, tmp_path):
    # Two `python -m noisy_mask.train_net` processes started as machines 0 and 1 of a job (one CPU
    # process each, gloo), each with its own output folder as on separate machines.
    port = free_port()
    datasets = [["tiny_train", shapes["train_json"], shapes["train_images"]],
                ["tiny_val", shapes["val_json"], shapes["val_images"]]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # both "machines" share this one's 2 cores
    machines = []
    for rank in (0, 1):
        output_dir = tmp_path / f"machine{rank}"
        cmd = [
            sys.executable, "-m", "noisy_mask.train_net", "--config-file", str(CONFIG),
            "--num-gpus", "1", "--num-machines", "2", "--machine-rank", str(rank),
            "--dist-url", f"tcp://127.0.0.1:{port}",
            "DATASETS.REGISTER_COCO", repr(datasets),
            "DATASETS.TRAIN", "('tiny_train',)", "DATASETS.TEST", "('tiny_val',)",
            "OUTPUT_DIR", str(output_dir), "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "4",
            "SOLVER.WARMUP_ITERS", "2", "SOLVER.STEPS", "()", "TEST.DETECTIONS_PER_IMAGE", "20",
            # Every image gets detections, so that each machine's share shows in the results.
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
        ]  # fmt: skip
        log = open(tmp_path / f"machine{rank}.log", "w+")
        machines.append((output_dir, log, subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)))
    try:
        for _, log, proc in machines:
            returncode = proc.wait(timeout=600)
            log.seek(0)
            assert returncode == 0, log.read()[-5000:]
    finally:
        for _, log, proc in machines:
            if proc.poll() is None:
                proc.kill()  # a machine left waiting for a failed peer would wait 30 minutes
            log.close()
    (out0, _, _), (out1, _, _) = machines
    assert "Rank of current process: 0. World size: 2" in (out0 / "log.txt").read_text()
    assert "Rank of current process: 1. World size: 2" in (out1 / "log.txt.rank1").read_text()
    # Machine 0 checkpoints, writes the metrics and evaluates once; machine 1 writes none of it.
    assert (out0 / "model_final.pth").is_file() and not (out1 / "model_final.pth").exists()
    assert list(tmp_path.rglob("eval_results.json")) == [out0 / "eval_results.json"]
    results = json.loads((out0 / "eval_results.json").read_text())
    assert 0.0 <= results["segm"]["AP"] <= 100.0
    iterations = [m["iteration"] for m in metrics_lines(out0) if "loss_mask" in m]
    assert iterations[-1] == 3
    # The evaluation gathered both machines' halves of the validation images.
    predictions = json.loads((out0 / "inference/tiny_val/coco_instances_results.json").read_text())
    val_ids = {image["id"] for image in json.loads(Path(shapes["val_json"]).read_text())["images"]}
    assert {p["image_id"] for p in predictions} == val_ids
