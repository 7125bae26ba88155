"""Each training run a job of a Slurm cluster, through submitit, as detection research code does it
(DETR's `run_with_submitit.py`, detectron2's Slurm launchers): the run's own call (train_net in a
subprocess, `engine.launcher`) is pickled and run on a node, on the CPUs and GPUs Slurm gives it.

- The command waits: it submits every run, then follows the jobs with `squeue` and their result
  files, and reports each to the progress as it ends. A job that fails, or that leaves the queue
  without a result (cancelled, killed), fails its run; the others go on.
- A job that Slurm preempts or times out is requeued by submitit (`SlurmRun.checkpoint`) and its
  train_net resumes from the run's last checkpoint (`--resume`).
- Each run folder records its job (`slurm_job.json`): the same command started again submits
  only the runs not finished, and follows, rather than submits again, a job still queued or
  running. Slurm's accounting (sacct) is not needed.
- The job's logs (submitit's stdout and stderr, and the pickles) are in RUN_DIR/slurm/, next to
  train_net.out.
"""

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import submitit

from ..utils.atomic import write_json_atomic
from .placement import Slot, visible_gpus
from .progress import RunProgress

JOB_FILE = "slurm_job.json"
JOB_FOLDER = "slurm"
# squeue's states of a job that will still run (or is running); anything else has left.
ACTIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
                 "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING")


@dataclass(frozen=True)
class SlurmOptions:
    """The Slurm resources of each run: `partition`, `time_min` (the time limit; a run that
    reaches it is requeued and resumes), `cpus_per_run`, `mem_gb`, `account`, `qos`,
    `constraint`, and any other sbatch option as "KEY=VALUE" (`sbatch`, e.g. "exclude=node7").
    GPUs per run come with the launch (`Launch.gpus_per_run`, on CUDA)."""

    partition: Optional[str] = None
    time_min: int = 24 * 60
    cpus_per_run: int = 4
    mem_gb: Optional[int] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None
    sbatch: Tuple[str, ...] = ()
    poll_s: float = 2.0  # between two looks at squeue (cheap: one call for every job)

    def check(self) -> "SlurmOptions":
        """ValueError, naming the command's option, unless every value is one Slurm takes."""
        for flag, value in (("--slurm-time", self.time_min), ("--slurm-cpus", self.cpus_per_run),
                            ("--slurm-mem-gb", self.mem_gb if self.mem_gb is not None else 1)):
            if value < 1:
                raise ValueError(f"{flag} must be at least 1, got {value}")
        for option in self.sbatch:
            key, equals, _ = option.partition("=")
            if not equals or not key or key.startswith("-"):
                raise ValueError(f"--slurm-option {option!r}: give KEY=VALUE, as sbatch's "
                                 "--KEY=VALUE without the dashes (e.g. exclude=node7)")
        return self

    def describe(self) -> str:
        parts = [f"partition {self.partition}" if self.partition else "default partition",
                 f"{self.cpus_per_run} CPUs", f"{self.time_min} min"]
        parts += [f"{self.mem_gb} GB" if self.mem_gb else "", *(self.sbatch or ())]
        return ", ".join(part for part in parts if part)

    def parameters(self, name: str, gpus: int) -> Dict[str, Any]:
        """submitit.SlurmExecutor's parameters of one run's job."""
        extra = dict(option.split("=", 1) for option in self.sbatch)
        given = dict(partition=self.partition, mem=f"{self.mem_gb}GB" if self.mem_gb else None,
                     account=self.account, qos=self.qos, constraint=self.constraint)
        return dict(job_name=name, time=self.time_min, nodes=1, ntasks_per_node=1,
                    cpus_per_task=self.cpus_per_run, gpus_per_node=gpus or None,
                    signal_delay_s=120, additional_parameters=extra,
                    **{key: value for key, value in given.items() if value is not None})


def cluster_has_gpus() -> bool:
    """Whether a node of the cluster offers GPUs (a gres of `sinfo` names one)."""
    result = subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True)
    return result.returncode == 0 and "gpu" in result.stdout


class SlurmRun:
    """A run's call as a job: on the node, on the CPUs (SLURM_CPUS_PER_TASK) and GPUs
    (CUDA_VISIBLE_DEVICES) Slurm gave it."""

    def __init__(self, call, device: str):
        self.call, self.device = call, device

    def __call__(self) -> Any:
        threads = int(os.environ.get("SLURM_CPUS_PER_TASK") or os.cpu_count() or 1)
        gpus = visible_gpus() if self.device == "cuda" else ()
        return self.call(slot=Slot(threads, tuple(gpus)))

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        # Preempted or timed out: submitit requeues the job with this same call, and train_net
        # (--resume) starts again from the run's last checkpoint.
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def active_jobs(job_ids: Sequence[str]) -> Dict[str, str]:
    """Job id -> state for those of `job_ids` that squeue lists in a state that will still run."""
    if not job_ids:
        return {}
    result = subprocess.run(["squeue", "-h", "-o", "%i %T", "-j", ",".join(job_ids)],
                            capture_output=True, text=True)
    # squeue fails on ids it no longer knows; each id then is asked alone.
    if result.returncode != 0 and len(job_ids) > 1:
        states: Dict[str, str] = {}
        for job_id in job_ids:
            states.update(active_jobs([job_id]))
        return states
    states = dict(line.split(maxsplit=1) for line in result.stdout.splitlines() if line.strip())
    return {job_id: state for job_id, state in states.items() if state in ACTIVE_STATES}


def recorded_job(run_dir: Path) -> Optional[str]:
    try:
        return str(json.loads((Path(run_dir) / JOB_FILE).read_text())["job_id"])
    except (OSError, ValueError, KeyError):
        return None


def submit_or_follow(task, options: SlurmOptions, device: str, gpus: int) -> Tuple[Any, bool]:
    """(the job of `task`, whether it was already queued or running): the job its run folder
    records if squeue still has it, else a new one, recorded there."""
    folder = Path(task.run_dir) / JOB_FOLDER
    earlier = recorded_job(task.run_dir)
    if earlier is not None and earlier in active_jobs([earlier]):
        return submitit.SlurmJob(folder=folder, job_id=earlier), True
    executor = submitit.SlurmExecutor(folder=folder)
    executor.update_parameters(**options.parameters(Path(task.run_dir).name, gpus))
    job = executor.submit(SlurmRun(task.call, device))
    write_json_atomic(Path(task.run_dir) / JOB_FILE,
                      {"job_id": job.job_id, "folder": str(folder), "name": task.name})
    return job, False


def run_on_slurm(tasks: Sequence[Any], options: SlurmOptions, device: str, gpus_per_run: int,
                 progress: Optional[RunProgress] = None) -> Tuple[List[Any], List[Tuple]]:
    """Run every task as a Slurm job and wait for them all; (their results in order, the
    (task, error) of those that failed)."""
    gpus = gpus_per_run if device == "cuda" else 0
    jobs, started = {}, {}
    for index, task in enumerate(tasks):
        Path(task.run_dir).mkdir(parents=True, exist_ok=True)
        job, followed = submit_or_follow(task, options, device, gpus)
        jobs[index], started[index] = job, time.time()
        if progress is not None:
            how = "already queued or running" if followed else "submitted"
            progress.start(task.name, task.run_dir, f"Slurm job {job.job_id} ({how})")
    results: List[Any] = [None] * len(tasks)
    failures: List[Tuple] = []
    while jobs:
        active = active_jobs([job.job_id for job in jobs.values()])
        for index, job in list(jobs.items()):
            task = tasks[index]
            if job.paths.result_pickle.exists():
                try:
                    results[index] = job.result()
                except Exception as error:  # the run failed on its node
                    failures.append((task, failed(job, error)))
                else:
                    if progress is not None:
                        progress.finish(task.name, task.run_dir, time.time() - started[index])
                    del jobs[index]
                    continue
            elif job.job_id not in active:
                failures.append((task, failed(job, "it left the queue without a result "
                                                   "(cancelled or killed)")))
            else:
                continue
            del jobs[index]
            if progress is not None:
                progress.fail(task.name, task.run_dir, failures[-1][1])
        if jobs:
            time.sleep(options.poll_s)
    return results, failures


def failed(job, error: Any) -> RuntimeError:
    """The error of a failed job, naming it and its logs: the exception its run raised (the
    last "SomeError: ..." line of the traceback submitit sends back), or `error` itself."""
    lines = str(error).strip().splitlines()
    raised = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
    reason = raised[-1] if raised else (lines[-1] if lines else type(error).__name__)
    return RuntimeError(f"Slurm job {job.job_id}: {reason}; see {job.paths.stderr} and "
                        f"{job.paths.folder.parent / 'train_net.out'}")
