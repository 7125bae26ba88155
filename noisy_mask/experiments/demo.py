"""The noisy-mask experiment on the built-in shapes dataset (`make demo`).

Generate the dataset, make a noisy copy of its training masks, train one Mask R-CNN per loss on
that copy, evaluate each on the clean validation masks, and write the precision/recall and loss
curves, pictures and a results table into one folder (`python -m noisy_mask.experiment`).
"""

import functools
from pathlib import Path
from typing import Dict, Optional, Sequence

from ..utils.atomic import write_text_atomic
from .levels import mean_noise_iou, prepare_data
from .runner import Schedule, run_in_parallel, train_and_evaluate

FULL = Schedule(num_train=200, num_val=50, max_iter=300)
QUICK = Schedule(num_train=100, num_val=30, max_iter=150)  # checks the pipeline; low AP


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


