"""Which loss helps at which noise level: a grid of losses x noise levels x seeds.

Each run fine-tunes, with `train_net.py`, a detector pretrained without masks (trained once per
output folder, on clean images of their own) on a noisy copy of the built-in dataset's training
masks (made by `noisy_mask.noise`; the noise seed is the run's seed), and evaluates on the clean
validation split.

    python benchmarks/robustness.py --output output/robustness                   # the full grid
    python benchmarks/robustness.py --output output/robustness-smoke --smoke     # a quick subset
    python benchmarks/robustness.py --output DIR --losses bce svls --levels clean mid --seeds 0 1 2
    python benchmarks/robustness.py --output DIR --losses bce bpm gce --levels clean mid --clean-losses bce

An interrupted grid resumes: finished runs (with `eval_results.json`) are not repeated. Writes
`results.json`, `results.md` (mean and standard deviation over seeds, and the share of the AP lost
to noise that each loss recovers versus BCE) and `pr_curves_<level>.png` into the output folder.
"""
import argparse
import importlib.metadata
import functools
import os
import math
import platform
import subprocess
import sys
import time
from pathlib import Path
from statistics import mean, stdev
from typing import Dict, List, Optional, Sequence

from ..model_zoo import get_config_file
from ..utils.atomic import write_json_atomic, write_text_atomic
from ..utils.run_folders import EVAL_RESULTS_FILE
from .runner import (
    DEFAULT_JOBS,
    LEVELS,
    NOISE_LEVELS,
    Schedule,
    prepare_data,
    pretrain_detector,
    run_in_parallel,
    train_and_evaluate,
)

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
METRICS = (("segm", "AP"), ("segm", "AP75"), ("boundary", "AP"))
# The goal: recover this share of the boundary AP that BCE loses to noise ...
GOAL_SHARE = 0.30
# ... by more than this many seed-to-seed standard deviations.
GOAL_STDS = 2.0


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


def summarize(records: Sequence[Dict]) -> Dict[str, Dict[str, Dict[str, Dict[str, float]]]]:
    """{level: {loss: {"segm/AP": {"mean", "std", "n"}, ...}}} over seeds."""
    summary: Dict = {}
    for record in records:
        cell = summary.setdefault(record["level"], {}).setdefault(record["loss"], {})
        for task, metric in METRICS:
            value = record["results"].get(task, {}).get(metric)
            if value is not None and math.isfinite(value):
                cell.setdefault(f"{task}/{metric}", []).append(value)
    for level in summary.values():
        for loss, cell in level.items():
            for key, values in cell.items():
                cell[key] = {"mean": mean(values), "n": len(values),
                             "std": stdev(values) if len(values) > 1 else float("nan")}
    return summary


def recovered_share(summary, level: str, loss: str, key: str) -> Optional[float]:
    """(AP_loss - AP_bce_noisy) / (AP_bce_clean - AP_bce_noisy) at `level`, or None if unknown."""
    try:
        bce_clean = summary["clean"]["bce"][key]["mean"]
        bce_noisy = summary[level]["bce"][key]["mean"]
        value = summary[level][loss][key]["mean"]
    except KeyError:
        return None
    lost = bce_clean - bce_noisy
    return None if lost <= 0 else (value - bce_noisy) / lost


def mask_loss_ceiling(summary, key: str = "boundary/AP") -> Optional[float]:
    """The share of what BCE loses at mid that clean masks win back, the rest of mid kept:

        (AP_bce(mid_no_outlines) - AP_bce(mid)) / (AP_bce(clean) - AP_bce(mid)).

    A mask loss can at best undo the outline noise, so this bounds the share any mask loss can
    recover at mid. None until the three BCE cells are there (or if BCE loses nothing at mid).
    """
    try:
        clean, mid, no_outlines = (summary[level]["bce"][key]["mean"]
                                   for level in ("clean", "mid", "mid_no_outlines"))
    except KeyError:
        return None
    lost = clean - mid
    return None if lost <= 0 else (no_outlines - mid) / lost


def beats_bce(summary, level: str, loss: str, key: str = "boundary/AP") -> Optional[bool]:
    """Whether `loss` recovers GOAL_SHARE of what BCE loses at `level`, beyond seed noise.

    True when the recovered share is at least GOAL_SHARE and the gain over BCE at the same level,
    AP_loss - AP_bce_noisy, exceeds GOAL_STDS x the pooled seed-to-seed standard deviation of the
    two cells, sqrt((std_loss^2 + std_bce^2) / 2). None when that cannot be told (a cell missing,
    fewer than 2 seeds, or BCE losing nothing to noise).
    """
    share = recovered_share(summary, level, loss, key)
    if share is None:
        return None
    own, bce = summary[level][loss][key], summary[level]["bce"][key]
    if own["n"] < 2 or bce["n"] < 2:
        return None
    pooled_std = math.sqrt((own["std"] ** 2 + bce["std"] ** 2) / 2)
    return share >= GOAL_SHARE and own["mean"] - bce["mean"] > GOAL_STDS * pooled_std


def paired_gains(records: Sequence[Dict], level: str, loss: str, key: str = "boundary/AP") -> List[float]:
    """AP_loss - AP_bce at `level` per seed run by both: the seed's noise and training draw cancel."""
    task, metric = key.split("/")
    by_seed: Dict = {}
    for r in records:
        value = r["results"].get(task, {}).get(metric)
        if r["level"] == level and r["loss"] in (loss, "bce") and value is not None and math.isfinite(value):
            by_seed.setdefault(r["seed"], {})[r["loss"]] = value
    return [v[loss] - v["bce"] for _, v in sorted(by_seed.items()) if loss in v and "bce" in v]


def markdown(summary, losses, levels, records: Sequence[Dict] = ()) -> str:
    lines = []
    for level in levels:
        if level not in summary:
            continue
        lines += [f"### noise: {level}", "",
                  "| loss | mask AP | mask AP75 | boundary AP | boundary AP vs BCE (paired by seed) | recovered "
                  "(mask AP) | recovered (boundary AP) | goal | seeds |",
                  "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
        for loss in losses:
            cell = summary[level].get(loss)
            if not cell:
                continue
            cells = [_mean_std(cell.get(f"{task}/{metric}")) for task, metric in METRICS]
            gains = paired_gains(records, level, loss) if loss != "bce" else []
            delta = "" if not gains else (f"{mean(gains):+.1f}" if len(gains) < 2
                                          else f"{mean(gains):+.1f} ± {stdev(gains):.1f}")
            shares = [recovered_share(summary, level, loss, key) if level != "clean" else None
                      for key in ("segm/AP", "boundary/AP")]
            seeds = max((v["n"] for v in cell.values()), default=0)
            verdict = beats_bce(summary, level, loss) if level != "clean" and loss != "bce" else None
            goal = {True: "met", False: "not met", None: ""}[verdict]
            lines.append(f"| {loss} | " + " | ".join(cells) + f" | {delta} | "
                         + " | ".join("" if s is None else f"{100 * s:.0f}%" for s in shares)
                         + f" | {goal} | {seeds} |")
        lines.append("")
    ceilings = ["n/a" if c is None else f"{100 * c:.0f}%"
                for c in (mask_loss_ceiling(summary, key) for key in ("segm/AP", "boundary/AP"))]
    if ceilings[1] != "n/a":
        lines += [f"At most a mask loss can win back: BCE trained with clean masks but the rest of "
                  f"mid (its boxes, deletions and flips; level mid_no_outlines) recovers "
                  f"{ceilings[0]} of the mask AP and {ceilings[1]} of the boundary AP that BCE "
                  "loses at mid.", ""]
    lines.append(f"goal: recovers at least {100 * GOAL_SHARE:.0f}% of the boundary AP that BCE "
                 f"loses to noise, by more than {GOAL_STDS:g} x the pooled seed-to-seed standard "
                 "deviation of the loss and BCE at that level (needs 2 or more seeds).")
    if records:
        lines += ["", *per_seed_table(records, losses, levels)]
    return "\n".join(lines)


def per_seed_table(records: Sequence[Dict], losses, levels) -> List[str]:
    """One row per (level, loss): box AP / mask AP / boundary AP of each seed."""
    seeds = sorted({r["seed"] for r in records})
    runs = {(r["level"], r["loss"], r["seed"]): r["results"] for r in records}
    lines = ["Per seed, box AP / mask AP / boundary AP:", "",
             "| noise | loss | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|" + "---|" * len(seeds)]
    for level in levels:
        for loss in losses:
            if not any((level, loss, s) in runs for s in seeds):
                continue
            cells = [" / ".join(_ap(runs[level, loss, s], task) for task in ("bbox", "segm", "boundary"))
                     if (level, loss, s) in runs else "" for s in seeds]
            lines.append(f"| {level} | {loss} | " + " | ".join(cells) + " |")
    return lines


def _ap(results: Dict, task: str) -> str:
    value = results.get(task, {}).get("AP")
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.1f}"


def _mean_std(value) -> str:
    if not value:
        return "n/a"
    if value["n"] < 2:
        return f"{value['mean']:.1f}"
    return f"{value['mean']:.1f} ± {value['std']:.1f}"


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--losses", nargs="+", default=list(DEFAULT_LOSSES))
    parser.add_argument("--levels", nargs="+", default=list(DEFAULT_LEVELS), choices=LEVELS,
                        help="default: %(default)s; mid_outlines and mid_no_outlines split mid "
                             "into its mask part and the rest (noisy_mask/experiment.py); at "
                             f"{', '.join(BCE_ONLY_LEVELS)} only bce is trained")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--clean-losses", nargs="+", default=None,
                        help="losses trained on clean masks (default: all of --losses); the "
                             "recovered share needs only bce there")
    parser.add_argument("--max-iter", type=int, default=None,
                        help=f"iterations per run (default {GRID.max_iter}; "
                             f"{SMOKE['schedule'].max_iter} with --smoke)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="runs side by side")
    parser.add_argument("--smoke", action="store_true",
                        help=f"only {SMOKE['losses']} at {SMOKE['levels']}, seed 0")
    args = parser.parse_args(argv)
    if args.smoke:
        args.losses, args.levels, args.seeds = SMOKE["losses"], SMOKE["levels"], SMOKE["seeds"]
    if "bce" not in args.losses:
        args.losses = ["bce", *args.losses]  # the reference every share is measured against
    base = SMOKE["schedule"] if args.smoke else GRID
    schedule = Schedule(base.num_train, base.num_val, args.max_iter or base.max_iter)
    pretrain = SMOKE["pretrain"] if args.smoke else PRETRAIN
    started, commit = time.time(), code_version()
    if args.clean_losses is not None and "bce" not in args.clean_losses:
        args.clean_losses = ["bce", *args.clean_losses]
    records = run_grid(args.output, args.losses, args.levels, args.seeds, schedule, args.jobs,
                       args.clean_losses, pretrain)
    summary = summarize(records)
    elapsed = time.time() - started
    header = (f"Command: `python -m noisy_mask.robustness {' '.join(argv or sys.argv[1:])}`  \n"
              f"Commit: {commit}; machine: {platform.machine()}, "
              f"{os.cpu_count()} cores; this invocation: {elapsed / 60:.1f} min "
              f"(runs already finished are not repeated); {schedule.max_iter} iterations per run "
              f"from a detector pretrained {pretrain.max_iter} iterations.\n")
    table = header + "\n" + markdown(summary, args.losses, args.levels, records)
    write_text_atomic(args.output / "results.md", table)
    results = {"records": records, "summary": summary, "schedule": vars(schedule),
               "pretrain": vars(pretrain)}
    write_json_atomic(args.output / "results.json", results)
    from ..viz.plot import plot_pr_curves

    for level in args.levels:
        runs = [r for r in records if r["level"] == level and r["seed"] == args.seeds[0]]
        plot_pr_curves([r["run_dir"] for r in runs], args.output / f"pr_curves_{level}.png",
                       labels=[r["loss"] for r in runs])
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
