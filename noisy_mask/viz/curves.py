"""Compare runs: precision/recall curves on the clean masks and training-loss curves, as PNG.

Each run folder is a training output folder (one per loss) holding detectron2's metrics.json and
the precision/recall data of `evaluation.pr_data` (pr_data.json and pr_data_<iou type>.npz) in the
folder itself, in inference/ or in inference/<dataset>/ (train_net's evaluation folder).
`write_plots` draws pr_curves.png and loss_curves.png; the same inputs give the same bytes.
Neither torch nor detectron2 is imported.
"""

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from matplotlib.figure import Figure

from ..evaluation.pr_data import CURVE_NAMES, PR_INDEX, load_pr_data
from ..utils.run_folders import METRICS_FILE, find_run_file
from .style import DPI, default_style, line_style, save_figure

PR_FILE, LOSS_FILE = "pr_curves.png", "loss_curves.png"
PR_FIGSIZE = (13.5, 8.0)  # inches: 1350 x 800 px at DPI
LOSS_FIGSIZE = (12.0, 4.5)  # 1200 x 450 px
PR_ROWS = {"segm": "Mask", "boundary": "Boundary"}
# Column -> (title, metric name in the legend).
PR_COLUMNS = {
    "0.50": ("IoU 0.50", "AP50"),
    "0.75": ("IoU 0.75", "AP75"),
    "0.50:0.95": ("mean over IoU 0.50:0.95", "AP"),
}
LOSS_KEYS = {"loss_mask": "Mask loss (loss_mask)", "total_loss": "Total training loss (total_loss)"}


@dataclasses.dataclass(frozen=True)
class Run:
    """A run folder's recorded data: `pr` as returned by `load_pr_data`, `metrics` the rows of
    metrics.json."""

    label: str
    directory: Path
    pr: Dict[str, Any]
    metrics: List[Dict[str, Any]]


def find_pr_dir(run_dir: Union[str, os.PathLike], dataset: Optional[str] = None) -> Path:
    """The folder of `run_dir` that holds pr_data.json (see `find_run_file`)."""
    return find_run_file(run_dir, PR_INDEX, "precision/recall data", dataset).parent


def read_metrics_json(path: Union[str, os.PathLike]) -> List[Dict[str, Any]]:
    """Rows of detectron2's metrics.json: one json object per line, each with "iteration"."""
    path = Path(path)
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {number}: not valid json ({e})") from e
            if not isinstance(row, dict) or "iteration" not in row:
                raise ValueError(f"{path}, line {number}: no 'iteration' key")
            rows.append(row)
    return rows


def load_run(
    run_dir: Union[str, os.PathLike], label: Optional[str] = None, dataset: Optional[str] = None
) -> Run:
    """Read a run folder; a missing metrics.json or PR data raises naming the folder and file."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {str(run_dir)!r} does not exist")
    metrics_path = run_dir / METRICS_FILE
    if not metrics_path.is_file():
        raise FileNotFoundError(
            f"run folder {str(run_dir)!r} has no {METRICS_FILE} ({metrics_path})"
        )
    pr = load_pr_data(find_pr_dir(run_dir, dataset))
    return Run(label or run_dir.resolve().name, run_dir, pr, read_metrics_json(metrics_path))


def loss_curve(rows: Sequence[Dict[str, Any]], key: str) -> Tuple[np.ndarray, np.ndarray]:
    """(iterations, values) of `key`, sorted by iteration; a resumed run's repeated iteration
    keeps its last value."""
    by_iteration = {int(r["iteration"]): float(r[key]) for r in rows if key in r}
    iterations = np.array(sorted(by_iteration), dtype=np.int64)
    return iterations, np.array([by_iteration[i] for i in iterations], dtype=np.float64)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def pr_figure(runs: Sequence[Run]) -> Figure:
    """Grid of precision/recall curves: rows segm and boundary, columns IoU 0.50, 0.75 and the
    mean over 0.50:0.95; one line per run (mean over categories, area all, 100 detections per
    image), its AP in the legend."""
    fig = Figure(figsize=PR_FIGSIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(len(PR_ROWS), len(PR_COLUMNS), sharex=True, sharey=True, squeeze=False)
    for row, (iou_type, row_title) in enumerate(PR_ROWS.items()):
        for col, (curve, (col_title, metric)) in enumerate(PR_COLUMNS.items()):
            ax = axes[row, col]
            c = CURVE_NAMES.index(curve)
            for i, run in enumerate(runs):
                if iou_type not in run.pr:
                    continue
                data = run.pr[iou_type]
                ap = 100 * float(data["mean_ap"][c])
                ax.plot(
                    data["recall_thresholds"],
                    data["mean_precision"][c],
                    label=f"{run.label} ({metric} {ap:.1f})",
                    linewidth=1.8,
                    **line_style(i),
                )
            if ax.lines:
                ax.legend(loc="lower left", fontsize="small")
            else:
                _no_data(ax, f"no {iou_type} data")
            ax.set_title(f"{row_title} (iouType {iou_type}), {col_title}", fontsize="medium")
            ax.set_xlim(0, 1)
            ax.set_ylim(-0.02, 1.02)  # keeps lines at precision 0 off the frame
            ax.grid(True, color="0.85", linewidth=0.6)
            if row == len(PR_ROWS) - 1:
                ax.set_xlabel("recall")
            if col == 0:
                ax.set_ylabel("precision")
    fig.suptitle(
        "Precision/recall on the clean masks"
        " (mean over categories, all areas, 100 detections per image)"
    )
    return fig


def loss_figure(runs: Sequence[Run], keys: Sequence[str] = tuple(LOSS_KEYS)) -> Figure:
    """One panel per key of metrics.json (default loss_mask and total_loss) against iteration,
    one line per run."""
    fig = Figure(figsize=LOSS_FIGSIZE, dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        for i, run in enumerate(runs):
            iterations, values = loss_curve(run.metrics, key)
            if iterations.size:
                ax.plot(iterations, values, label=run.label, linewidth=1.5, **line_style(i))
        if ax.lines:
            ax.legend(loc="upper right", fontsize="small")
        else:
            _no_data(ax, f"no {key} in {METRICS_FILE}")
        ax.set_title(LOSS_KEYS.get(key, key), fontsize="medium")
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"{key} (as logged)")
        ax.grid(True, color="0.85", linewidth=0.6)
    fig.suptitle("Training losses (each mask loss has its own scale)")
    return fig


RunsArg = Sequence[Union[Run, str, os.PathLike]]


def as_runs(runs: RunsArg, labels: Optional[Sequence[str]] = None) -> List[Run]:
    """Runs from `Run`s or run folders (read with `load_run`), relabelled with `labels` if given."""
    if labels is not None and len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} runs")
    out = []
    for i, run in enumerate(runs):
        label = labels[i] if labels is not None else None
        if isinstance(run, Run):
            out.append(dataclasses.replace(run, label=label) if label else run)
        else:
            out.append(load_run(run, label))
    return out


def plot_pr_curves(
    runs: RunsArg, output_path: Union[str, os.PathLike], labels: Optional[Sequence[str]] = None
) -> Path:
    """Draw `pr_figure` of the runs (`Run`s or run folders) to the PNG `output_path`."""
    runs = as_runs(runs, labels)
    with default_style():
        return save_figure(pr_figure(runs), output_path)


def plot_loss_curves(
    runs: RunsArg,
    output_path: Union[str, os.PathLike],
    labels: Optional[Sequence[str]] = None,
    keys: Sequence[str] = tuple(LOSS_KEYS),
) -> Path:
    """Draw `loss_figure` of the runs (`Run`s or run folders) to the PNG `output_path`."""
    runs = as_runs(runs, labels)
    with default_style():
        return save_figure(loss_figure(runs, keys), output_path)


def write_plots(runs: RunsArg, output_dir: Union[str, os.PathLike]) -> List[Path]:
    """Draw OUTPUT_DIR/pr_curves.png and OUTPUT_DIR/loss_curves.png of the runs; their paths."""
    runs = as_runs(runs)
    output_dir = Path(output_dir)
    return [
        plot_pr_curves(runs, output_dir / PR_FILE),
        plot_loss_curves(runs, output_dir / LOSS_FILE),
    ]
