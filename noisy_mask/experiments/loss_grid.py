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
into the output folder. The grid's options are `experiments.options.Grid`; the command is
`noisy-mask robustness`.
"""
import functools
import importlib.metadata
import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..engine.launcher import Schedule, Task, evaluated_elsewhere, run_in_parallel, run_task
from ..engine.launcher import train_and_evaluate
from ..engine.progress import RunProgress
from ..utils.atomic import write_json_atomic, write_text_atomic
from ..utils.run_folders import EVAL_RESULTS_FILE, METRICS_FILE
from ..viz.curves import plot_pr_curves
from .levels import REFERENCE_LEVELS, REFINED, level_data, refined_json
from .options import BCE_ONLY_LEVELS, Grid
from .refinement import check_refined_copies, refine_level, refinement_records, refinement_table
from .stats import best_loss, markdown, refinement_goals, summarize, verdict
from .split_half import run_half_aps, spread_lines, spread_sources

# Iterations of the run that measures the cost of one run before a grid starts.
COST_PROBE_ITERS = 20


def plan_runs(grid: Grid) -> List[Dict]:
    """One dict per (seed, level, loss) of `grid`: loss, level, seed, run_dir and its data (noisy
    copies written as needed)."""
    runs = []
    for seed in grid.seeds:
        for level in grid.levels:
            data = level_data(grid.output_dir, grid.splits, level, seed)
            level_losses = grid.losses
            if level == grid.splits.reference and grid.clean_losses is not None:
                level_losses = grid.clean_losses
            if level in BCE_ONLY_LEVELS:
                level_losses = ["bce"]
            for loss in level_losses:
                runs.append(dict(loss=loss, level=level, seed=seed,
                                 run_dir=str(grid.run_dir(level, seed, loss)), data=data))
    return runs


def run_grid(grid: Grid, progress: Optional[RunProgress] = None) -> List[Dict]:
    """Train and evaluate every run of `grid` not finished yet, where `grid.launch` says, each
    reported to `progress`; one record per run (with its "results")."""
    return train_runs(grid, plan_runs(grid), progress)


def train_runs(grid: Grid, runs: List[Dict], progress: Optional[RunProgress] = None) -> List[Dict]:
    """Train and evaluate the planned `runs` not finished yet, where `grid.launch` says, each from
    `grid.start` with `grid.overrides`; a run's own "options" (KEY VALUE ...) come after them and
    its own "schedule" replaces the grid's. Adds each run's "results"; returns `runs`. Without
    a `progress`, one of its own counts the runs trained here."""
    trained_yet = [(Path(run["run_dir"]) / EVAL_RESULTS_FILE).exists() for run in runs]
    opts: List[str] = ([] if all(trained_yet)
                       else grid.start.weights_opts(grid.output_dir, grid.config, grid.launch))
    opts += list(grid.overrides)
    # Finished runs only read their results; the others (and the finished ones to evaluate on
    # a changed validation file) share the cores.
    tasks, finished = [], []
    for run, done in zip(runs, trained_yet):
        again = done and evaluated_elsewhere(Path(run["run_dir"]), run["data"]["val_json"])
        finished.append(done and not again)
        name = f"{run['level']} seed {run['seed']} {run['loss']}" + (
            " (evaluated again: the validation file has changed)" if again else "")
        call = functools.partial(train_and_evaluate, Path(run["run_dir"]), run["loss"],
                                 run.pop("data"), run.pop("schedule", grid.schedule), run["seed"],
                                 [*opts, *run.get("options", ())], config=grid.config)
        tasks.append(Task(name, Path(run["run_dir"]), call))
    to_train = [task for task, done in zip(tasks, finished) if not done]
    own = progress is None
    if own:
        progress = RunProgress(len(to_train), grid.launch.side_by_side() or len(to_train))
    try:
        trained = iter(run_in_parallel(to_train, grid.launch, progress))
    finally:
        if own:
            progress.close()
    for run, task, done in zip(runs, tasks, finished):
        run["results"] = task.call() if done else next(trained)
    return runs


def measure_run_cost(grid: Grid) -> float:
    """Minutes one run of the grid's schedule takes here, from a run of COST_PROBE_ITERS
    iterations of bce on the reference annotations (with its evaluation, at the threads a run of
    the grid's launch gives a run, there: the CPU, a GPU slot or a Slurm job), extrapolated by its
    measured time per iteration. Kept in output_dir/cost.json."""
    cost_file = Path(grid.output_dir) / "cost.json"
    if cost_file.exists():
        return json.loads(cost_file.read_text())["minutes_per_run"]
    schedule = grid.schedule
    probe_iters = min(COST_PROBE_ITERS, schedule.max_iter)
    probe = Schedule(schedule.num_train, schedule.num_val, probe_iters)
    run_dir = Path(grid.output_dir) / "cost_probe"
    data = level_data(grid.output_dir, grid.splits, grid.splits.reference, 0)
    opts = [*grid.start.weights_opts(grid.output_dir, grid.config, grid.launch),
            *grid.overrides]
    print(f"Measuring the cost of a run {grid.launch.describe()}: {probe_iters} iterations and "
          "an evaluation", flush=True)
    started = time.time()
    task = Task("the cost probe", run_dir, functools.partial(
        train_and_evaluate, run_dir, "bce", data, probe, 0, opts, config=grid.config))
    if grid.launch.slurm is not None:
        run_in_parallel([task], grid.launch, RunProgress(1))
    else:  # at the share of the machine a run of the grid gets
        run_task(task, grid.launch.slots()[0], RunProgress(1))
    probe_seconds = time.time() - started
    rows = [json.loads(line) for line in (run_dir / METRICS_FILE).read_text().splitlines()]
    per_iter = [row["time"] for row in rows if "time" in row]
    seconds_per_iter = per_iter[-1] if per_iter else probe_seconds / probe_iters
    minutes = (probe_seconds + seconds_per_iter * (schedule.max_iter - probe_iters)) / 60
    write_json_atomic(cost_file, dict(minutes_per_run=minutes, probe_seconds=probe_seconds,
                                      seconds_per_iter=seconds_per_iter,
                                      where=grid.launch.describe()))
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


def run_robustness(grid: Grid, command: str = "") -> str:
    """Run `grid` (bce is always added: every share is measured against it), print the measured
    cost first and the progress over the runs, and write results.md, results.json and
    pr_curves_<level>.png into its output folder; returns results.md's text. `command` is
    recorded in its header. With `grid.refine`, each noise level is also refined per seed
    (`experiments.refinement`) and trained on again."""
    grid = grid.check().with_bce()
    output_dir, splits, refine = Path(grid.output_dir), grid.splits, grid.refine
    started, version = time.time(), code_version()
    runs = plan_runs(grid)
    todo = sum(not (Path(r["run_dir"]) / EVAL_RESULTS_FILE).exists() for r in runs)
    again = sum((Path(r["run_dir"]) / EVAL_RESULTS_FILE).exists()
                and evaluated_elsewhere(Path(r["run_dir"]), splits.val_json) for r in runs)
    if again:
        print(f"{again} finished runs to evaluate again: {splits.val_json} has changed since "
              "they were evaluated", flush=True)
    if refine is not None:  # per level and seed not refined yet: its folds, then two losses
        check_refined_copies(output_dir, refinable(grid.levels), grid.seeds, refine)
        todo += sum(refine.folds + (len(grid.refine_losses) if grid.refine_losses else 2)
                    for level in refinable(grid.levels) for seed in grid.seeds
                    if not refined_json(output_dir, level, seed).exists())
    minutes = None
    if todo:
        grid.start.weights_opts(output_dir, grid.config, grid.launch)  # pretrained first
        minutes = measure_run_cost(grid)
        side_by_side = grid.launch.side_by_side()
        total = (f"about {minutes * todo / side_by_side:.1f} min" if side_by_side
                 else "as the cluster schedules them")
        print(f"{len(runs)} runs ({todo} to train) {grid.launch.describe()}, {minutes:.1f} min "
              f"per run measured there: {total}", flush=True)
    progress = RunProgress(todo + again, grid.launch.side_by_side() or todo + again,
                           minutes and minutes * 60)
    try:
        records = run_grid(grid, progress)
        if refine is not None:
            records += refine_and_train(grid, records, progress)
    finally:
        progress.close()
    refined_levels = list(dict.fromkeys(r["level"] for r in records
                                        if r["level"].endswith(REFINED)))
    return write_results(grid, records, refined_levels, command, version, time.time() - started)


def write_results(grid: Grid, records: List[Dict], refined_levels: Sequence[str], command: str,
                  version: str, seconds: float) -> str:
    """results.md (returned), results.json and pr_curves_<level>.png of a finished grid."""
    output_dir, splits, refine = Path(grid.output_dir), grid.splits, grid.refine
    losses, levels, seeds = grid.losses, grid.levels, grid.seeds
    summary = summarize(records)
    val_gt = json.loads(Path(splits.val_json).read_text())  # read once for every run's halves
    for record in records:
        record["halves"] = run_half_aps(Path(record["run_dir"]), Path(splits.val_json), val_gt)
    spread = spread_lines(spread_sources(records), len(val_gt["images"]))
    header = (f"Command: `{command}`  \n"
              f"Commit: {version}; machine: {platform.machine()}, "
              f"{os.cpu_count()} cores; this invocation: {seconds / 60:.1f} min "
              f"(runs already finished are not repeated); {grid.schedule.max_iter} iterations "
              f"per run, {grid.start.describe()}; training annotations {splits.train_json}, "
              f"evaluation on {splits.val_json}.\n")
    advice = verdict(summary, records, losses, levels, splits.reference) or [
        "- only bce was trained: give --losses to compare others with it"]
    all_losses = list(dict.fromkeys([*losses, *(r["loss"] for r in records)]))
    table = (header + "\nVerdict (boundary AP):\n\n" + "\n".join(advice) + "\n\n"
             + markdown(summary, all_losses, [*levels, *refined_levels], records,
                        splits.reference)
             + "\n\n" + "\n".join(spread))
    results = {"records": records, "summary": summary, "verdict": advice,
               "schedule": asdict(grid.schedule),
               "start": asdict(grid.start) | {"describe": grid.start.describe()},
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


def refine_and_train(grid: Grid, records: Sequence[Dict],
                     progress: Optional[RunProgress] = None) -> List[Dict]:
    """Refine every noise level of the grid per seed (the audits' folds where `grid.launch` says),
    then train `grid.refine_losses` on the refined annotations (default: bce and the level's best
    loss by `records`); one record per run, at level `<level>_refined`."""
    summary = summarize(records)
    opts = [*grid.start.weights_opts(grid.output_dir, grid.config, grid.launch), *grid.overrides]
    refined_records: List[Dict] = []
    for level in refinable(grid.levels):
        level_losses = list(grid.refine_losses) if grid.refine_losses else [
            "bce", *filter(None, [best_loss(summary, records, grid.losses, level)])]
        for seed in grid.seeds:
            refine_level(grid, level, seed, opts, progress)
        refined = replace(grid, losses=level_losses, levels=[level + REFINED],
                          clean_losses=None, refine=None, refine_losses=None)
        refined_records += run_grid(refined, progress)
    return refined_records
