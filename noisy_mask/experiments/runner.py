"""The noisy-mask experiment on the built-in shapes dataset, as one command.

Generate the dataset, make a noisy copy of its training masks, train one Mask R-CNN per loss with
`train_net.py` on that copy, evaluate each on the clean validation masks, and write the
precision/recall and loss curves and a results table into one folder:

    python -m noisy_mask.experiment --output output/demo [--losses bce dice] [--noise mid] [--quick]

Finished runs (those with `eval_results.json`) are not trained again, so an interrupted
experiment resumes where it stopped.
"""

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..model_zoo import get_config_file
from ..utils.atomic import write_text_atomic
from ..utils.run_folders import EVAL_RESULTS_FILE

SHAPES_CONFIG = Path(get_config_file("shapes/Base-Shapes-R18-FPN.yaml"))
NOISE_LEVELS = ("clean", "easy", "mid", "hard")
# `mid` split in two, to tell what a mask loss can win back from what it cannot:
#   mid_outlines: only the outline noise, on the masks alone (boxes, instances, classes clean);
#   mid_no_outlines: everything else of mid (boxes from the noisy outlines, 5% deleted, 5% of
#     classes flipped) with the masks clean: what a mask loss that undid outline noise would reach.
SPLIT_LEVELS = {
    "mid_outlines": dict(preset="mid", apply_to="masks", delete_fraction=0.0, flip_fraction=0.0),
    "mid_no_outlines": dict(preset="mid", apply_to="boxes"),
}
LEVELS = NOISE_LEVELS + tuple(SPLIT_LEVELS)
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
        # LR drops at 80% and 93% of training, as in the 300-iteration config.
        steps = (round(self.max_iter * 0.8), round(self.max_iter * 0.93))
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


FULL = Schedule(num_train=200, num_val=50, max_iter=300)
QUICK = Schedule(num_train=100, num_val=30, max_iter=150)  # checks the pipeline; low AP


def prepare_data(output_dir: Path, noise: str, schedule: Schedule, seed: int) -> Dict[str, str]:
    """The clean dataset and, unless `noise` is "clean", a noisy copy of its training masks."""
    from ..data import generate_shapes_dataset
    from ..noise.apply import noise_file

    paths = generate_shapes_dataset(
        output_dir / "dataset", num_train=schedule.num_train, num_val=schedule.num_val, seed=0
    )
    paths = dict(paths, noise=noise)
    if noise == "clean":
        return paths
    noisy_json = output_dir / "dataset" / f"instances_train_{noise}_seed{seed}.json"
    report_path = Path(str(noisy_json)[: -len(".json")] + ".noise_report.json")
    if not (noisy_json.exists() and report_path.exists()):
        options = SPLIT_LEVELS.get(noise, dict(preset=noise))
        noise_file(paths["train_json"], noisy_json, seed=seed, **options)
    paths.update(
        clean_train_json=paths["train_json"], train_json=str(noisy_json),
        noise_report=str(report_path),
    )
    return paths


def run_train_net(
    run_dir: Path, opts: Sequence[str], what: str, config: Path = SHAPES_CONFIG,
    threads: Optional[int] = None,
) -> None:
    """Run `python -m noisy_mask.train_net --config-file config --resume opts` into run_dir, its output in
    run_dir/train_net.out; raise naming `what` and that file if it fails.

    `threads` caps the run's compute threads: runs side by side must not oversubscribe the cores,
    which slows CPU training several-fold.
    """
    cmd = [
        sys.executable,
        "-m",
        "noisy_mask.train_net",
        "--config-file",
        str(config),
        "--resume",  # continues an interrupted run from its last checkpoint
        "OUTPUT_DIR",
        str(run_dir),
        *opts,
    ]
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with open(run_dir / "train_net.out", "w") as log:
        status = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if status.returncode != 0:
        raise RuntimeError(f"training {what} failed (exit {status.returncode}): see {log.name}")


def train_and_evaluate(
    run_dir: Path,
    loss: str,
    data: Dict[str, str],
    schedule: Schedule,
    seed: int,
    extra_opts: Sequence[str] = (),
    threads: Optional[int] = None,
    config: Path = SHAPES_CONFIG,
) -> Dict:
    """Train `loss` with train_net.py on data["train_json"], evaluate on the clean validation set."""
    results_path = run_dir / EVAL_RESULTS_FILE
    if results_path.exists():
        return json.loads(results_path.read_text())
    datasets = [
        ["train", data["train_json"], data["train_images"]],
        ["val_clean", data["val_json"], data["val_images"]],
    ]
    opts = [
        "MODEL.ROI_MASK_HEAD.LOSS",
        loss,
        "DATASETS.REGISTER_COCO",
        repr(datasets),
        "DATASETS.TRAIN",
        "('train',)",
        "DATASETS.TEST",
        "('val_clean',)",
        "SEED",
        str(seed),
        *schedule.solver_opts(),
        *extra_opts,
    ]
    started = time.time()
    run_train_net(run_dir, opts, loss, config, threads)
    # Finished runs are never resumed: only model_final.pth is worth its disk (100 MB a run).
    for checkpoint in run_dir.glob("model_[0-9]*.pth"):
        checkpoint.unlink()
    print(f"  {loss}: trained and evaluated in {time.time() - started:.0f} s", flush=True)
    return json.loads(results_path.read_text())


def pretrain_detector(
    output_dir: Path, schedule: Schedule, seed: int, config: Path = SHAPES_CONFIG,
    threads: Optional[int] = None,
) -> Path:
    """A detector without a mask branch (MODEL.MASK_ON False), trained on clean shapes images of
    its own (`seed`, not the experiment's), as a starting point like a detection model zoo's;
    returns its weights, `output_dir/pretrain/model_final.pth`. Trained once: kept weights
    are returned at once, and an interrupted pretraining resumes.

    The mask head is not in these weights, so every mask head of the experiment learns its
    masks from its own (noisy) training annotations only.
    """
    from ..data import generate_shapes_dataset

    run_dir = output_dir / "pretrain"
    weights = run_dir / "model_final.pth"
    if weights.exists():
        return weights
    paths = generate_shapes_dataset(
        output_dir / "pretrain_dataset", num_train=schedule.num_train, num_val=0, seed=seed
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
    started = time.time()
    run_train_net(run_dir, opts, "the pretrained detector", config, threads)
    print(f"  pretrained detector: trained in {time.time() - started:.0f} s", flush=True)
    return weights


def mean_noise_iou(data: Dict[str, str]) -> Optional[float]:
    if "noise_report" not in data:
        return None
    return json.loads(Path(data["noise_report"]).read_text())["mask_iou"]["mean"]


def results_table(results: Dict[str, Dict], noise: str, noise_iou: Optional[float]) -> str:
    """Markdown: mask AP, AP50, AP75 and boundary AP per loss."""
    iou_text = (
        "clean masks" if noise_iou is None else f"mean IoU of noisy vs clean masks {noise_iou:.3f}"
    )
    lines = [
        f"Training masks: noise `{noise}` ({iou_text}); evaluation on the clean validation masks.",
        "",
        "| loss | mask AP | mask AP50 | mask AP75 | boundary AP | boundary AP75 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for loss, result in results.items():
        segm, boundary = result.get("segm", {}), result.get("boundary", {})
        cells = [
            segm.get("AP"),
            segm.get("AP50"),
            segm.get("AP75"),
            boundary.get("AP"),
            boundary.get("AP75"),
        ]
        lines.append(f"| {loss} | " + " | ".join(_fmt(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def draw_pictures(output_dir: Path, data: Dict[str, str], run_dirs, losses) -> str:
    """What the noise did to the training masks and what each run predicts, as PNG files;
    returns the markdown that links them."""
    from ..viz.pictures import draw_noise_grid, draw_predictions_grid

    links = ""
    if "noise_report" in data:
        draw_noise_grid(data["clean_train_json"], data["train_json"], data["train_images"],
                        output_dir / "noise.png")
        links += "\n![clean and noisy training outlines](noise.png)\n"
    draw_predictions_grid(run_dirs, data["val_images"], data["val_json"],
                          output_dir / "predictions.png", labels=list(losses))
    return links + "\n![predictions per loss on the clean validation images](predictions.png)\n"


def run_in_parallel(tasks: Sequence, jobs: int) -> List:
    """Call every task as `task(threads=...)`, `jobs` at a time, sharing the cores between them."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda task: task(threads=threads), tasks))


def run_experiment(
    output_dir: Path,
    losses: Sequence[str],
    noise: str = "mid",
    schedule: Schedule = FULL,
    seed: int = 0,
    jobs: int = 1,
) -> Path:
    """Run the experiment, `jobs` trainings at a time; returns the path of its results table."""
    from ..viz.plot import plot_loss_curves, plot_pr_curves

    output_dir = Path(output_dir)
    data = prepare_data(output_dir, noise, schedule, seed)
    tasks = [
        functools.partial(train_and_evaluate, output_dir / loss, loss, data, schedule, seed)
        for loss in losses
    ]
    results = dict(zip(losses, run_in_parallel(tasks, jobs)))
    run_dirs = [output_dir / loss for loss in losses]
    plot_pr_curves(run_dirs, output_dir / "pr_curves.png", labels=list(losses))
    plot_loss_curves(run_dirs, output_dir / "loss_curves.png", labels=list(losses))
    table = results_table(results, noise, mean_noise_iou(data))
    table += "\n![precision/recall curves](pr_curves.png)\n\n![training loss](loss_curves.png)\n"
    table += draw_pictures(output_dir, data, run_dirs, losses)
    table_path = output_dir / "results.md"
    write_text_atomic(table_path, table)
    return table_path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, type=Path, help="folder for everything")
    parser.add_argument("--losses", nargs="+", default=["bce", "dice", "label_smoothing"])
    parser.add_argument("--noise", default="mid", choices=LEVELS)
    parser.add_argument("--seed", type=int, default=0, help="noise and training seed")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                        help="runs trained side by side, the cores shared between them "
                             f"(default {DEFAULT_JOBS})")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a first look: {QUICK.num_train} training images, {QUICK.max_iter} "
        f"iterations (full: {FULL.num_train}, {FULL.max_iter})",
    )
    args = parser.parse_args(argv)
    schedule = QUICK if args.quick else FULL
    started = time.time()
    print(
        f"noisy-mask experiment: losses {', '.join(args.losses)}, noise {args.noise}, "
        f"{schedule.max_iter} iterations each, output {args.output}",
        flush=True,
    )
    table_path = run_experiment(args.output, args.losses, args.noise, schedule, args.seed, args.jobs)
    print()
    print(table_path.read_text())
    print(
        f"Done in {(time.time() - started) / 60:.1f} min. Results, curves and runs: {args.output}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
