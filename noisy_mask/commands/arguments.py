"""The options several commands share: where their training runs run (`engine.launcher.Launch`).

    --device auto|cpu|cuda     auto: CUDA when torch sees a GPU (with --executor slurm: when a
                               node of the cluster offers one)
    --jobs N                   on the CPU: runs side by side, the cores shared between them
    --gpus-per-run G           on CUDA: each run's GPUs; runs side by side = visible GPUs // G
    --executor local|slurm     slurm: every run a job of the cluster (submitit), with --slurm-*
"""

import argparse

from ..engine.launcher import DEFAULT_JOBS, Launch
from ..engine.placement import DEVICES, resolve_device
from ..engine.slurm import SlurmOptions, cluster_has_gpus

SLURM_FLAGS = {  # flag: SlurmOptions field
    "--slurm-partition": "partition",
    "--slurm-time": "time_min",
    "--slurm-cpus": "cpus_per_run",
    "--slurm-mem-gb": "mem_gb",
    "--slurm-account": "account",
    "--slurm-qos": "qos",
    "--slurm-constraint": "constraint",
    "--slurm-option": "sbatch",
}


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group(
        "where the runs run", "on this machine's CPU or GPUs, or each run a job of a Slurm "
        "cluster; a run that fails is named with its log, and the others go on")
    where.add_argument("--device", choices=DEVICES, default="auto",
                       help="auto (default): CUDA when torch sees a GPU, else the CPU; with "
                            "--executor slurm, CUDA when a node of the cluster offers GPUs")
    where.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                       help=f"on the CPU: runs side by side, the cores shared between them "
                            f"(default {DEFAULT_JOBS})")
    where.add_argument("--gpus-per-run", type=int, default=1,
                       help="on CUDA: the GPUs of each run (train_net's --num-gpus); runs side "
                            "by side = the visible GPUs // this (default 1)")
    where.add_argument("--executor", choices=("local", "slurm"), default="local",
                       help="local (default): this machine; slurm: every run one job, through "
                            "submitit; the command waits for them, and started again on the same "
                            "output resubmits only the unfinished runs")
    defaults = SlurmOptions()
    slurm = parser.add_argument_group("with --executor slurm")
    slurm.add_argument("--slurm-partition", default=None)
    slurm.add_argument("--slurm-time", type=int, default=defaults.time_min, metavar="MINUTES",
                       help="each run's time limit; a run that reaches it is requeued and "
                            f"resumes from its last checkpoint (default {defaults.time_min})")
    slurm.add_argument("--slurm-cpus", type=int, default=defaults.cpus_per_run,
                       help=f"CPUs per run (default {defaults.cpus_per_run})")
    slurm.add_argument("--slurm-mem-gb", type=int, default=None, help="memory per run")
    slurm.add_argument("--slurm-account", default=None)
    slurm.add_argument("--slurm-qos", default=None)
    slurm.add_argument("--slurm-constraint", default=None)
    slurm.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                       help="any other sbatch option, without its dashes (repeatable), e.g. "
                            "exclude=node7")


def launch_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Launch:
    """The Launch the flags ask for; a usage error for flags that do not go together or a device
    or placement this machine cannot give."""
    defaults = SlurmOptions()
    given = [flag for flag, field in SLURM_FLAGS.items()
             if getattr(args, field_of(flag)) not in (getattr(defaults, field), None, [])]
    if args.executor != "slurm" and given:
        parser.error(f"{given[0]} goes with --executor slurm")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    try:
        if args.executor == "slurm":
            slurm = SlurmOptions(
                partition=args.slurm_partition, time_min=args.slurm_time,
                cpus_per_run=args.slurm_cpus, mem_gb=args.slurm_mem_gb,
                account=args.slurm_account, qos=args.slurm_qos,
                constraint=args.slurm_constraint, sbatch=tuple(args.slurm_option),
            ).check()  # fmt: skip
            device = args.device if args.device != "auto" else (
                "cuda" if cluster_has_gpus() else "cpu")
            return Launch(device, args.jobs, args.gpus_per_run, slurm)
        launch = Launch(resolve_device(args.device), args.jobs, args.gpus_per_run)
        launch.slots()  # a run needs no more GPUs than there are
        return launch
    except ValueError as e:
        parser.error(str(e))


def field_of(flag: str) -> str:
    """The argparse attribute of a flag: --slurm-mem-gb -> slurm_mem_gb."""
    return flag.lstrip("-").replace("-", "_")
