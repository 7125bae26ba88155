"""The dataset's files: the PNGs and COCO json of each split, the manifest written last, and the
check that a folder already holds a complete dataset made with the same parameters."""

import json
import re
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

from ...utils.atomic import write_bytes_atomic
from .hard import sample_hard_scene
from .params import MIN_IMAGE_SIZE, SHAPE_CLASSES, VARIANTS
from .plain import sample_scene

# Bump when the output for a given seed changes, so that old datasets are made again.
GENERATOR_VERSION = 1
MANIFEST_NAME = "shapes_manifest.json"
SPLITS = ("train", "val")
IMAGE_NAME = re.compile(r"^\d{6}\.png$")


def variant_scene(
    rng: np.random.Generator, image_size: int, variant: str
) -> Tuple[np.ndarray, List[dict]]:
    """The image and instances of one scene of `variant` (one of VARIANTS)."""
    if variant == "plain":
        return sample_scene(rng, image_size)
    if variant == "hard":
        return sample_hard_scene(rng, image_size)[:2]
    raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")


def image_rng(seed: int, split: str, image_id: int) -> np.random.Generator:
    """The generator of image `image_id` (1-based) of `split`: seeded with (seed, split, k)."""
    return np.random.default_rng([seed, SPLITS.index(split), image_id])


def json_bytes(obj) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("utf-8")


def make_split(
    seed: int,
    split: str,
    num_images: int,
    image_size: int,
    image_dir: Path,
    variant: str = "plain",
) -> dict:
    """Write the PNGs of one split and return its COCO dict.

    Image k (1-based) uses the generator image_rng(seed, split, k), so it is the same whatever
    the number of images, and train and val never share a stream.
    """
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        image, instances = variant_scene(image_rng(seed, split, image_id), image_size, variant)
        file_name = f"{image_id:06d}.png"
        ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode {image_dir / file_name} as PNG")
        write_bytes_atomic(image_dir / file_name, encoded.tobytes())
        images.append(
            {"id": image_id, "file_name": file_name, "width": image_size, "height": image_size}
        )
        for instance in instances:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **instance})
    info = {
        "description": "noisy_mask synthetic shapes",
        "version": str(GENERATOR_VERSION),
        "split": split,
        "seed": seed,
    }
    if variant != "plain":  # plain files keep the bytes they had before there were variants
        info["variant"] = variant
    return {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": name, "supercategory": "shape"}
            for i, name in enumerate(SHAPE_CLASSES)
        ],
    }


def dataset_paths(output_dir: Path) -> Dict[str, str]:
    """Where each part of the dataset lives under `output_dir`."""
    paths = {"root": output_dir, "manifest": output_dir / MANIFEST_NAME}
    for split in SPLITS:
        paths[f"{split}_json"] = output_dir / "annotations" / f"instances_{split}.json"
        paths[f"{split}_images"] = output_dir / split
    return {key: str(value) for key, value in paths.items()}


def is_complete(output_dir: Path, params: dict) -> bool:
    """True if `output_dir` holds a finished dataset made with `params` (manifest and all files)."""
    paths = dataset_paths(output_dir)
    try:
        manifest = json.loads(Path(paths["manifest"]).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("params") != params:
        return False
    for split in SPLITS:
        if not Path(paths[f"{split}_json"]).is_file():
            return False
        image_dir = Path(paths[f"{split}_images"])
        for image_id in range(1, params[f"num_{split}"] + 1):
            if not (image_dir / f"{image_id:06d}.png").is_file():
                return False
    return True


def generate_shapes_dataset(
    output_dir,
    num_train: int = 200,
    num_val: int = 50,
    image_size: int = 192,
    seed: int = 0,
    variant: str = "plain",
) -> Dict[str, str]:
    """Make the shapes dataset of `variant` ("plain" or "hard") under `output_dir`.

    Returns its paths, keys root, manifest, train_json, train_images, val_json, val_images.
    Byte-for-byte the same files for the same arguments. If `output_dir` already holds a
    complete dataset made with the same arguments (variant included), returns at once without
    writing; otherwise the dataset there is made again.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    for name, value, lowest in (
        ("num_train", num_train, 0),
        ("num_val", num_val, 0),
        ("image_size", image_size, MIN_IMAGE_SIZE),
        ("seed", seed, 0),
    ):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < lowest:
            raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output {output_dir} exists and is not a folder")
    params = {
        "generator_version": GENERATOR_VERSION,
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": int(image_size),
        "seed": int(seed),
        "variant": variant,
    }
    paths = dataset_paths(output_dir)
    if is_complete(output_dir, params):
        return paths

    manifest = Path(paths["manifest"])
    if manifest.exists():
        manifest.unlink()  # from here on the folder does not look complete until we finish
    Path(paths["train_json"]).parent.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        image_dir = Path(paths[f"{split}_images"])
        image_dir.mkdir(parents=True, exist_ok=True)
        coco = make_split(
            params["seed"], split, params[f"num_{split}"], image_size, image_dir, variant
        )
        # images of an earlier, larger dataset would otherwise linger beside the new ones
        wanted = {image["file_name"] for image in coco["images"]}
        for stale in image_dir.iterdir():
            if IMAGE_NAME.match(stale.name) and stale.name not in wanted:
                stale.unlink()
        write_bytes_atomic(Path(paths[f"{split}_json"]), json_bytes(coco))
    manifest_dict = {"generator": "noisy_mask.data.shapes", "params": params}
    write_bytes_atomic(manifest, json_bytes(manifest_dict))
    return paths
