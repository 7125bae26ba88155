"""The built-in smoke grid through Slurm against the same grid through the local executor, on this
machine (goal: Slurm <= 1.2x local):

    bash scripts/slurm_cluster.sh start
    python benchmarks/bench_slurm.py --output output/bench-slurm [--rounds 1] [-- GRID FLAGS]

Each round runs `noisy-mask robustness --smoke` from nothing into a fresh folder, once through
the local executor (2 runs side by side, the cores split) and once with every run a Slurm job of
1 CPU (the node has this machine's CPUs, so also 2 at a time), alternating which goes first. The
detector's pretraining and the cost probe are part of both. Prints each time and the ratio.
"""
import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

LOCAL = ["--device", "cpu", "--jobs", "2"]
SLURM = ["--device", "cpu", "--executor", "slurm", "--slurm-cpus", "1"]


def grid_seconds(folder: Path, where, grid_flags) -> float:
    shutil.rmtree(folder, ignore_errors=True)
    command = [sys.executable, "-m", "noisy_mask", "robustness", "--output", str(folder),
               "--smoke", *grid_flags, *where]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.time() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("grid", nargs=argparse.REMAINDER, help="more flags of the grid")
    args = parser.parse_args()
    grid_flags = [flag for flag in args.grid if flag != "--"]
    times = {"local": [], "slurm": []}
    for round_ in range(args.rounds):
        order = ["local", "slurm"] if round_ % 2 == 0 else ["slurm", "local"]
        for name in order:
            seconds = grid_seconds(args.output / f"{name}{round_}",
                                   LOCAL if name == "local" else SLURM, grid_flags)
            times[name].append(seconds)
            print(f"round {round_}: {name} {seconds:.1f} s", flush=True)
    local, slurm = (sum(times[name]) / len(times[name]) for name in ("local", "slurm"))
    print(f"smoke grid, mean of {args.rounds} round(s): local {local:.1f} s, slurm "
          f"{slurm:.1f} s, slurm / local {slurm / local:.2f} (goal <= 1.2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
