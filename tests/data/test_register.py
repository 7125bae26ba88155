"""Datasets of DATASETS.REGISTER_COCO before training: the ones a run does not use need not exist,
a used one that is missing is named, and RLE masks under INPUT.MASK_FORMAT "polygon" stop the run
in the checks instead of in a data-loader worker."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.detection_utils import annotations_to_instances
from samples import polygons_mask, rle, write_json

from noisy_mask import add_noisy_mask_config, model_zoo
from noisy_mask.data import generate_shapes_dataset
from noisy_mask.data.checks import DatasetProblemsError, check_registered_datasets
from noisy_mask.data.register import register_coco_datasets
from noisy_mask.engine.trainer import argument_parser

CONFIG = model_zoo.get_config_file("shapes/mask_rcnn_R18_FPN_shapes_bce.yaml")
# What the shapes configs list in DATASETS.REGISTER_COCO, relative to the working directory.
SHAPES_TRAIN_JSON = "datasets/shapes/annotations/instances_train.json"
SHAPES_VAL_JSON = "datasets/shapes/annotations/instances_val.json"


@pytest.fixture(scope="module")
def mine(tmp_path_factory):
    """A small shapes dataset of a user's: 4 training and 2 validation images of 96 px."""
    root = tmp_path_factory.mktemp("mine")
    return generate_shapes_dataset(root, num_train=4, num_val=2, image_size=96, seed=5)


@pytest.fixture
def elsewhere(tmp_path, monkeypatch):
    """A working directory without datasets/shapes: the shapes configs' datasets are absent."""
    monkeypatch.chdir(tmp_path)
    assert not Path(SHAPES_TRAIN_JSON).exists()
    return tmp_path


def setup_cfg(command_line):
    """The config and the dataset checks of train_net's `setup`, in process: the shapes config,
    the command line's --register-coco entries and KEY VALUE overrides."""
    args = argument_parser().parse_args(["--config-file", CONFIG, *command_line])
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.DATASETS.REGISTER_COCO = list(cfg.DATASETS.REGISTER_COCO) + list(args.register_coco or [])
    register_coco_datasets(cfg.DATASETS.REGISTER_COCO)
    return cfg, check_registered_datasets(cfg)


def register_args(name, json_file, image_dir):
    return ["--register-coco", name, str(json_file), str(image_dir)]


# ---------------------------------------------------------------------------------------------
# Used and unused datasets.


def test_datasets_the_run_does_not_use_need_not_exist(mine, elsewhere):
    cfg, dropped = setup_cfg(
        register_args("mine_train", mine["train_json"], mine["train_images"])
        + register_args("mine_val", mine["val_json"], mine["val_images"])
        + ["DATASETS.TRAIN", "('mine_train',)", "DATASETS.TEST", "('mine_val',)"]
    )
    assert dropped == {}
    assert [entry[0] for entry in cfg.DATASETS.REGISTER_COCO] == [
        "shapes_train", "shapes_val", "mine_train", "mine_val",
    ]  # fmt: skip
    # The absent ones are registered all the same; loading one names it and its file.
    assert MetadataCatalog.get("shapes_train").json_file == SHAPES_TRAIN_JSON
    with pytest.raises(FileNotFoundError) as error:
        DatasetCatalog.get("shapes_train")
    assert (
        str(error.value)
        == f"DATASETS.REGISTER_COCO 'shapes_train': no annotation file {SHAPES_TRAIN_JSON}"
    )
    # The used ones load: 4 training images.
    assert len(DatasetCatalog.get("mine_train")) == 4


def test_an_unused_dataset_is_not_validated(mine, elsewhere):
    broken = write_json(elsewhere / "broken.json", {"images": []})  # no annotations, categories
    cfg, _ = setup_cfg(
        register_args("mine_train", mine["train_json"], mine["train_images"])
        + register_args("broken_unused", broken, mine["train_images"])
        + ["DATASETS.TRAIN", "('mine_train',)", "DATASETS.TEST", "()"]
    )
    # ... but it is as soon as a run uses it.
    cfg.defrost()
    cfg.DATASETS.TEST = ("broken_unused",)
    with pytest.raises(DatasetProblemsError, match="dataset 'broken_unused' .*: 2 problems"):
        check_registered_datasets(cfg)


def test_a_used_dataset_that_is_absent_is_named(mine, elsewhere):
    # DATASETS.TEST is still the config's ('shapes_val',)
    with pytest.raises(FileNotFoundError) as error:
        setup_cfg(
            register_args("mine_train", mine["train_json"], mine["train_images"])
            + ["DATASETS.TRAIN", "('mine_train',)"]
        )
    assert str(error.value) == (
        f"DATASETS.REGISTER_COCO 'shapes_val': no annotation file {SHAPES_VAL_JSON} (used in "
        "DATASETS.TEST)"
    )
    # Both absent, one used twice: each named with what uses it.
    with pytest.raises(FileNotFoundError) as error:
        setup_cfg(["DATASETS.TEST", "('shapes_train', 'shapes_val')"])
    assert str(error.value).splitlines() == [
        f"DATASETS.REGISTER_COCO 'shapes_train': no annotation file {SHAPES_TRAIN_JSON} (used in "
        "DATASETS.TRAIN and DATASETS.TEST)",
        f"DATASETS.REGISTER_COCO 'shapes_val': no annotation file {SHAPES_VAL_JSON} (used in "
        "DATASETS.TEST)",
    ]
    # An annotation file without its image folder.
    absent = elsewhere / "no_images"
    with pytest.raises(FileNotFoundError) as error:
        setup_cfg(
            register_args("mine_no_images", mine["train_json"], absent)
            + ["DATASETS.TRAIN", "('mine_no_images',)", "DATASETS.TEST", "()"]
        )
    assert str(error.value) == (
        f"DATASETS.REGISTER_COCO 'mine_no_images': no image folder {absent} (used in "
        "DATASETS.TRAIN)"
    )


# ---------------------------------------------------------------------------------------------
# RLE masks and INPUT.MASK_FORMAT.


def with_rle_masks(mine, path, ids, iscrowd=0):
    """The training json of `mine` with the annotations of `ids` as RLEs (iscrowd `iscrowd`)."""
    data = json.loads(Path(mine["train_json"]).read_text())
    images = {image["id"]: image for image in data["images"]}
    for ann in data["annotations"]:
        if ann["id"] in ids:
            image = images[ann["image_id"]]
            mask = polygons_mask(ann["segmentation"], image["height"], image["width"])
            ann["segmentation"], ann["iscrowd"] = rle(mask), iscrowd
    return str(write_json(path, data)), data


def test_rle_masks_under_polygon_format_stop_the_run_in_the_checks(mine, elsewhere):
    data = json.loads(Path(mine["train_json"]).read_text())
    ids = [ann["id"] for ann in data["annotations"][1:4]]
    path, data = with_rle_masks(mine, elsewhere / "rle_train.json", ids)
    first = next(a for a in data["annotations"] if a["id"] == ids[0])
    expected = (
        'INPUT.MASK_FORMAT is "polygon", which cannot train on RLE masks: set INPUT.MASK_FORMAT '
        '"bitmask" (it reads polygons too):\n'
        f"dataset 'rle_train' ({path}): 3 of {len(data['annotations'])} annotations have RLE "
        f"masks (the first: annotation {first['id']}, image {first['image_id']})"
    )
    command_line = register_args("rle_train", path, mine["train_images"]) + [
        "DATASETS.TRAIN", "('rle_train',)", "DATASETS.TEST", "()",
    ]  # fmt: skip
    for validate in ("True", "False"):  # checked even when the json is not validated
        with pytest.raises(DatasetProblemsError) as error:
            setup_cfg(command_line + ["DATASETS.VALIDATE", validate])
        assert str(error.value) == expected
    # "bitmask" trains on them (and on polygons): the checks pass.
    assert setup_cfg(command_line + ["INPUT.MASK_FORMAT", "bitmask"])[1] == {}
    # What the checks spare: detectron2 fails on such a record in a data-loader worker.
    record = {"segmentation": first["segmentation"], "bbox": first["bbox"], "bbox_mode": 1,
              "category_id": 0}  # fmt: skip
    with pytest.raises(ValueError, match="Failed to use mask_format=='polygon'"):
        annotations_to_instances([record], (96, 96), mask_format="polygon")


def test_rle_masks_that_polygon_format_never_reads_pass(mine, elsewhere):
    data = json.loads(Path(mine["train_json"]).read_text())
    ids = [ann["id"] for ann in data["annotations"][:2]]
    # Crowd annotations: detectron2's mapper drops them before reading the masks.
    crowd, _ = with_rle_masks(mine, elsewhere / "crowd.json", ids, iscrowd=1)
    assert (
        setup_cfg(
            register_args("crowd_rle", crowd, mine["train_images"])
            + ["DATASETS.TRAIN", "('crowd_rle',)", "DATASETS.TEST", "()"]
        )[1]
        == {}
    )
    # A dataset of DATASETS.TEST only: the test loader drops the annotations.
    evaluated, _ = with_rle_masks(mine, elsewhere / "evaluated.json", ids)
    assert (
        setup_cfg(
            register_args("mine_train", mine["train_json"], mine["train_images"])
            + register_args("rle_test", evaluated, mine["train_images"])
            + ["DATASETS.TRAIN", "('mine_train',)", "DATASETS.TEST", "('rle_test',)"]
        )[1]
        == {}
    )


# ---------------------------------------------------------------------------------------------
# train_net end to end.


@pytest.mark.slow
def test_train_net_trains_on_registered_data_with_the_shapes_config(mine, tmp_path):
    # The shapes config lists shapes_train and shapes_val, absent from this working directory;
    # the boundary band comes from a KEY VALUE override, as the experiments give it.
    output_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "noisy_mask.train_net", "--config-file", CONFIG,
        *register_args("mine_train", mine["train_json"], mine["train_images"]),
        *register_args("mine_val", mine["val_json"], mine["val_images"]),
        "DATASETS.TRAIN", "('mine_train',)", "DATASETS.TEST", "('mine_val',)",
        "OUTPUT_DIR", str(output_dir), "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2",
        "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()", "INPUT.MIN_SIZE_TRAIN", "(96,)",
        "INPUT.MIN_SIZE_TEST", "96", "DATALOADER.NUM_WORKERS", "0",
        "TEST.BOUNDARY_DILATION_RATIO", "0.01",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")  # one thread: the CPU is shared
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert not (tmp_path / "datasets").exists()
    results = json.loads((output_dir / "eval_results.json").read_text())
    assert 0.0 <= results["segm"]["AP"] <= 100.0
    # the boundary band of the config, recorded with the results: 0.01 * 135.8 (96 px) = 1.36 -> 1
    assert results["boundary"]["dilation_ratio"] == 0.01
    log = (output_dir / "log.txt").read_text()
    assert "Evaluation results for boundary: " in log and "; dilation ratio 0.01 (1 px band)" in log
    assert f"DATASETS.REGISTER_COCO 'shapes_train': no annotation file {SHAPES_TRAIN_JSON}" in log
    metrics = [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]
    assert [m["iteration"] for m in metrics if "loss_mask" in m][-1] == 1
