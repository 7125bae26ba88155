"""`--executor slurm` against a real Slurm: a one-node cluster on this machine
(scripts/slurm_cluster.sh, started here when it is not running). Skipped, with the reason, where
Slurm is not installed (`apt-get install slurm-wlm munge`; .ci/run installs them)."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
from samples import ROOT

from noisy_mask.commands.audit import main as audit_main
from noisy_mask.commands.robustness import main as grid_main
from noisy_mask.data import generate_shapes_dataset
from noisy_mask.engine.slurm import JOB_FILE, SlurmOptions, active_jobs

SCRIPT = ROOT / "scripts" / "slurm_cluster.sh"
ON_SLURM = ["--device", "cpu", "--executor", "slurm", "--slurm-cpus", "1", "--slurm-time", "20"]
TINY_GRID = ["--smoke", "--losses", "bce", "--max-iter", "4", "--pretrain-iters", "4",
             "--val-images", "3"]


def cluster_up() -> bool:
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return result.returncode == 0 and any(state.strip() in ("idle", "mixed", "allocated")
                                          for state in result.stdout.splitlines())


@pytest.fixture(scope="module")
def slurm():
    """A running one-node cluster: the one there is, or one started (and stopped) here."""
    if shutil.which("slurmctld") is None or shutil.which("sinfo") is None:
        pytest.skip("Slurm is not installed (apt-get install slurm-wlm munge)")
    started = False
    if not cluster_up():
        if os.geteuid() != 0:
            pytest.skip("no Slurm cluster is running, and starting one needs root")
        subprocess.run(["bash", str(SCRIPT), "start"], check=True, timeout=120)
        started = True
    yield
    if started:
        subprocess.run(["bash", str(SCRIPT), "stop"], timeout=60)


def job_of(run_dir: Path) -> str:
    return str(json.loads((run_dir / JOB_FILE).read_text())["job_id"])


def run_files(folder: Path):
    """Each run folder and the files a run writes, but those of the executor (job records, its
    logs) and the logs with times in them."""
    kept = set()
    for path in folder.glob("runs/*/*/*/**/*"):
        relative = path.relative_to(folder)
        if path.is_file() and "slurm" not in relative.parts and relative.name != JOB_FILE:
            # tensorboard's event files are named by time, host and process id
            kept.add(str(relative).split(".tfevents.")[0])
    return kept


@pytest.mark.slow
def test_the_smoke_grid_through_slurm_is_the_grid_through_the_local_executor(slurm, tmp_path,
                                                                              capsys):
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    started = time.time()
    assert grid_main(["--output", str(local), *TINY_GRID, "--device", "cpu", "--jobs", "2"]) == 0
    local_seconds = time.time() - started
    started = time.time()
    assert grid_main(["--output", str(cluster), *TINY_GRID, *ON_SLURM]) == 0
    slurm_seconds = time.time() - started
    printed = capsys.readouterr().out
    assert "run clean seed 0 bce: Slurm job " in printed and "(submitted)" in printed
    assert run_files(local) == run_files(cluster) != set()
    ours, theirs = (json.loads((folder / "results.json").read_text())
                    for folder in (local, cluster))
    assert ours["verdict"] == theirs["verdict"]
    assert ([(r["level"], r["seed"], r["loss"], r["results"]) for r in ours["records"]]
            == [(r["level"], r["seed"], r["loss"], r["results"]) for r in theirs["records"]])
    # Each run was a job, its logs in the run folder.
    for run_dir in cluster.glob("runs/*/seed0/bce"):
        job = job_of(run_dir)
        assert (run_dir / "slurm" / f"{job}_0_log.out").is_file()
        assert (run_dir / "slurm" / f"{job}_0_result.pkl").is_file()
    print(f"smoke grid: local {local_seconds:.0f} s, slurm {slurm_seconds:.0f} s")


@pytest.mark.slow
def test_a_cancelled_run_is_named_then_resubmitted_and_resumes_from_its_checkpoint(slurm,
                                                                                    tmp_path):
    out = tmp_path / "grid"
    # One run of 60 iterations (a checkpoint every 20), its detector pretrained first.
    args = [sys.executable, "-m", "noisy_mask", "robustness", "--output", str(out), "--smoke",
            "--losses", "bce", "--levels", "clean", "--max-iter", "60", "--pretrain-iters", "4",
            "--val-images", "3", *ON_SLURM]
    run_dir = out / "runs" / "clean" / "seed0" / "bce"
    first = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.time() + 400
    while not (run_dir / "model_0000019.pth").exists():
        assert first.poll() is None and time.time() < deadline, first.communicate()
        time.sleep(0.5)
    job = job_of(run_dir)
    # Started again meanwhile, the command follows the job queued or running: no second copy.
    second = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    followed = ""
    while f"Slurm job {job} (already queued or running)" not in followed:
        line = second.stdout.readline()
        assert line, second.communicate()
        followed += line
    assert job_of(run_dir) == job
    assert list(active_jobs([job])) == [job]
    subprocess.run(["scancel", job], check=True)
    for process in (first, second):
        stdout, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, stdout + stderr
        assert "1 of 1 runs failed" in stderr and "clean seed 0 bce" in stderr
        # scancel stops the job's train_net (SIGTERM) before Slurm kills the job itself
        assert (f"Slurm job {job}: RuntimeError: training bce failed (exit -15): see "
                f"{run_dir / 'train_net.out'}") in stderr, stderr
    assert not (run_dir / "eval_results.json").exists()

    # Started again: the run is submitted anew and resumes from its last checkpoint.
    third = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert job_of(run_dir) != job
    log = (run_dir / "train_net.out").read_text()
    assert "model_0000019.pth" in log and "Starting training from iteration 20" in log
    assert (run_dir / "eval_results.json").is_file()


@pytest.mark.slow
def test_a_preempted_run_is_requeued_and_resumes_from_its_checkpoint(slurm, tmp_path):
    out = tmp_path / "grid"
    args = [sys.executable, "-m", "noisy_mask", "robustness", "--output", str(out), "--smoke",
            "--losses", "bce", "--levels", "clean", "--max-iter", "60", "--pretrain-iters", "4",
            "--val-images", "3", *ON_SLURM]
    run_dir = out / "runs" / "clean" / "seed0" / "bce"
    command = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 400
    while not (run_dir / "model_0000019.pth").exists():
        assert command.poll() is None and time.time() < deadline, command.communicate()
        time.sleep(0.5)
    job = job_of(run_dir)
    # What Slurm sends a job it preempts (SIGTERM, then USR2): submitit requeues it.
    submitit.SlurmJob(folder=run_dir / "slurm", job_id=job)._interrupt()
    stdout, stderr = command.communicate(timeout=600)
    assert command.returncode == 0, stdout[-3000:] + stderr[-3000:]
    assert job_of(run_dir) == job  # the same job, requeued
    log = (run_dir / "train_net.out").read_text()  # the requeued run's
    assert "Starting training from iteration 20" in log or (
        "Starting training from iteration 40" in log), log[-3000:]
    assert (run_dir / "eval_results.json").is_file()
    # submitit's word for it; Slurm holds a requeued job a while (about 2 min here) first
    assert f"Requeued job {job}" in (run_dir / "slurm" / f"{job}_0_log.out").read_text()


@pytest.mark.slow
def test_the_audits_folds_through_slurm(slurm, tmp_path, capsys):
    data = generate_shapes_dataset(tmp_path / "shapes", num_train=6, num_val=0, seed=3)
    out = tmp_path / "audit"
    assert audit_main(["--annotations", data["train_json"], data["train_images"], "--output",
                       str(out), "--folds", "2", "--max-iter", "4", *ON_SLURM,
                       "SOLVER.IMS_PER_BATCH", "2"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("(submitted)") == 2 and "[2/2] fold " in printed
    audit = json.loads((out / "audit.json").read_text())
    assert len(audit["annotations"]) == len(json.loads(Path(data["train_json"]).read_text())[
        "annotations"])
    for fold in (0, 1):
        run_dir = out / "folds" / f"fold{fold}" / "run"
        assert (run_dir / "slurm" / f"{job_of(run_dir)}_0_log.out").is_file()


def test_slurm_options_become_sbatch_parameters_and_bad_ones_are_named():
    options = SlurmOptions(partition="gpu", time_min=90, cpus_per_run=8, mem_gb=32,
                           account="lab", qos="high", constraint="a100",
                           sbatch=("exclude=node7", "comment=x=y"))
    assert options.check() is options
    assert options.parameters("bce", gpus=2) == dict(
        job_name="bce", time=90, nodes=1, ntasks_per_node=1, cpus_per_task=8, gpus_per_node=2,
        signal_delay_s=120, additional_parameters={"exclude": "node7", "comment": "x=y"},
        partition="gpu", mem="32GB", account="lab", qos="high", constraint="a100")
    assert SlurmOptions().parameters("bce", gpus=0)["gpus_per_node"] is None
    with pytest.raises(ValueError, match="--slurm-option '--exclude=node7': give KEY=VALUE"):
        SlurmOptions(sbatch=("--exclude=node7",)).check()
    with pytest.raises(ValueError, match="--slurm-cpus must be at least 1, got 0"):
        SlurmOptions(cpus_per_run=0).check()


def test_slurm_flags_go_with_the_slurm_executor(capsys, tmp_path):
    with pytest.raises(SystemExit):
        grid_main(["--output", str(tmp_path / "g"), "--slurm-partition", "gpu"])
    assert "--slurm-partition goes with --executor slurm" in capsys.readouterr().err
    assert not (tmp_path / "g").exists()
