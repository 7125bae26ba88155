"""Training runs of the experiments and the audit: `python -m noisy_mask.train_net` in a
subprocess per run, several side by side with the cores shared between them, their progress
reported (`engine.progress`).

A finished run (with `eval_results.json`) is not trained again and an unfinished one resumes from
its last checkpoint, so an interrupted experiment picks up where it stopped. A finished run whose
validation file has changed since (by content) is evaluated again on the new one, not trained.
"""

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import yaml

from ..data import generate_shapes_dataset
from ..model_zoo import get_config_file
from ..utils.atomic import write_json_atomic
from ..utils.run_folders import EVAL_RESULTS_FILE
from .placement import Slot, plan_slots
from .progress import RunProgress
from .slurm import JOB_FILE, JOB_FOLDER, SlurmOptions, run_on_slurm

SHAPES_CONFIG = Path(get_config_file("shapes/Base-Shapes-R18-FPN.yaml"))
# A run's record of the validation file it was evaluated on, and the folder of an evaluation again.
EVALUATED_ON_FILE = "evaluated_on.json"
EVALUATION_DIR = "evaluation"
VAL_DATASET = "val_clean"
# Runs side by side, the cores split between them: more throughput than one multi-threaded run,
# whose threads wait on each other whenever anything else uses a core.
DEFAULT_JOBS = 2 if (os.cpu_count() or 1) >= 2 else 1


@dataclass(frozen=True)
class Schedule:
    """Dataset size and training length of one experiment."""

    num_train: int
    num_val: int
    max_iter: int

    def solver_opts(self) -> List[str]:
        # LR drops at 80% and 93% of training, as in the 300-iteration config; detectron2 wants
        # them increasing and before the last iteration, which a very short run can break.
        drops = (round(self.max_iter * 0.8), round(self.max_iter * 0.93))
        steps = tuple(sorted({min(step, self.max_iter - 1) for step in drops} - {0}))
        return [
            "SOLVER.MAX_ITER",
            str(self.max_iter),
            "SOLVER.STEPS",
            str(steps),
            "SOLVER.CHECKPOINT_PERIOD",
            str(max(self.max_iter // 3, 1)),
            "SOLVER.WARMUP_ITERS",
            str(min(50, self.max_iter // 4)),
        ]


def run_train_net(
    run_dir: Path, opts: Sequence[str], what: str, config: Path = SHAPES_CONFIG,
    slot: Optional[Slot] = None, eval_only: bool = False,
) -> None:
    """Run `python -m noisy_mask.train_net --config-file config --resume opts` (with --eval-only:
    evaluate MODEL.WEIGHTS) into run_dir on `slot` (its threads, GPUs and device; default: every
    core of the CPU), its output in run_dir/train_net.out; raise naming `what` and that file if
    it fails.

    A slot caps the run's compute threads: runs side by side must not oversubscribe the cores,
    which slows CPU training several-fold.
    """
    slot = slot or plan_slots("cpu", jobs=1)[0]
    output = [f"train.output_dir={run_dir}"] if str(config).endswith(".py") else [
        "OUTPUT_DIR", str(run_dir)]
    cmd = [
        sys.executable,
        "-m",
        "noisy_mask.train_net",
        "--config-file",
        str(config),
        "--resume",  # continues an interrupted run from its last checkpoint
        *(["--eval-only"] if eval_only else []),
        *slot.train_net_args(),
        *output,
        *slot.config_opts(config),
        *opts,
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, **slot.env())
    with open(run_dir / "train_net.out", "w") as log:
        status = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if status.returncode != 0:
        raise RuntimeError(f"{'evaluating' if eval_only else 'training'} {what} failed "
                           f"(exit {status.returncode}): see {log.name}")


def train_and_evaluate(
    run_dir: Path,
    loss: str,
    data: Dict[str, str],
    schedule: Schedule,
    seed: int,
    extra_opts: Sequence[str] = (),
    slot: Optional[Slot] = None,
    config: Path = SHAPES_CONFIG,
) -> Dict:
    """Train `loss` with train_net.py on data["train_json"], evaluate on the clean validation set
    data["val_json"]. A finished run is only read, or evaluated again when its validation file
    has changed since (`evaluated_elsewhere`, `evaluate_again`)."""
    results_path = run_dir / EVAL_RESULTS_FILE
    if results_path.exists():
        if evaluated_elsewhere(run_dir, data["val_json"]):
            evaluate_again(run_dir, loss, data, slot)
        return json.loads(results_path.read_text())
    opts = [
        "MODEL.ROI_MASK_HEAD.LOSS",
        loss,
        *dataset_opts(data),
        "SEED",
        str(seed),
        *schedule.solver_opts(),
        *extra_opts,
    ]
    run_train_net(run_dir, opts, loss, config, slot)
    # Finished runs are never resumed: only model_final.pth is worth its disk (100 MB a run).
    for checkpoint in run_dir.glob("model_[0-9]*.pth"):
        checkpoint.unlink()
    write_json_atomic(run_dir / EVALUATED_ON_FILE, evaluated_on(data["val_json"]))
    return json.loads(results_path.read_text())


def dataset_opts(data: Dict[str, str]) -> List[str]:
    """The overrides that register a run's training and validation files and use them."""
    datasets = [
        ["train", data["train_json"], data["train_images"]],
        [VAL_DATASET, data["val_json"], data["val_images"]],
    ]
    return ["DATASETS.REGISTER_COCO", repr(datasets), "DATASETS.TRAIN", "('train',)",
            "DATASETS.TEST", f"('{VAL_DATASET}',)"]


@functools.lru_cache(maxsize=None)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def file_digest(path: os.PathLike) -> str:
    """The sha256 of a file's bytes (read once per path, modification time and size)."""
    stat = Path(path).stat()
    return _digest(os.fspath(path), stat.st_mtime_ns, stat.st_size)


def evaluated_on(val_json: os.PathLike) -> Dict[str, str]:
    return {"val_json": os.fspath(val_json), "sha256": file_digest(val_json)}


def evaluated_elsewhere(run_dir: Path, val_json: os.PathLike) -> bool:
    """Whether a finished run was evaluated on a validation file other than `val_json`, by
    content: the one its evaluated_on.json records or, for a run without one, the file its
    config.yaml registers as val_clean (False when that file is gone: nothing to tell by)."""
    stamp = run_dir / EVALUATED_ON_FILE
    if stamp.exists():
        return json.loads(stamp.read_text())["sha256"] != file_digest(val_json)
    config_file = run_dir / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else None
    entries = ((config or {}).get("DATASETS") or {}).get("REGISTER_COCO") or []
    earlier = next((entry[1] for entry in entries if entry[0] == VAL_DATASET), None)
    if earlier is None or not Path(earlier).is_file():
        return False
    return file_digest(earlier) != file_digest(val_json)


def evaluate_again(run_dir: Path, loss: str, data: Dict[str, str],
                   slot: Optional[Slot] = None) -> None:
    """Evaluate a finished run's model_final.pth with its config.yaml on data["val_json"], in
    RUN_DIR/evaluation (its config and log stay there), then put the new eval_results.json and
    inference/ in the run's own and record the file in evaluated_on.json. Interrupted, the run
    still differs from the file and is evaluated again the next time."""
    weights = run_dir / "model_final.pth"
    if not weights.is_file():
        raise FileNotFoundError(f"{run_dir}: no model_final.pth to evaluate on {data['val_json']}"
                                " again: delete the run folder to train it again")
    folder = run_dir / EVALUATION_DIR
    if folder.exists():
        shutil.rmtree(folder)  # an evaluation interrupted earlier
    run_train_net(folder, [*dataset_opts(data), "MODEL.WEIGHTS", str(weights)],
                  f"{run_dir} again", run_dir / "config.yaml", slot, eval_only=True)
    if (run_dir / "inference").exists():
        shutil.rmtree(run_dir / "inference")
    (folder / "inference").rename(run_dir / "inference")
    os.replace(folder / EVAL_RESULTS_FILE, run_dir / EVAL_RESULTS_FILE)
    write_json_atomic(run_dir / EVALUATED_ON_FILE, evaluated_on(data["val_json"]))


def pretrain_detector(
    output_dir: Path, schedule: Schedule, seed: int, config: Path = SHAPES_CONFIG,
    launch: Optional["Launch"] = None, variant: str = "plain",
) -> Path:
    """A detector without a mask branch (MODEL.MASK_ON False), trained on clean shapes images of
    its own (`seed`, not the experiment's; of `variant`), as a starting point like a detection
    model zoo's;
    returns its weights, `output_dir/pretrain/model_final.pth`. Trained once, alone where
    `launch` says (default: every core of the CPU): kept weights are returned at once, and an
    interrupted pretraining resumes.

    The mask head is not in these weights, so every mask head of the experiment learns its
    masks from its own (noisy) training annotations only.
    """
    run_dir = output_dir / "pretrain"
    weights = run_dir / "model_final.pth"
    if weights.exists():
        return weights
    paths = generate_shapes_dataset(
        output_dir / "pretrain_dataset", num_train=schedule.num_train, num_val=0, seed=seed,
        variant=variant,
    )
    opts = [
        "MODEL.MASK_ON",
        "False",
        "DATASETS.REGISTER_COCO",
        repr([["pretrain", paths["train_json"], paths["train_images"]]]),
        "DATASETS.TRAIN",
        "('pretrain',)",
        "DATASETS.TEST",
        "()",
        "SEED",
        str(seed),
        *schedule.solver_opts(),
    ]
    progress = RunProgress(total=1)
    run_in_parallel([Task("the detector pretrained without masks", run_dir,
                          functools.partial(run_train_net, run_dir, opts,
                                            "the pretrained detector", config))],
                    (launch or Launch(jobs=1)).alone(), progress)
    progress.close()
    return weights


def clear_run(run_dir: Path) -> None:
    """Delete what a run wrote into its folder (checkpoints, results, logs), so that it trains
    anew; the executor's record of its job (a Slurm job may be running it) stays."""
    if not run_dir.is_dir():
        return
    for path in run_dir.iterdir():
        if path.name in (JOB_FOLDER, JOB_FILE):
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


@dataclass(frozen=True)
class Task:
    """One training run: its `name` in the progress lines ("mid seed 1 dice"), its folder (the
    log, train_net.out, and eval_results.json are there), and `call(slot=...)`, which runs it on
    a `placement.Slot` and returns what the caller needs."""

    name: str
    run_dir: Path
    call: Callable[..., Any]


@dataclass(frozen=True)
class Launch:
    """Where a command's training runs run: on this machine's CPU, `jobs` side by side; on its
    GPUs (`device` cuda), `gpus_per_run` each, as many side by side as the GPUs allow; or each run
    a job of a Slurm cluster (`slurm`, `engine.slurm.SlurmOptions`)."""

    device: str = "cpu"
    jobs: int = DEFAULT_JOBS
    gpus_per_run: int = 1
    slurm: Optional[SlurmOptions] = None

    def slots(self) -> List[Slot]:
        return plan_slots(self.device, self.jobs, self.gpus_per_run)

    def side_by_side(self) -> Optional[int]:
        """Runs at a time on this machine; None on Slurm, where the cluster decides."""
        return None if self.slurm is not None else len(self.slots())

    def alone(self) -> "Launch":
        """The same place for a run that has it to itself (every core, or one slot's GPUs)."""
        return replace(self, jobs=1)

    def describe(self) -> str:
        if self.slurm is not None:
            gpus = f", {self.gpus_per_run} GPU(s) per run" if self.device == "cuda" else ""
            return f"on Slurm ({self.slurm.describe()}{gpus}), every run a job"
        slots = self.slots()
        if self.device == "cuda":
            return (f"on CUDA, {self.gpus_per_run} GPU(s) per run, {len(slots)} side by side "
                    f"(GPUs {', '.join('+'.join(slot.gpus) for slot in slots)})")
        return f"on the CPU, {len(slots)} side by side, {slots[0].threads} thread(s) each"


class RunsFailedError(RuntimeError):
    """Some runs failed; the others ran to their end. The message names each with its log."""


def run_in_parallel(tasks: Sequence[Task], launch: Launch = Launch(),
                    progress: Optional[RunProgress] = None) -> List:
    """Run every task where `launch` says, each reporting its start and end to `progress`;
    returns their results in order. A run that fails does not stop the others: once they are all
    done, RunsFailedError names each failed run and its log."""
    if launch.slurm is not None:
        results, failures = run_on_slurm(tasks, launch.slurm, launch.device,
                                         launch.gpus_per_run, progress)
    else:
        results, failures = run_here(tasks, launch, progress)
    if failures:
        raise RunsFailedError(
            f"{len(failures)} of {len(tasks)} runs failed (the others ran):\n"
            + "\n".join(f"  {task.name}: {error}" for task, error in failures))
    return results


def run_here(tasks: Sequence[Task], launch: Launch,
             progress: Optional[RunProgress] = None) -> Tuple[List, List[Tuple[Task, Exception]]]:
    """(the results of the tasks run on this machine, the (task, error) of those that failed).

    Each slot (`Launch.slots`) takes the next task when its run ends. On the CPU the last tasks,
    fewer than the slots, wait for the others and then share all the cores: one run left alone on
    its share would leave the other cores idle (a run alone on two threads takes about two thirds
    of its time on one), and the runs of one experiment take about equally long, so the wait is
    short.
    """
    results: List = [None] * len(tasks)
    failures: List[Tuple[Task, Exception]] = []
    slots = launch.slots()
    batches = [list(range(len(tasks)))]
    if launch.device == "cpu":
        full_rounds = len(tasks) - len(tasks) % len(slots)
        batches = [list(range(full_rounds)), list(range(full_rounds, len(tasks)))]
    for batch in filter(None, batches):
        if launch.device == "cpu" and len(batch) < len(slots):
            slots = plan_slots("cpu", len(batch))
        pending, lock = iter(batch), threading.Lock()

        def work(slot: Slot) -> None:
            while True:
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                try:
                    results[index] = run_task(tasks[index], slot, progress)
                except Exception as error:  # the run failed: the others go on
                    failures.append((tasks[index], error))
                    if progress is not None:
                        progress.fail(tasks[index].name, tasks[index].run_dir, error)

        with ThreadPoolExecutor(max_workers=len(slots)) as pool:
            list(pool.map(work, slots))
    return results, failures


def run_task(task: Task, slot: Slot, progress: Optional[RunProgress] = None) -> Any:
    """`task.call(slot=slot)`, its start and end told to `progress`."""
    if progress is not None:
        progress.start(task.name, task.run_dir)
    started = time.time()
    result = task.call(slot=slot)
    if progress is not None:
        progress.finish(task.name, task.run_dir, time.time() - started)
    return result
