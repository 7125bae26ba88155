"""Noise levels of the experiments, and the training data of each: the built-in dataset's clean
training masks, or a noisy copy of them made by `noisy_mask.noise`."""

import json
from pathlib import Path
from typing import Dict, Optional

from .runner import Schedule

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


