"""The noisy-mask experiment on the built-in shapes dataset (`make demo`): the robustness grid in
small, one seed.

A detector is pretrained without masks on clean images of its own (made once and kept under the
output folder); from it BCE is fine-tuned on the clean training masks, the reference, and each
loss on a noisy copy of them. Every run is evaluated on the clean validation masks; the results
table gives the share of what BCE loses to noise that each loss wins back, next to the
precision/recall and loss curves and pictures of the noise and of the predictions.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..engine.launcher import Launch, Schedule
from ..utils.atomic import write_text_atomic
from ..viz.curves import plot_loss_curves, plot_pr_curves
from ..viz.pictures import draw_noise_grid, draw_predictions_grid
from .levels import builtin_splits, mean_noise_iou, prepare_data
from .loss_grid import run_grid
from .options import FINETUNE_CONFIG, Grid, StartingPoint
from .stats import markdown, summarize

# bce and the original experiment's two losses, and the best loss of the built-in grid
# (docs/robustness.md).
DEMO_LOSSES = ("bce", "dice", "label_smoothing", "bce+pairwise_color")

# The demo's runs fine-tune the FPN and the heads on the pretrained detector's frozen ResNet: an
# iteration costs about 0.6 of the grid's (0.57 against 0.89 s, two runs side by side on 2
# cores), so 350 of them (the grid: 300) fit the demo from nothing in 20 minutes on such a
# machine. Training res5 too (FREEZE_AT 4) cost 0.66 s and scored no higher.
FROZEN_TRUNK = ("MODEL.BACKBONE.FREEZE_AT", "5")


@dataclass(frozen=True)
class DemoPlan:
    """The fine-tuning runs' schedule, the pretrained detector's, and what the numbers mean."""

    schedule: Schedule
    pretrain: Schedule
    caveat: str = ""


FULL = DemoPlan(Schedule(num_train=200, num_val=50, max_iter=350),
                Schedule(num_train=400, num_val=0, max_iter=1000))
QUICK = DemoPlan(
    Schedule(num_train=100, num_val=30, max_iter=150),
    Schedule(num_train=200, num_val=0, max_iter=300),
    "A first look: a detector pretrained 300 iterations and 150 fine-tuning iterations per run. "
    "These numbers check the pipeline; they do not rank the losses (`make demo` does, and a "
    "quick run after it reuses its pretrained detector).",
)


def draw_pictures(output_dir: Path, data: Dict[str, str], run_dirs, labels) -> str:
    """What the noise did to the training masks and what each run predicts, as PNG files;
    returns the markdown that links them."""
    links = ""
    if "noise_report" in data:
        draw_noise_grid(data["clean_train_json"], data["train_json"], data["train_images"],
                        output_dir / "noise.png")
        links += "\n![clean and noisy training outlines](noise.png)\n"
    draw_predictions_grid(run_dirs, data["val_images"], data["val_json"],
                          output_dir / "predictions.png", labels=list(labels))
    return links + "\n![predictions per run on the clean validation images](predictions.png)\n"


def run_demo(
    output_dir: Path,
    losses: Sequence[str] = DEMO_LOSSES,
    noise: str = "mid",
    plan: DemoPlan = FULL,
    seed: int = 0,
    launch: Launch = Launch(jobs=1),
    pretrained: Optional[str] = None,
) -> Path:
    """Run the demo, its trainings where `launch` says; returns the path of its results table.

    `pretrained`: weights of a detector to start from instead of pretraining one (a quick demo
    reuses the full demo's)."""
    output_dir = Path(output_dir)
    losses = list(losses) if "bce" in losses else ["bce", *losses]
    levels = ["clean", noise]
    start = (StartingPoint(weights=str(pretrained)) if pretrained
             else StartingPoint(pretrain=plan.pretrain))
    grid = Grid(output_dir, builtin_splits(output_dir, plan.schedule), losses, levels, [seed],
                plan.schedule, start, FINETUNE_CONFIG, FROZEN_TRUNK, clean_losses=["bce"],
                launch=launch)
    records = run_grid(grid)
    run_dirs = [r["run_dir"] for r in records]
    labels = [f"{r['loss']} ({r['level']})" for r in records]
    plot_pr_curves(run_dirs, output_dir / "pr_curves.png", labels=labels)
    plot_loss_curves(run_dirs, output_dir / "loss_curves.png", labels=labels)
    data = prepare_data(output_dir, noise, plan.schedule, seed)
    noise_iou = mean_noise_iou(data)
    lines: List[str] = []
    if plan.caveat and not pretrained:
        lines += [f"**{plan.caveat}**", ""]
    lines += [
        f"Every run {start.describe()}, its ResNet frozen ({plan.schedule.max_iter} iterations, "
        f"{plan.schedule.num_train} training images, seed {seed}); evaluation on "
        f"{plan.schedule.num_val} clean validation images. Training masks: clean, and `{noise}` "
        f"noise (mean IoU of noisy vs clean masks {noise_iou:.3f}). One seed: the seed-to-seed "
        "spread of these numbers is in docs/robustness.md.",
        "",
        markdown(summarize(records), losses, levels, records),
        "",
        "![precision/recall curves](pr_curves.png)",
        "",
        "![training loss](loss_curves.png)",
    ]
    table = "\n".join(lines) + "\n" + draw_pictures(output_dir, data, run_dirs, labels)
    table_path = output_dir / "results.md"
    write_text_atomic(table_path, table)
    return table_path
