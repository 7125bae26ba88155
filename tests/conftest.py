"""Fixtures shared by the tests: loss options, a small noisy shapes dataset and run folders."""
import pytest
import torch

from noisy_mask.losses.table import uses_image_colors


def _image_options(name, logits):
    """The colours a loss of IMAGE_LOSSES takes besides logits and targets: two flat halves."""
    if not uses_image_colors(name):
        return {}
    colors = torch.zeros(logits.shape[0], 3, *logits.shape[1:])
    colors[..., logits.shape[-1] // 2 :] = 50.0
    return {"image_colors": colors}


@pytest.fixture
def image_options():
    """image_options(name, logits): the extra keyword options loss `name` needs, if any."""
    return _image_options


@pytest.fixture(scope="session")
def noisy_shapes(tmp_path_factory):
    """A 6-image validation set of the built-in shapes dataset (96 px), and its copy with the
    "hard" noise: the paths of `generate_shapes_dataset`, "root", "noisy" and the noise "report"."""
    from noisy_mask.data.shapes import generate_shapes_dataset
    from noisy_mask.noise.apply import noise_file

    root = tmp_path_factory.mktemp("noisy_shapes")
    paths = generate_shapes_dataset(root / "shapes", num_train=0, num_val=6, image_size=96)
    noisy = root / "val_noisy.json"
    report = noise_file(paths["val_json"], noisy, preset="hard", seed=0)
    return {**paths, "root": root, "noisy": noisy, "report": report}


@pytest.fixture(scope="session")
def shapes_runs(noisy_shapes):
    """Two run folders of detections on `noisy_shapes`' clean validation set, as train_net's
    evaluation leaves them. bce: the ground truth itself at score 0.9, mask AP 81.25. dice: the
    same at 0.8, but on image 3 every mask moved 6 px right, plus a copy of each mask with the
    next class at score 0.3 (under the usual threshold); mask AP 64.5."""
    import json
    from pathlib import Path

    import numpy as np
    from samples import polygons_mask, rle, write_run_folder

    gt = json.loads(Path(noisy_shapes["val_json"]).read_text())
    images = {image["id"]: image for image in gt["images"]}

    def run(name, transform, ap):
        results = []
        for ann in gt["annotations"]:
            image = images[ann["image_id"]]
            mask = polygons_mask(ann["segmentation"], image["height"], image["width"])
            for category_id, new_mask, score in transform(ann, mask):
                results.append(
                    {
                        "image_id": ann["image_id"],
                        "category_id": category_id,
                        "segmentation": rle(new_mask),
                        "score": score,
                        "bbox": [0.0, 0.0, 1.0, 1.0],
                    }
                )
        metrics = {"bbox": {"AP": ap + 1}, "segm": {"AP": ap}, "boundary": {"AP": ap - 1}}
        root = noisy_shapes["root"] / "runs" / name
        return write_run_folder(root, detections=results, eval_results=metrics)

    def dice(ann, mask):
        moved = np.roll(mask, 6, axis=1) if ann["image_id"] == 3 else mask
        return [(ann["category_id"], moved, 0.8), (ann["category_id"] % 4 + 1, mask, 0.3)]

    bce = run("bce", lambda ann, mask: [(ann["category_id"], mask, 0.9)], 81.25)
    return {"gt": gt, "bce": bce, "dice": run("dice", dice, 64.5)}


@pytest.fixture
def plot_run_dirs(tmp_path):
    """Two run folders to plot: "bce" (the exact square, AP 100) and "dice" (shifted 4 px, AP 40),
    with the losses of `samples.LOGGED_LOSSES`."""
    from samples import LOGGED_LOSSES, write_plot_run

    return [
        write_plot_run(tmp_path / name, shift, LOGGED_LOSSES[name])
        for name, shift in (("bce", 0), ("dice", 4))
    ]
