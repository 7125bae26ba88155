"""Train and evaluate from a LazyConfig `.py` file: detectron2's `tools/lazyconfig_train_net.py`,
plus what `noisy_mask.engine.trainer` adds to the YAML path where it applies: `--register-coco`,
the CPU when CUDA is missing (and N CPU processes with `--num-gpus N`), `train.amp.enabled` refused
without CUDA, one run at a time in `train.output_dir`, atomic checkpoints, non-finite losses named
(with the advice in lazy keys), and the final metrics in `train.output_dir/eval_results.json`.

The config needs `model`, `dataloader.{train,test,evaluator}`, `optimizer`, `lr_multiplier` and
`train` as in detectron2's `configs/common/train.py`:

    python -m noisy_mask.train_net --config-file mask_rcnn_R_50_FPN_1x_dice.py \
        --register-coco my_train train.json images/ dataloader.train.dataset.names=my_train
"""

import logging
import os
import warnings
from typing import Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import create_ddp_model, default_setup, hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from omegaconf import DictConfig

from ..data.register import register_coco_datasets
from ..utils.atomic import write_json_atomic
from ..utils.run_folders import EVAL_RESULTS_FILE
from .checkpoint import AtomicCheckpointer
from .divergence import LAZY_ADVICE, checked_trainer_class
from .lock import hold_output_dir_on_each_machine
from .trainer import metric_writers, refuse_amp_without_cuda, share_cpu_cores

logger = logging.getLogger("noisy_mask")


def load_lazy_config(args) -> DictConfig:
    """`args.config_file` with `args.opts` (`key=value`) applied, on the CPU if CUDA is missing."""
    with warnings.catch_warnings():
        # detectron2.model_zoo, which lazy configs import, imports pkg_resources (setuptools < 81).
        warnings.filterwarnings(
            "ignore", message="pkg_resources is deprecated as an API", category=UserWarning
        )
        cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    if cfg.train.device.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on the CPU (train.device=cpu)")
        cfg.train.device = "cpu"
    return cfg


def setup(args) -> DictConfig:
    cfg = load_lazy_config(args)
    amp = cfg.train.get("amp", {}).get("enabled", False)
    refuse_amp_without_cuda(amp, "train.amp.enabled", off="train.amp.enabled=False")
    # Before anything is written there (default_setup writes config.yaml and the logs).
    hold_output_dir_on_each_machine(cfg.train.output_dir, "train.output_dir")
    default_setup(cfg, args)
    share_cpu_cores(cfg.train.device, args.num_gpus)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="noisy_mask")
    register_coco_datasets(args.register_coco or [])
    return cfg


def do_test(cfg: DictConfig, model) -> dict:
    """Evaluate on `dataloader.test` with `dataloader.evaluator`; {} if the config has none."""
    if "evaluator" not in cfg.dataloader:
        return {}
    results = inference_on_dataset(
        model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
    )
    if comm.is_main_process():
        print_csv_format(results)
    return results


def ddp(cfg: DictConfig, model):
    # A CPU module takes no `device_ids` (detectron2 passes the local rank, which DDP rejects).
    options = dict(cfg.train.get("ddp", {}))
    if cfg.train.device == "cpu":
        options["device_ids"] = None
    return create_ddp_model(model, **options)


def metric_writer(cfg: DictConfig) -> hooks.PeriodicWriter:
    """metrics.json, the console and (where installed) TensorBoard, every `train.log_period`
    iterations."""
    writers = metric_writers(cfg.train.output_dir, cfg.train.max_iter)
    return hooks.PeriodicWriter(writers, period=cfg.train.log_period)


def do_train(args, cfg: DictConfig) -> dict:
    """Train per `cfg.train`, evaluate every `train.eval_period` iterations and at the end;
    return the last evaluation."""
    model = instantiate(cfg.model)
    logger.info(f"Model:\n{model}")
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    model = ddp(cfg, model)
    trainer = checked_trainer_class(cfg.train.amp.enabled)(
        model, train_loader, optimizer, advice=LAZY_ADVICE
    )
    checkpointer = AtomicCheckpointer(
        model, cfg.train.output_dir, optimizer=optimizer, trainer=trainer
    )
    checkpointer.remove_stale_temp_files()
    last_results: dict = {}

    def evaluate() -> dict:
        last_results.clear()
        last_results.update(do_test(cfg, model))
        return last_results

    main = comm.is_main_process()  # the only one to write checkpoints and metric files
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if main else None,
            hooks.EvalHook(cfg.train.eval_period, evaluate),  # after the checkpoint, as detectron2
            metric_writer(cfg) if main else None,
        ]
    )
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    # A checkpoint stores the iteration that had just finished.
    start_iter = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    trainer.train(start_iter, cfg.train.max_iter)
    return dict(last_results)


def main(args) -> Optional[dict]:
    cfg = setup(args)
    if args.eval_only:
        model = instantiate(cfg.model)
        model.to(cfg.train.device)
        model = ddp(cfg, model)
        DetectionCheckpointer(model).load(cfg.train.init_checkpoint)
        results = do_test(cfg, model)
    else:
        results = do_train(args, cfg)
    if comm.is_main_process() and results:
        write_json_atomic(os.path.join(cfg.train.output_dir, EVAL_RESULTS_FILE), results)
    return results
