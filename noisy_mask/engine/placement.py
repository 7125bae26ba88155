"""Where the training runs of one command run on this machine: the device (`resolve_device`) and
one slot per run side by side (`plan_slots`): its CPU threads and, on CUDA, its own GPUs.

On the CPU the cores are split between `jobs` runs, as before. On CUDA, `gpus_per_run` GPUs make
one run: the GPUs this process sees (`visible_gpus`: CUDA_VISIBLE_DEVICES, else all of them) are
cut into `len(gpus) // gpus_per_run` slots, each run's subprocess sees only its slot's GPUs
(CUDA_VISIBLE_DEVICES), and a run of several GPUs is train_net's own `--num-gpus` with a free
rendezvous port of its own (`--dist-url auto`, detectron2's launcher picks it).
"""

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """"cuda" or "cpu": `auto` is CUDA when torch sees a GPU; `cuda` without one is an error."""
    if device not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda, but torch sees no GPU here (torch.cuda.is_available() "
                         "is False): give --device cpu, or run where the GPUs are")
    return device


def visible_gpus() -> Tuple[str, ...]:
    """The GPUs this process may hand to its runs, as CUDA_VISIBLE_DEVICES names them (so that a
    run placed on the second of "2,3" sees GPU 3), else 0 .. device_count - 1."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return tuple(gpu.strip() for gpu in given.split(",") if gpu.strip())
    return tuple(str(i) for i in range(torch.cuda.device_count()))


@dataclass(frozen=True)
class Slot:
    """One run's share of the machine: `threads` CPU threads and, on CUDA, its `gpus`."""

    threads: int
    gpus: Tuple[str, ...] = ()

    @property
    def device(self) -> str:
        return "cuda" if self.gpus else "cpu"

    def config_opts(self, config: os.PathLike) -> List[str]:
        """The override that puts the run on its device, for a YAML or a lazy (.py) config."""
        if str(config).endswith(".py"):
            return [f"train.device={self.device}"]
        return ["MODEL.DEVICE", self.device]

    def env(self) -> Dict[str, str]:
        """The run's environment on top of this process's."""
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)
        return env

    def train_net_args(self) -> List[str]:
        """train_net's own flags for the run: one process per GPU, on a free port of its own."""
        if len(self.gpus) > 1:
            return ["--num-gpus", str(len(self.gpus)), "--dist-url", "auto"]
        return []


def plan_slots(device: str, jobs: int, gpus_per_run: int = 1,
               gpus: Optional[Sequence[str]] = None, cores: Optional[int] = None) -> List[Slot]:
    """The slots of runs side by side: on the CPU `jobs` of them, the cores split between them;
    on CUDA one per `gpus_per_run` of the `gpus` (default: `visible_gpus()`), the cores split
    between those. ValueError when a run needs more GPUs than there are."""
    cores = cores or os.cpu_count() or 1
    if device == "cpu":
        jobs = max(1, jobs)
        return [Slot(max(1, cores // jobs)) for _ in range(jobs)]
    gpus = tuple(visible_gpus() if gpus is None else gpus)
    if gpus_per_run < 1:
        raise ValueError(f"--gpus-per-run must be at least 1, got {gpus_per_run}")
    count = len(gpus) // gpus_per_run
    if count == 0:
        raise ValueError(f"--gpus-per-run {gpus_per_run}, but {len(gpus)} GPU(s) are visible "
                         f"({', '.join(gpus) or 'none'})")
    threads = max(1, cores // count)
    return [Slot(threads, tuple(gpus[i * gpus_per_run:(i + 1) * gpus_per_run]))
            for i in range(count)]
