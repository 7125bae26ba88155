"""Which loss helps at which noise level: a grid of losses x noise levels x seeds.

Each run fine-tunes, with `python -m noisy_mask.train_net`, a detector pretrained without masks (trained once per
output folder, on clean images of their own) on a noisy copy of the built-in dataset's training
masks (made by `noisy_mask.noise`; the noise seed is the run's seed), and evaluates on the clean
validation split.

    python -m noisy_mask.robustness --output output/robustness                   # the full grid
    python -m noisy_mask.robustness --output output/robustness-smoke --smoke     # a quick subset
    python -m noisy_mask.robustness --output DIR --losses bce svls --levels clean mid --seeds 0 1 2
    python -m noisy_mask.robustness --output DIR --losses bce bpm gce --levels clean mid --clean-losses bce

An interrupted grid resumes: finished runs (with `eval_results.json`) are not repeated. Writes
`results.json`, `results.md` (mean and standard deviation over seeds, and the share of the AP lost
to noise that each loss recovers versus BCE) and `pr_curves_<level>.png` into the output folder.
"""
import functools
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..model_zoo import get_config_file
from ..utils.atomic import write_json_atomic, write_text_atomic
from ..utils.run_folders import EVAL_RESULTS_FILE
from .levels import NOISE_LEVELS, prepare_data
from .runner import Schedule, pretrain_detector, run_in_parallel, train_and_evaluate
from .stats import markdown, summarize

DEFAULT_LOSSES = ("bce", "dice", "label_smoothing", "svls", "bootstrap_soft", "bce+pairwise_color")
# clean, easy, mid, hard, and mid with clean masks: what a mask loss could win back at mid at most
DEFAULT_LEVELS = NOISE_LEVELS + ("mid_no_outlines",)
# Levels whose training masks are clean: only BCE is trained there.
BCE_ONLY_LEVELS = ("mid_no_outlines",)
# Every run fine-tunes one detector, pretrained without masks on 400 clean images of their own
# (shapes seed 1; the grid's images are seed 0), as models are fine-tuned from a model zoo's
# weights: a from-scratch run of 600 iterations reached 46.7 +- 4.8 mask AP on clean masks
# (3 seeds, docs/robustness.md), a fine-tuned one of 300 iterations about 70.
PRETRAIN = Schedule(num_train=400, num_val=0, max_iter=1500)
PRETRAIN_SEED = 1
FINETUNE_CONFIG = Path(get_config_file("shapes/Shapes-R18-FPN-finetune.yaml"))
# 150 validation images: the evaluation's own sampling noise is part of the seed-to-seed spread.
GRID = Schedule(num_train=200, num_val=150, max_iter=300)
# Checks the whole pipeline, not the losses.
SMOKE = dict(losses=("bce", "bce+pairwise_color"), levels=("clean", "mid"), seeds=(0,),
             schedule=Schedule(num_train=100, num_val=50, max_iter=150),
             pretrain=Schedule(num_train=200, num_val=0, max_iter=300))
def run_grid(output_dir: Path, losses, levels, seeds, schedule: Schedule, jobs: int,
             clean_losses: Optional[Sequence[str]] = None,
             pretrain: Schedule = PRETRAIN) -> List[Dict]:
    """Train and evaluate every (loss, level, seed), `jobs` at a time; one record per run.

    On clean masks only `clean_losses` are trained (all of `losses` if None), at BCE_ONLY_LEVELS
    only bce. The pretrained detector is trained first if a run still needs it.
    """
    runs, datas = [], []
    for seed in seeds:
        for level in levels:
            data = prepare_data(output_dir, level, schedule, seed)
            level_losses = losses if level != "clean" or clean_losses is None else clean_losses
            if level in BCE_ONLY_LEVELS:
                level_losses = ["bce"]
            for loss in level_losses:
                run_dir = output_dir / "runs" / level / f"seed{seed}" / loss.replace("+", "_plus_")
                runs.append(dict(loss=loss, level=level, seed=seed, run_dir=str(run_dir)))
                datas.append(data)
    weights_opts: List[str] = []
    if any(not (Path(run["run_dir"]) / EVAL_RESULTS_FILE).exists() for run in runs):
        weights = pretrain_detector(output_dir, pretrain, PRETRAIN_SEED, FINETUNE_CONFIG,
                                    threads=os.cpu_count())
        weights_opts = ["MODEL.WEIGHTS", str(weights)]
    tasks = [functools.partial(train_and_evaluate, Path(run["run_dir"]), run["loss"], data,
                               schedule, run["seed"], weights_opts, config=FINETUNE_CONFIG)
             for run, data in zip(runs, datas)]
    for run, results in zip(runs, run_in_parallel(tasks, jobs)):
        run["results"] = results
    return runs


def code_version() -> str:
    """The commit of a checkout, or the installed package's version outside one."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    if commit:
        return commit
    try:
        return "noisy-mask " + importlib.metadata.version("noisy-mask")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"




def run_robustness(
    output_dir: Path,
    losses: Sequence[str],
    levels: Sequence[str],
    seeds: Sequence[int],
    schedule: Schedule = GRID,
    jobs: int = 1,
    clean_losses: Optional[Sequence[str]] = None,
    pretrain: Schedule = PRETRAIN,
    command: str = "",
) -> str:
    """Run the grid (bce is always added: every share is measured against it) and write
    results.md, results.json and pr_curves_<level>.png into `output_dir`; returns results.md's
    text. `command` is recorded in its header."""
    from ..viz.plot import plot_pr_curves

    output_dir = Path(output_dir)
    losses = list(losses) if "bce" in losses else ["bce", *losses]
    if clean_losses is not None and "bce" not in clean_losses:
        clean_losses = ["bce", *clean_losses]
    started, version = time.time(), code_version()
    records = run_grid(output_dir, losses, levels, seeds, schedule, jobs, clean_losses, pretrain)
    summary = summarize(records)
    elapsed = time.time() - started
    header = (f"Command: `{command}`  \n"
              f"Commit: {version}; machine: {platform.machine()}, "
              f"{os.cpu_count()} cores; this invocation: {elapsed / 60:.1f} min "
              f"(runs already finished are not repeated); {schedule.max_iter} iterations per run "
              f"from a detector pretrained {pretrain.max_iter} iterations.\n")
    table = header + "\n" + markdown(summary, losses, levels, records)
    write_text_atomic(output_dir / "results.md", table)
    results = {"records": records, "summary": summary, "schedule": vars(schedule),
               "pretrain": vars(pretrain)}
    write_json_atomic(output_dir / "results.json", results)
    for level in levels:
        runs = [r for r in records if r["level"] == level and r["seed"] == seeds[0]]
        plot_pr_curves([r["run_dir"] for r in runs], output_dir / f"pr_curves_{level}.png",
                       labels=[r["loss"] for r in runs])
    return table
