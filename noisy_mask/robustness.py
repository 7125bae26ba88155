"""Which loss helps at which noise level: a grid of losses x noise levels x seeds, on the built-in
dataset or on yours.

    python -m noisy_mask.robustness --output output/robustness                   # built-in grid
    python -m noisy_mask.robustness --output output/robustness-smoke --smoke     # a quick subset
    python -m noisy_mask.robustness --output DIR --train TRAIN.json TRAIN_IMAGES \\
        --val VAL.json VAL_IMAGES [--weights CHECKPOINT] [--config CONFIG] [KEY VALUE ...]

On your data the reference level is your training annotations as they are (`as_is`) and the noise
levels are the presets applied on top; every run is evaluated on your validation split. Without
--config a CPU config is sized from your data; trailing KEY VALUE overrides go to every run. An
interrupted grid resumes. Writes results.md (with a verdict per level), results.json and
pr_curves_<level>.png into --output (`noisy_mask.experiments.robustness`).
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .experiments.levels import AS_IS, LEVELS, REFERENCE_LEVELS, Splits
from .experiments.robustness import (
    BCE_ONLY_LEVELS,
    DEFAULT_LEVELS,
    DEFAULT_LOSSES,
    FINETUNE_CONFIG,
    GRID,
    PRETRAIN,
    SMOKE,
    USER_LEVELS,
    USER_LOSSES,
    USER_MAX_ITER,
    StartingPoint,
    run_robustness,
)
from .experiments.runner import DEFAULT_JOBS, Schedule
from .utils.overrides import check_overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m noisy_mask.robustness", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--train", nargs=2, metavar=("JSON", "IMAGE_DIR"),
                        help="your training split; its annotations are the reference level as_is")
    parser.add_argument("--val", nargs=2, metavar=("JSON", "IMAGE_DIR"),
                        help="your validation split, on which every run is evaluated")
    parser.add_argument("--weights", default="",
                        help="with --train: a detectron2 checkpoint every run starts from "
                             "(default: from scratch)")
    parser.add_argument("--config", type=Path, default=None,
                        help="with --train: any detectron2 config (default: a CPU config sized "
                             "from your data, written to OUTPUT/config.yaml)")
    parser.add_argument("--losses", nargs="+", default=None,
                        help=f"default: {' '.join(DEFAULT_LOSSES)}; with --train "
                             f"{' '.join(USER_LOSSES)}")
    levels = [level for level in LEVELS + (AS_IS,)]
    parser.add_argument("--levels", nargs="+", default=None, choices=levels,
                        help=f"default: {' '.join(DEFAULT_LEVELS)}; with --train "
                             f"{' '.join(USER_LEVELS)}. mid_outlines and mid_no_outlines split "
                             "mid into its mask part and the rest; at "
                             f"{', '.join(BCE_ONLY_LEVELS)} only bce is trained")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--clean-losses", nargs="+", default=None,
                        help="losses trained at the reference level (default: all of --losses); "
                             "the recovered share needs only bce there")
    parser.add_argument("--max-iter", type=int, default=None,
                        help=f"iterations per run (default {GRID.max_iter}; "
                             f"{SMOKE['schedule'].max_iter} with --smoke; with --train "
                             f"{USER_MAX_ITER['scratch']} from scratch, "
                             f"{USER_MAX_ITER['weights']} from --weights)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="runs side by side")
    parser.add_argument("--smoke", action="store_true",
                        help=f"built-in data: only {SMOKE['losses']} at {SMOKE['levels']}, seed 0")
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                        help="config overrides passed to every run")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_overrides(parser, args.opts)
    command = "python -m noisy_mask.robustness " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.train or args.val:
        return _user_grid(parser, args, command)
    for flag in ("weights", "config"):
        if getattr(args, flag):
            parser.error(f"--{flag} goes with --train and --val (your data)")
    if args.smoke:
        args.losses, args.levels, args.seeds = SMOKE["losses"], SMOKE["levels"], SMOKE["seeds"]
    levels = args.levels or list(DEFAULT_LEVELS)
    if AS_IS in levels:
        parser.error(f"level {AS_IS} is your data's reference: give --train and --val")
    base = SMOKE["schedule"] if args.smoke else GRID
    schedule = Schedule(base.num_train, base.num_val, args.max_iter or base.max_iter)
    table = run_robustness(
        args.output, args.losses or list(DEFAULT_LOSSES), levels, args.seeds, schedule,
        args.jobs, args.clean_losses, SMOKE["pretrain"] if args.smoke else PRETRAIN, command,
        config=FINETUNE_CONFIG, overrides=args.opts,
    )
    print(table)
    return 0


def _user_grid(parser: argparse.ArgumentParser, args, command: str) -> int:
    from .experiments.dataset_config import write_dataset_config

    if not (args.train and args.val):
        parser.error("--train and --val go together")
    if args.smoke:
        parser.error("--smoke is the built-in data's quick subset; with --train use --levels, "
                     "--losses, --seeds and --max-iter")
    for flag, (json_path, image_dir) in (("--train", args.train), ("--val", args.val)):
        if not Path(json_path).is_file():
            parser.error(f"{flag}: annotation file {json_path} not found")
        if not Path(image_dir).is_dir():
            parser.error(f"{flag}: image folder {image_dir} not found")
    levels = args.levels or list(USER_LEVELS)
    misplaced = [level for level in levels if level in REFERENCE_LEVELS and level != AS_IS]
    if misplaced:
        parser.error(f"your data has no clean masks: its reference level is {AS_IS}, not "
                     f"{', '.join(misplaced)}")
    splits = Splits(*args.train, *args.val, reference=AS_IS)
    config = args.config
    if config is None:
        config = write_dataset_config(args.train[0], args.train[1], args.output / "config.yaml")
        print(f"Config sized from your data: {config}", flush=True)
    start = StartingPoint(weights=args.weights)
    max_iter = args.max_iter or USER_MAX_ITER["weights" if args.weights else "scratch"]
    # num_train and num_val are the built-in dataset's sizes; the user's files decide here.
    schedule = Schedule(0, 0, max_iter)
    table = run_robustness(
        args.output, args.losses or list(USER_LOSSES), levels, args.seeds, schedule, args.jobs,
        args.clean_losses, command=command, splits=splits, start=start, config=config,
        overrides=args.opts,
    )
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
