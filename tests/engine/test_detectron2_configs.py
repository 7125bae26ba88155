"""noisy_mask's head in detectron2's own configs, built and trained with `noisy_mask.train_net`:
a stock model-zoo YAML with two overrides, and the lazy config shipped in noisy_mask/configs/,
with what train_net adds to lazy runs (the output folder's lock, divergence advice in lazy keys)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from detectron2 import model_zoo as d2_model_zoo
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.modeling import build_model

from noisy_mask import NoisyMaskRCNNConvUpsampleHead, add_noisy_mask_config, check_noisy_mask_config
from noisy_mask import model_zoo
from noisy_mask.engine.divergence import LAZY_ADVICE
from noisy_mask.engine.lock import hold_output_dir, release_output_dir
from noisy_mask.losses.table import get_mask_loss

STOCK_YAML = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"
HEAD_OVERRIDES = [
    "MODEL.ROI_MASK_HEAD.NAME",
    "NoisyMaskRCNNConvUpsampleHead",
    "MODEL.ROI_MASK_HEAD.LOSS",
    "dice",
]
LAZY = "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_dice.py"


def stock_cfg(*opts):
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_file(d2_model_zoo.get_config_file(STOCK_YAML))
    cfg.merge_from_list([*opts, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu"])
    return cfg


def assert_dice_head(model):
    head = model.roi_heads.mask_head
    assert type(head) is NoisyMaskRCNNConvUpsampleHead
    assert head.loss_name == "dice"
    assert head.loss_fn is get_mask_loss("dice")


def test_a_stock_config_with_two_overrides_builds_our_head_with_dice():
    cfg = stock_cfg(*HEAD_OVERRIDES)
    check_noisy_mask_config(cfg)
    assert_dice_head(build_model(cfg))


def test_a_stock_config_with_the_loss_but_not_the_head_is_an_error():
    cfg = stock_cfg("MODEL.ROI_MASK_HEAD.LOSS", "dice")
    with pytest.raises(ValueError, match="MODEL.ROI_MASK_HEAD.NAME is 'MaskRCNNConvUpsampleHead'"):
        check_noisy_mask_config(cfg)


def test_the_lazy_config_swaps_only_the_mask_head():
    ours = LazyConfig.load(model_zoo.get_config_file(LAZY))
    stock = d2_model_zoo.get_config(LAZY.replace("_dice.py", ".py"))
    model, stock_model = instantiate(ours.model), instantiate(stock.model)
    assert_dice_head(model)
    assert type(stock_model.roi_heads.mask_head).__name__ == "MaskRCNNConvUpsampleHead"
    # The same parameters and shapes throughout: checkpoints of one load into the other.
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in stock_model.state_dict().items()}
    assert ours.dataloader.evaluator._target_.__name__ == "CleanMaskEvaluator"
    for key in ("optimizer", "lr_multiplier", "train"):
        assert LazyConfig.to_py(ours[key]) == LazyConfig.to_py(stock[key]), key


def test_the_lazy_configs_loss_is_an_override_and_checked_when_built():
    cfg = LazyConfig.load(model_zoo.get_config_file(LAZY))
    cfg = LazyConfig.apply_overrides(cfg, ["model.roi_heads.mask_head.loss_name=sce"])
    assert instantiate(cfg.model.roi_heads.mask_head).loss_fn is get_mask_loss("sce")
    cfg = LazyConfig.apply_overrides(cfg, ["model.roi_heads.mask_head.loss_name=dise"])
    with pytest.raises(Exception, match="dise"):
        instantiate(cfg.model.roi_heads.mask_head)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from noisy_mask.data import generate_shapes_dataset

    return generate_shapes_dataset(
        tmp_path_factory.mktemp("shapes"), num_train=4, num_val=2, image_size=128, seed=1
    )


def run_train_net(config, shapes, opts, tmp_path):
    """(exit status, output) of `python -m noisy_mask.train_net` on the two tiny datasets."""
    cmd = [
        sys.executable, "-m", "noisy_mask.train_net", "--config-file", str(config),
        "--register-coco", "tiny_train", shapes["train_json"], shapes["train_images"],
        "--register-coco", "tiny_val", shapes["val_json"], shapes["val_images"], *opts,
    ]  # fmt: skip
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    return result.returncode, result.stdout + result.stderr


def train_net(config, shapes, opts, tmp_path):
    returncode, log = run_train_net(config, shapes, opts, tmp_path)
    assert returncode == 0, log[-8000:]
    return log


def assert_trained_two_iterations_and_evaluated(output_dir):
    metrics = [json.loads(line) for line in (output_dir / "metrics.json").open()]
    assert [m["iteration"] for m in metrics if "loss_mask" in m] == [1]
    results = json.loads((output_dir / "eval_results.json").read_text())
    for task in ("bbox", "segm", "boundary"):
        assert 0.0 <= results[task]["AP"] <= 100.0
    assert (output_dir / "model_final.pth").is_file()


@pytest.mark.slow
def test_a_stock_config_trains_with_our_head(shapes, tmp_path):
    output_dir = tmp_path / "run"
    train_net(
        d2_model_zoo.get_config_file(STOCK_YAML), shapes,
        [*HEAD_OVERRIDES, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu",
         "DATASETS.TRAIN", "('tiny_train',)", "DATASETS.TEST", "('tiny_val',)",
         "MODEL.ROI_HEADS.NUM_CLASSES", "4", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
         "MODEL.RPN.POST_NMS_TOPK_TRAIN", "50", "MODEL.RPN.POST_NMS_TOPK_TEST", "50",
         "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.MAX_SIZE_TRAIN", "128",
         "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "128",
         "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2", "SOLVER.BASE_LR", "0.001",
         "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(output_dir)],
        tmp_path,
    )  # fmt: skip
    assert_trained_two_iterations_and_evaluated(output_dir)
    # The run's full config builds our head with Dice.
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_file(str(output_dir / "config.yaml"))
    assert_dice_head(build_model(cfg))


LAZY_TINY = [
    "dataloader.train.dataset.names=tiny_train", "dataloader.test.dataset.names=tiny_val",
    "dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0",
    "dataloader.test.num_workers=0",
    "dataloader.train.mapper.augmentations.0.short_edge_length=[128]",
    "dataloader.train.mapper.augmentations.0.max_size=128",
    "dataloader.test.mapper.augmentations.0.short_edge_length=128",
    "dataloader.test.mapper.augmentations.0.max_size=128",
    # GroupNorm: FrozenBN without pretrained statistics lets a random ResNet-50 overflow.
    "model.backbone.bottom_up.stem.norm=GN", "model.backbone.bottom_up.stages.norm=GN",
    "model.roi_heads.num_classes=4", "model.roi_heads.batch_size_per_image=32",
    "model.proposal_generator.post_nms_topk=[50,50]",
    "model.roi_heads.box_predictor.test_score_thresh=0.0",  # detections on every image
    "optimizer.lr=0.001",
]  # fmt: skip


def predictions(output_dir):
    results = json.loads((output_dir / "inference/coco_instances_results.json").read_text())
    return sorted((p["image_id"], p["category_id"], round(p["score"], 4)) for p in results)


@pytest.fixture(scope="module")
def lazy_run(shapes, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("lazy")
    output_dir = tmp_path / "run"
    opts = [
        *LAZY_TINY,
        "train.max_iter=2",
        "train.init_checkpoint=",
        f"train.output_dir={output_dir}",
    ]
    return output_dir, train_net(model_zoo.get_config_file(LAZY), shapes, opts, tmp_path)


@pytest.mark.slow
def test_the_lazy_config_trains_on_a_registered_dataset(shapes, lazy_run):
    output_dir, log = lazy_run
    if not torch.cuda.is_available():
        assert "CUDA is not available: running on the CPU (train.device=cpu)" in log
    assert "Registered dataset 'tiny_train'" in log
    assert_trained_two_iterations_and_evaluated(output_dir)
    val_ids = {image["id"] for image in json.loads(Path(shapes["val_json"]).read_text())["images"]}
    assert {image_id for image_id, _, _ in predictions(output_dir)} == val_ids
    # The run's saved config builds our head with Dice.
    saved = LazyConfig.load(str(output_dir / "config.yaml"))
    assert_dice_head(instantiate(saved.model))


@pytest.mark.slow
def test_the_lazy_config_evaluates_a_checkpoint(shapes, lazy_run, tmp_path):
    output_dir, _ = lazy_run
    opts = [*LAZY_TINY, f"train.init_checkpoint={output_dir / 'model_final.pth'}",
            f"train.output_dir={tmp_path / 'eval'}"]  # fmt: skip
    train_net(model_zoo.get_config_file(LAZY), shapes, ["--eval-only", *opts], tmp_path)
    assert predictions(tmp_path / "eval") == predictions(output_dir)
    again = json.loads((tmp_path / "eval/eval_results.json").read_text())
    assert again == json.loads((output_dir / "eval_results.json").read_text())


@pytest.mark.slow
def test_a_lazy_run_into_a_held_output_dir_is_refused(shapes, tmp_path):
    output_dir = tmp_path / "held"
    hold_output_dir(str(output_dir))  # this process: a live run
    try:
        opts = [*LAZY_TINY, "train.init_checkpoint=", f"train.output_dir={output_dir}"]
        for args in ([], ["--eval-only"]):
            returncode, log = run_train_net(
                model_zoo.get_config_file(LAZY), shapes, [*args, *opts], tmp_path
            )
            assert returncode != 0
            assert (
                f"OutputDirInUseError: train.output_dir {output_dir} is in use by another run "
                f"(pid {os.getpid()} on host "
            ) in log, log[-3000:]
            assert "Model:" not in log and not (output_dir / "config.yaml").exists()
    finally:
        release_output_dir(str(output_dir))


@pytest.mark.slow
def test_a_lazy_runs_non_finite_loss_is_advised_in_lazy_keys(shapes, tmp_path):
    # loss_weight 1e39 is a valid float64 but inf in float32: loss_mask is inf at iteration 0.
    opts = [*LAZY_TINY, "model.roi_heads.mask_head.loss_weight=1e39", "train.max_iter=2",
            "train.init_checkpoint=", f"train.output_dir={tmp_path / 'run'}"]  # fmt: skip
    returncode, log = run_train_net(model_zoo.get_config_file(LAZY), shapes, opts, tmp_path)
    assert returncode != 0
    match = re.search(r"NonFiniteLossError: loss_mask is inf at iteration 0; .*", log)
    assert match, log[-3000:]
    assert match[0].endswith(f"Training stopped: {LAZY_ADVICE}")
