"""Train and evaluate Mask R-CNN with noisy_mask's head: detectron2's `tools/train_net.py`, plus

- COCO-format datasets registered from the config or the command line, no code needed:
  `DATASETS.REGISTER_COCO` or `--register-coco NAME JSON IMAGE_DIR`;
- the CPU when CUDA is missing, and `--num-gpus N` on the CPU too (N processes, gloo);
- the registered datasets checked before any model is built (`noisy_mask.data.checks`);
- checkpoints written atomically, so a killed run resumes with `--resume` (`noisy_mask.engine.checkpoint`);
- a non-finite loss reported with its terms and iteration (`noisy_mask.engine.divergence`);
- one run at a time in an OUTPUT_DIR: a second run into it is refused (`noisy_mask.engine.lock`);
- `SOLVER.AMP.ENABLED` without CUDA refused before any model is built;
- TensorBoard's event files only where tensorboard is installed (metrics.json and the console
  always).

    python -m noisy_mask.train_net --config-file configs/shapes/mask_rcnn_R18_FPN_shapes_dice.yaml
    python -m noisy_mask.train_net --config-file CONFIG --num-gpus 4 MODEL.ROI_MASK_HEAD.LOSS dice
    python -m noisy_mask.train_net --config-file CONFIG --eval-only MODEL.WEIGHTS output/model_final.pth
"""
import functools
import logging
import os
import weakref

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.engine import (
    DefaultTrainer,
    TrainerBase,
    create_ddp_model,
    default_argument_parser,
    default_setup,
    default_writers,
)
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.events import TensorboardXWriter
from detectron2.utils.logger import setup_logger

from noisy_mask import add_noisy_mask_config, check_noisy_mask_config
from .checkpoint import AtomicCheckpointer
from ..data.checks import check_registered_datasets
from ..data.register import register_coco_datasets
from .divergence import checked_trainer_class
from .lock import hold_output_dir_on_each_machine
from ..utils.atomic import write_json_atomic
from ..utils.run_folders import EVAL_RESULTS_FILE
from ..evaluation.evaluator import CleanMaskEvaluator

logger = logging.getLogger("noisy_mask")


@functools.lru_cache(maxsize=None)
def tensorboard_available() -> bool:
    """Whether `torch.utils.tensorboard` imports (it needs the tensorboard package); asked, and
    a missing one logged, once per process."""
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        logger.info(
            "tensorboard is not installed: no TensorBoard event files (metrics.json and "
            "the console have every metric)"
        )
        return False
    return True


def metric_writers(output_dir: str, max_iter: int) -> list:
    """detectron2's `default_writers` (the console, metrics.json, TensorBoard), without
    TensorBoard where tensorboard is not installed: its writer imports it only at its first write
    and would stop the training there."""
    writers = default_writers(output_dir, max_iter)
    if tensorboard_available():
        return writers
    return [writer for writer in writers if not isinstance(writer, TensorboardXWriter)]


class Trainer(DefaultTrainer):
    def __init__(self, cfg):
        # DefaultTrainer.__init__, except that a CPU model is wrapped in DDP without `device_ids`
        # (detectron2 passes the local rank, which DistributedDataParallel rejects for CPU
        # modules), the trainer names non-finite loss terms, and checkpoints are atomic.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        ddp_options = {"device_ids": None} if cfg.MODEL.DEVICE == "cpu" else {}
        model = create_ddp_model(model, broadcast_buffers=False, **ddp_options)
        self._trainer = checked_trainer_class(cfg.SOLVER.AMP.ENABLED)(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = AtomicCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.checkpointer.remove_stale_temp_files()
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def build_writers(self):
        return metric_writers(self.cfg.OUTPUT_DIR, self.max_iter)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        # Boundary AP's band: TEST.BOUNDARY_DILATION_RATIO, checked by check_noisy_mask_config.
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        ratio = cfg.TEST.BOUNDARY_DILATION_RATIO
        return CleanMaskEvaluator(dataset_name, output_folder, boundary_dilation_ratio=ratio)


def share_cpu_cores(device: str, num_processes: int) -> None:
    """Give each of the `num_processes` CPU processes of this machine its share of the cores."""
    if device == "cpu" and num_processes > 1:
        # Without this each process would start one thread per core.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // num_processes))


def refuse_amp_without_cuda(enabled: bool, key: str, off: str) -> None:
    """Raise ValueError naming `key` if mixed precision is asked for without CUDA: detectron2's
    AMPTrainer asserts CUDA only at the first iteration, after the model is built.

    Args:
        enabled: the value of `key`.
        key: "SOLVER.AMP.ENABLED" or "train.amp.enabled".
        off: the override that turns it off: "SOLVER.AMP.ENABLED False",
            "train.amp.enabled=False".
    """
    if enabled and not torch.cuda.is_available():
        raise ValueError(
            f"{key} is True, but CUDA is not available: mixed precision training (detectron2's "
            f"AMPTrainer) needs a GPU. Add {off} to train in float32 on the CPU"
        )


def setup(args):
    cfg = get_cfg()
    add_noisy_mask_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.DATASETS.REGISTER_COCO = list(cfg.DATASETS.REGISTER_COCO) + list(args.register_coco or [])
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("CUDA is not available: running on the CPU (MODEL.DEVICE cpu)")
        cfg.MODEL.DEVICE = "cpu"
    refuse_amp_without_cuda(
        cfg.SOLVER.AMP.ENABLED, "SOLVER.AMP.ENABLED", off="SOLVER.AMP.ENABLED False"
    )
    check_noisy_mask_config(cfg)
    cfg.freeze()
    # Before anything is written there (default_setup writes config.yaml and the logs).
    hold_output_dir_on_each_machine(cfg.OUTPUT_DIR, "OUTPUT_DIR")
    default_setup(cfg, args)
    share_cpu_cores(cfg.MODEL.DEVICE, args.num_gpus)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="noisy_mask")
    register_coco_datasets(cfg.DATASETS.REGISTER_COCO)
    check_registered_datasets(cfg)  # before any model is built: a bad json fails in seconds
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = Trainer.test(cfg, model)
    else:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
        results = getattr(trainer, "_last_eval_results", None)
    if comm.is_main_process() and results:
        verify_results(cfg, results)
        # The final metrics in one file, for scripts (metrics.json holds them per iteration).
        write_json_atomic(os.path.join(cfg.OUTPUT_DIR, EVAL_RESULTS_FILE), results)
    return results


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument(
        "--register-coco",
        nargs=3,
        action="append",
        metavar=("NAME", "JSON", "IMAGE_DIR"),
        help="register a COCO-format dataset under NAME (repeatable)",
    )
    return parser
