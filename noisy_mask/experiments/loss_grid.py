"""Which loss helps at which noise level: a grid of losses x noise levels x seeds.

On the built-in dataset every run fine-tunes a detector pretrained without masks (trained once per
output folder, on clean images of its own) on a noisy copy of the training masks (made by
`noisy_mask.noise`; the noise seed is the run's seed) and is evaluated on the clean validation
split. On a user's dataset the reference level is the training annotations as they are (`as_is`),
the noise levels are the presets applied on top of them, and the runs start from given weights or
from scratch (see `StartingPoint`).

An interrupted grid resumes: finished runs (with `eval_results.json`) are not repeated. Writes
`results.json`, `results.md` (mean and standard deviation over seeds, the share of the AP lost to
noise that each loss recovers versus BCE, and a verdict per level) and `pr_curves_<level>.png`
into the output folder. The command is `python -m noisy_mask.robustness`.
"""
import functools
import importlib.metadata
import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..model_zoo import get_config_file
from ..utils.atomic import write_json_atomic, write_text_atomic
from ..utils.run_folders import EVAL_RESULTS_FILE, METRICS_FILE
from .levels import AS_IS, NOISE_LEVELS, REFERENCE_LEVELS, REFINED, Splits, builtin_splits
from .levels import level_data, refined_json
from .refinement import RefineArm, check_refined_copies, refine_level, refinement_records
from .refinement import refinement_table
from ..engine.launcher import Schedule, evaluated_elsewhere, pretrain_detector, run_in_parallel
from ..engine.launcher import train_and_evaluate
from .stats import best_loss, markdown, refinement_goals, summarize, verdict
from .split_half import run_half_aps, spread_lines, spread_sources

DEFAULT_LOSSES = ("bce", "dice", "label_smoothing", "svls", "bootstrap_soft", "bce+pairwise_color")
# clean, easy, mid, hard, and mid with clean masks: what a mask loss could win back at mid at most
DEFAULT_LEVELS = NOISE_LEVELS + ("mid_no_outlines",)
# On a user's data: the annotations as they are and the mid preset on top, the losses that did
# best on the built-in grid and the two of the original experiment (30 runs with 3 seeds).
USER_LOSSES = ("bce", "dice", "label_smoothing", "sce", "bce+pairwise_color")
USER_LEVELS = (AS_IS, "mid")
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
# From scratch on a user's data: 600 iterations (300 from given weights).
USER_MAX_ITER = {"scratch": 600, "weights": 300}
# Checks the whole pipeline, not the losses.
SMOKE = dict(losses=("bce", "bce+pairwise_color"), levels=("clean", "mid"), seeds=(0,),
             schedule=Schedule(num_train=100, num_val=50, max_iter=150),
             pretrain=Schedule(num_train=200, num_val=0, max_iter=300))
# Iterations of the run that measures the cost of one run before a grid starts.
COST_PROBE_ITERS = 20


@dataclass(frozen=True)
class StartingPoint:
    """Where every run of a grid starts: `weights` (a detectron2 checkpoint; heads whose shapes
    differ are re-initialized, as detectron2 does), a detector pretrained without masks on
    built-in images of its own with the `pretrain` schedule (made when a run first needs it), or,
    with neither, from scratch."""

    weights: str = ""
    pretrain: Optional[Schedule] = None
    variant: str = "plain"  # of the built-in images the detector is pretrained on

    def describe(self) -> str:
        if self.weights:
            return f"fine-tuned from {self.weights}"
        if self.pretrain is not None:
            return (f"fine-tuned from a detector pretrained {self.pretrain.max_iter} iterations"
                    + (f" on {self.variant} shapes" if self.variant != "plain" else ""))
        return "trained from scratch"

    def weights_opts(self, output_dir: Path, config: Path) -> List[str]:
        """The MODEL.WEIGHTS override of every run (pretraining the detector if needed)."""
        if self.pretrain is not None:
            weights = pretrain_detector(output_dir, self.pretrain, PRETRAIN_SEED, config,
                                        threads=os.cpu_count(), variant=self.variant)
            return ["MODEL.WEIGHTS", str(weights)]
        return ["MODEL.WEIGHTS", self.weights]


def plan_runs(output_dir: Path, splits: Splits, losses, levels, seeds,
              clean_losses: Optional[Sequence[str]] = None) -> List[Dict]:
    """One dict per (seed, level, loss): loss, level, seed, run_dir and its data (noisy copies
    written as needed). At the reference level only `clean_losses` are trained (all of `losses`
    if None), at BCE_ONLY_LEVELS only bce."""
    runs = []
    for seed in seeds:
        for level in levels:
            data = level_data(output_dir, splits, level, seed)
            level_losses = losses
            if level == splits.reference and clean_losses is not None:
                level_losses = clean_losses
            if level in BCE_ONLY_LEVELS:
                level_losses = ["bce"]
            for loss in level_losses:
                run_dir = output_dir / "runs" / level / f"seed{seed}" / loss.replace("+", "_plus_")
                runs.append(dict(loss=loss, level=level, seed=seed, run_dir=str(run_dir),
                                 data=data))
    return runs


def run_grid(output_dir: Path, losses, levels, seeds, schedule: Schedule, jobs: int,
             clean_losses: Optional[Sequence[str]] = None,
             pretrain: Schedule = PRETRAIN, splits: Optional[Splits] = None,
             start: Optional[StartingPoint] = None, config: Path = FINETUNE_CONFIG,
             overrides: Sequence[str] = ()) -> List[Dict]:
    """Train and evaluate every (loss, level, seed), `jobs` at a time; one record per run.

    `splits` default to the built-in dataset and `start` to the detector pretrained with
    `pretrain`, made first if a run still needs it. `overrides` (KEY VALUE ...) go to every run.
    """
    output_dir = Path(output_dir)
    splits = splits or builtin_splits(output_dir, schedule)
    start = start or StartingPoint(pretrain=pretrain)
    runs = plan_runs(output_dir, splits, losses, levels, seeds, clean_losses)
    return train_runs(output_dir, runs, schedule, jobs, start, config, overrides)


def train_runs(output_dir: Path, runs: List[Dict], schedule: Schedule, jobs: int,
               start: StartingPoint, config: Path, overrides: Sequence[str] = ()) -> List[Dict]:
    """Train and evaluate the planned `runs` not finished yet, `jobs` at a time, each from
    `start` with `overrides`; a run's own "options" (KEY VALUE ...) come after them and its own
    "schedule" replaces `schedule`. Adds each run's "results"; returns `runs`."""
    trained_yet = [(Path(run["run_dir"]) / EVAL_RESULTS_FILE).exists() for run in runs]
    opts: List[str] = [] if all(trained_yet) else start.weights_opts(output_dir, config)
    opts += list(overrides)
    # Finished runs only read their results; the others (and the finished ones to evaluate on
    # a changed validation file) share the cores.
    finished = [done and not evaluated_elsewhere(Path(run["run_dir"]), run["data"]["val_json"])
                for run, done in zip(runs, trained_yet)]
    tasks = [functools.partial(train_and_evaluate, Path(run["run_dir"]), run["loss"],
                               run.pop("data"), run.pop("schedule", schedule), run["seed"],
                               [*opts, *run.get("options", ())], config=config)
             for run in runs]
    trained = iter(run_in_parallel([t for t, done in zip(tasks, finished) if not done], jobs))
    for run, task, done in zip(runs, tasks, finished):
        run["results"] = task() if done else next(trained)
    return runs


def measure_run_cost(output_dir: Path, splits: Splits, schedule: Schedule, jobs: int,
                     start: StartingPoint, config: Path, overrides: Sequence[str] = ()) -> float:
    """Minutes one run of `schedule` takes here, from a run of COST_PROBE_ITERS iterations of bce
    on the reference annotations (with its evaluation, at the threads a run of `jobs` side by side
    gets), extrapolated by its measured time per iteration. Kept in output_dir/cost.json."""
    cost_file = Path(output_dir) / "cost.json"
    if cost_file.exists():
        return json.loads(cost_file.read_text())["minutes_per_run"]
    probe_iters = min(COST_PROBE_ITERS, schedule.max_iter)
    probe = Schedule(schedule.num_train, schedule.num_val, probe_iters)
    run_dir = Path(output_dir) / "cost_probe"
    data = level_data(output_dir, splits, splits.reference, 0)
    opts = [*start.weights_opts(output_dir, config), *overrides]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    started = time.time()
    train_and_evaluate(run_dir, "bce", data, probe, 0, opts, threads=threads, config=config)
    probe_seconds = time.time() - started
    rows = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
    per_iter = [row["time"] for row in rows if "time" in row]
    seconds_per_iter = per_iter[-1] if per_iter else probe_seconds / probe_iters
    minutes = (probe_seconds + seconds_per_iter * (schedule.max_iter - probe_iters)) / 60
    write_json_atomic(cost_file, dict(minutes_per_run=minutes, probe_seconds=probe_seconds,
                                      seconds_per_iter=seconds_per_iter, threads=threads))
    return minutes


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
    splits: Optional[Splits] = None,
    start: Optional[StartingPoint] = None,
    config: Path = FINETUNE_CONFIG,
    overrides: Sequence[str] = (),
    refine: Optional[RefineArm] = None,
    refine_losses: Optional[Sequence[str]] = None,
) -> str:
    """Run the grid (bce is always added: every share is measured against it), print the measured
    cost first, and write results.md, results.json and pr_curves_<level>.png into `output_dir`;
    returns results.md's text. `command` is recorded in its header.

    With `refine`, each noise level is also refined per seed (`experiments.refinement`) and
    `refine_losses` are trained on the refined annotations (default: bce and the level's best
    loss by the grid), as the level `<level>_refined`."""
    from ..viz.plot import plot_pr_curves

    output_dir = Path(output_dir)
    splits = splits or builtin_splits(output_dir, schedule)
    start = start or StartingPoint(pretrain=pretrain)
    losses = list(losses) if "bce" in losses else ["bce", *losses]
    if clean_losses is not None and "bce" not in clean_losses:
        clean_losses = ["bce", *clean_losses]
    started, version = time.time(), code_version()
    runs = plan_runs(output_dir, splits, losses, levels, seeds, clean_losses)
    todo = sum(not (Path(r["run_dir"]) / EVAL_RESULTS_FILE).exists() for r in runs)
    again = sum((Path(r["run_dir"]) / EVAL_RESULTS_FILE).exists()
                and evaluated_elsewhere(Path(r["run_dir"]), splits.val_json) for r in runs)
    if again:
        print(f"{again} finished runs to evaluate again: {splits.val_json} has changed since "
              "they were evaluated", flush=True)
    if refine is not None:  # per level and seed not refined yet: its folds, then two losses
        check_refined_copies(output_dir, refinable(levels), seeds, refine)
        todo += sum(refine.folds + (len(refine_losses) if refine_losses else 2)
                    for level in refinable(levels) for seed in seeds
                    if not refined_json(output_dir, level, seed).exists())
    if todo:
        minutes = measure_run_cost(output_dir, splits, schedule, jobs, start, config, overrides)
        print(f"{len(runs)} runs ({todo} to train), {minutes:.1f} min per run measured here, "
              f"{jobs} side by side: about {minutes * todo / jobs:.1f} min", flush=True)
    records = run_grid(output_dir, losses, levels, seeds, schedule, jobs, clean_losses, pretrain,
                       splits, start, config, overrides)
    refined_levels: List[str] = []
    if refine is not None:
        records += refine_and_train(output_dir, splits, levels, seeds, schedule, jobs, refine,
                                    refine_losses, records, losses, start, config, overrides)
        refined_levels = list(dict.fromkeys(r["level"] for r in records
                                            if r["level"].endswith(REFINED)))
    summary = summarize(records)
    val_gt = json.loads(Path(splits.val_json).read_text())  # read once for every run's halves
    for record in records:
        record["halves"] = run_half_aps(Path(record["run_dir"]), Path(splits.val_json), val_gt)
    spread = spread_lines(spread_sources(records), len(val_gt["images"]))
    elapsed = time.time() - started
    header = (f"Command: `{command}`  \n"
              f"Commit: {version}; machine: {platform.machine()}, "
              f"{os.cpu_count()} cores; this invocation: {elapsed / 60:.1f} min "
              f"(runs already finished are not repeated); {schedule.max_iter} iterations per run, "
              f"{start.describe()}; training annotations {splits.train_json}, evaluation on "
              f"{splits.val_json}.\n")
    advice = verdict(summary, records, losses, levels, splits.reference) or [
        "- only bce was trained: give --losses to compare others with it"]
    all_losses = list(dict.fromkeys([*losses, *(r["loss"] for r in records)]))
    table = (header + "\nVerdict (boundary AP):\n\n" + "\n".join(advice) + "\n\n"
             + markdown(summary, all_losses, [*levels, *refined_levels], records,
                        splits.reference)
             + "\n\n" + "\n".join(spread))
    results = {"records": records, "summary": summary, "verdict": advice,
               "schedule": asdict(schedule), "start": asdict(start) | {"describe": start.describe()},
               "reference": splits.reference}
    if refine is not None:
        refinements = refinement_records(output_dir, refinable(levels), seeds)
        table += ("\n\n## Refinement\n\nEach noise level's training annotations "
                  f"{refine.describe()}, then trained on (level `<level>{REFINED}`). Against the "
                  "reference annotations, mean over seeds:\n\n"
                  + "\n".join(refinement_table(refinements)) + "\n\n"
                  + "\n".join(refinement_goals(summary, records, refined_levels, all_losses,
                                                splits.reference)) + "\n")
        results["refinement"] = {"arm": asdict(refine), "describe": refine.describe(),
                                 "records": refinements}
    write_text_atomic(output_dir / "results.md", table)
    write_json_atomic(output_dir / "results.json", results)
    for level in [*levels, *refined_levels]:
        level_runs = [r for r in records if r["level"] == level and r["seed"] == seeds[0]]
        plot_pr_curves([r["run_dir"] for r in level_runs], output_dir / f"pr_curves_{level}.png",
                       labels=[r["loss"] for r in level_runs])
    return table


def refinable(levels: Sequence[str]) -> List[str]:
    """The levels whose training annotations are noisy: not the reference, nor mid_no_outlines."""
    return [level for level in levels
            if level not in REFERENCE_LEVELS and level not in BCE_ONLY_LEVELS]


def refine_and_train(output_dir: Path, splits: Splits, levels, seeds, schedule: Schedule,
                     jobs: int, arm: RefineArm, refine_losses: Optional[Sequence[str]],
                     records: Sequence[Dict], losses, start: StartingPoint, config: Path,
                     overrides: Sequence[str]) -> List[Dict]:
    """Refine every noise level of `levels` per seed (the audits' folds `jobs` at a time), then
    train `refine_losses` on the refined annotations (default: bce and the level's best loss by
    `records`); one record per run, at level `<level>_refined`."""
    summary = summarize(records)
    opts = [*start.weights_opts(output_dir, config), *overrides]
    refined_records: List[Dict] = []
    for level in refinable(levels):
        level_losses = list(refine_losses) if refine_losses else [
            "bce", *filter(None, [best_loss(summary, records, losses, level)])]
        for seed in seeds:
            refine_level(output_dir, splits, level, seed, arm, schedule, config, opts, jobs)
        refined_records += run_grid(output_dir, level_losses, [level + REFINED], seeds, schedule,
                                    jobs, splits=splits, start=start, config=config,
                                    overrides=overrides)
    return refined_records
