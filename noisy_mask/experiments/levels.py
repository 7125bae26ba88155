"""Noise levels of the experiments, and the training data of each: a dataset's reference training
annotations, or a noisy copy of them made by `noisy_mask.noise`.

The reference is the built-in dataset's clean masks (level `clean`), or a user's annotations as
they are (level `as_is`): the noise levels are the presets applied on top of it, and every run is
evaluated on the dataset's validation split.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from ..data import generate_shapes_dataset
from ..engine.launcher import Schedule
from ..noise.apply import noise_file
from ..noise.report import report_path as noise_report_path
from ..refine.apply import report_path

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
# A user's training annotations as they are: the reference of a grid on the user's data.
AS_IS = "as_is"
REFERENCE_LEVELS = ("clean", AS_IS)
# A level's noisy annotations after an audit and a refinement (experiments.refinement): `mid`
# refined is `mid_refined`, made under output_dir/refine/mid/seed<seed>/.
REFINED = "_refined"


def base_level(level: str) -> str:
    """The noise level a refined level was made from (`mid` for `mid_refined`); else the level."""
    return level[: -len(REFINED)] if level.endswith(REFINED) else level


def refine_folder(output_dir: Path, level: str, seed: int) -> Path:
    """Where the audit and the refined annotations of a noise level and seed are kept."""
    return Path(output_dir) / "refine" / level / f"seed{seed}"


def refined_json(output_dir: Path, level: str, seed: int) -> Path:
    return refine_folder(output_dir, level, seed) / "instances_train_refined.json"


@dataclass(frozen=True)
class Splits:
    """A COCO dataset's training and validation splits (annotation json, image folder), and the
    name of the level that trains on its training annotations unchanged."""

    train_json: str
    train_images: str
    val_json: str
    val_images: str
    reference: str = "clean"


def builtin_splits(output_dir: Path, schedule: Schedule, variant: str = "plain") -> Splits:
    """The built-in shapes dataset of `variant` (seed 0) under output_dir/dataset, made once."""
    paths = generate_shapes_dataset(
        Path(output_dir) / "dataset", num_train=schedule.num_train, num_val=schedule.num_val,
        seed=0, variant=variant,
    )
    return Splits(paths["train_json"], paths["train_images"], paths["val_json"],
                  paths["val_images"])


def level_data(output_dir: Path, splits: Splits, level: str, seed: int) -> Dict[str, str]:
    """The data of one run: train_json, train_images, val_json, val_images and noise (the level).

    At the reference level the training annotations are used as they are; at any other level a
    noisy copy is written once to output_dir/dataset/instances_train_<level>_seed<seed>.json
    with its noise report, and the keys clean_train_json and noise_report are added. A refined
    level's annotations are its base level's refined copy, which must have been made
    (`experiments.refinement.refine_level`); the key refine_report is added.
    """
    if level.endswith(REFINED):
        refined = refined_json(output_dir, base_level(level), seed)
        if not refined.exists():
            raise FileNotFoundError(f"level {level}, seed {seed}: {refined} is not made yet")
        data = level_data(output_dir, splits, base_level(level), seed)
        data.update(train_json=str(refined), noise=level, refine_report=str(report_path(refined)))
        return data
    data = dict(train_json=splits.train_json, train_images=splits.train_images,
                val_json=splits.val_json, val_images=splits.val_images, noise=level)
    if level == splits.reference:
        return data
    if level in REFERENCE_LEVELS or level not in LEVELS:
        valid = ", ".join(l for l in LEVELS if l not in REFERENCE_LEVELS)
        raise ValueError(f"noise level {level!r} is not one of {splits.reference}, {valid}")
    noisy_json = Path(output_dir) / "dataset" / f"instances_train_{level}_seed{seed}.json"
    noise_report = noise_report_path(noisy_json)
    if not (noisy_json.exists() and noise_report.exists()):
        options = SPLIT_LEVELS.get(level, dict(preset=level))
        noisy_json.parent.mkdir(parents=True, exist_ok=True)
        noise_file(splits.train_json, noisy_json, seed=seed, **options)
    data.update(clean_train_json=splits.train_json, train_json=str(noisy_json),
                noise_report=str(noise_report))
    return data


def prepare_data(output_dir: Path, noise: str, schedule: Schedule, seed: int,
                 variant: str = "plain") -> Dict[str, str]:
    """`level_data` of the built-in dataset: its clean masks, or a noisy copy of them."""
    return level_data(output_dir, builtin_splits(output_dir, schedule, variant), noise, seed)


def mean_noise_iou(data: Dict[str, str]) -> Optional[float]:
    """The mean IoU of the noisy versus the reference training masks, None at the reference."""
    if "noise_report" not in data:
        return None
    return json.loads(Path(data["noise_report"]).read_text())["mask_iou"]["mean"]
