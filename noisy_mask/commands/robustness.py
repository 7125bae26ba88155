"""Which loss helps at which noise level: a grid of losses x noise levels x seeds, on the built-in
dataset or on yours.

    noisy-mask robustness --output output/robustness                   # built-in grid
    noisy-mask robustness --output output/robustness-smoke --smoke     # a quick subset
    noisy-mask robustness --output DIR --train TRAIN.json TRAIN_IMAGES \\
        --val VAL.json VAL_IMAGES [--weights CHECKPOINT] [--config CONFIG] [KEY VALUE ...]
    noisy-mask robustness --output DIR --levels clean mid --refine    # + refinement

On your data the reference level is your training annotations as they are (`as_is`) and the noise
levels are the presets applied on top; every run is evaluated on your validation split. Without
--config a CPU config is sized from your data; trailing KEY VALUE overrides go to every run. An
interrupted grid resumes; its finished runs are evaluated again, not trained, when the validation
file has changed (your --val, or the built-in --val-images). Writes results.md (with a verdict
per level), results.json and pr_curves_<level>.png into --output
(`noisy_mask.experiments.loss_grid`). With --refine, each noise level's training annotations are
also audited by cross-fitted models, refined, and trained on again
(`noisy_mask.experiments.refinement`; docs/refine.md).
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..engine.dataset_config import write_dataset_config
from ..engine.launcher import Launch, RunsFailedError, Schedule
from ..experiments.levels import AS_IS, LEVELS, Splits, builtin_splits
from ..experiments.loss_grid import run_robustness
from ..experiments.options import BCE_ONLY_LEVELS, BUILTIN_REFERENCE_IMAGES, DEFAULT_LEVELS
from ..experiments.options import DEFAULT_LOSSES, DEFAULT_SEEDS, FINETUNE_CONFIG, GRID, PRETRAIN
from ..experiments.options import SMOKE
from ..experiments.options import USER_LEVELS, USER_LOSSES, USER_MAX_ITER, Grid
from ..experiments.options import check_levels
from ..experiments.options import RefineArm, StartingPoint
from ..experiments.refinement import RefinedCopyMismatchError
from ..refine.options import CHOICES
from ..utils.overrides import check_overrides
from . import COMMANDS, prog
from .arguments import add_launch_arguments, launch_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("robustness"), description=COMMANDS["robustness"],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--train", nargs=2, metavar=("JSON", "IMAGE_DIR"),
                        help="your training split; its annotations are the reference level as_is")
    parser.add_argument("--val", nargs=2, metavar=("JSON", "IMAGE_DIR"),
                        help="your validation split, on which every run is evaluated")
    parser.add_argument("--weights", default="",
                        help="a detectron2 checkpoint every run starts from (default: from "
                             "scratch with --train; on the built-in data a detector pretrained "
                             "without masks, made once under --output)")
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
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help=f"default: {' '.join(map(str, DEFAULT_SEEDS))} (0 with --smoke)")
    parser.add_argument("--clean-losses", nargs="+", default=None,
                        help="losses trained at the reference level (default: all of --losses); "
                             "the recovered share needs only bce there")
    parser.add_argument("--max-iter", type=int, default=None,
                        help=f"iterations per run (default {GRID.max_iter}; "
                             f"{SMOKE['schedule'].max_iter} with --smoke; with --train "
                             f"{USER_MAX_ITER['scratch']} from scratch, "
                             f"{USER_MAX_ITER['weights']} from --weights)")
    parser.add_argument("--smoke", action="store_true",
                        help=f"built-in data: a small subset, by default "
                             f"{' '.join(SMOKE['losses'])} at {' '.join(SMOKE['levels'])}, seed 0 "
                             "(--losses, --levels and --seeds still choose)")
    parser.add_argument("--pretrain-iters", type=int, default=None,
                        help=f"built-in data: iterations of the detector pretrained without "
                             f"masks (default {PRETRAIN.max_iter}; "
                             f"{SMOKE['pretrain'].max_iter} with --smoke)")
    parser.add_argument("--val-images", type=int, default=None,
                        help=f"built-in data: validation images (default {GRID.num_val}; "
                             f"{SMOKE['schedule'].num_val} with --smoke); finished runs are "
                             "evaluated again on a new number, not trained again")
    parser.add_argument("--shapes-variant", choices=("plain", "hard"), default="plain",
                        help="built-in data: plain shapes, or hard ones (textured, low contrast, "
                             "cluttered background, touching); the detector is pretrained on "
                             "the same variant")
    refine = parser.add_argument_group(
        "refinement arm", "at each noise level and seed, audit the noisy training annotations "
        "with cross-fitted models, refine them (`noisy_mask.audit`, `noisy_mask.refine`) and "
        "train on the copy (level <level>_refined)")
    refine.add_argument("--refine", action="store_true", help="add the refinement arm")
    refine.add_argument("--refine-folds", type=int, default=RefineArm.folds,
                        help=f"cross-fitted models per audit (default {RefineArm.folds})")
    refine.add_argument("--refine-source", choices=CHOICES, default=RefineArm.source,
                        help="the refine tool's --source (default auto)")
    refine.add_argument("--refine-reference", metavar="REF_JSON", default=None,
                        help="with --train: a few of your training images annotated with care "
                             "(COCO), which decide the source")
    refine.add_argument("--refine-reference-images", type=int, default=BUILTIN_REFERENCE_IMAGES,
                        help="built-in data: the clean masks of this many training images are "
                             f"the reference (default {BUILTIN_REFERENCE_IMAGES}; 0: none, the "
                             "label-free choice)")
    refine.add_argument("--refine-losses", nargs="+", default=None,
                        help="trained on the refined annotations (default: bce and the level's "
                             "best loss by the grid)")
    refine.add_argument("--keep-missing", action="store_true",
                        help="do not add the confident predictions that no annotation covers")
    refine.add_argument("--refine-max-iou", type=float, default=RefineArm.max_iou,
                        help="the refine tool's --max-iou: new masks for the annotations the "
                             f"audit matches below it (default {RefineArm.max_iou:g}; 1: every "
                             "matched one, each source still judged on them)")
    refine.add_argument("--refine-fix-classes", action="store_true",
                        help="the refine tool's --fix-classes: take the model's confident "
                             "classes, where the reference shows they fix more than they break "
                             "(a sign test at 0.05)")
    add_launch_arguments(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                        help="config overrides passed to every run")
    return parser


def refine_arm(parser: argparse.ArgumentParser, args, builtin: bool) -> Optional[RefineArm]:
    """The refinement arm the flags ask for, or None; errors for flags without --refine."""
    given = [flag for flag, value in (("--refine-reference", args.refine_reference),
                                      ("--refine-losses", args.refine_losses),
                                      ("--keep-missing", args.keep_missing),
                                      ("--refine-fix-classes", args.refine_fix_classes),
                                      ("--refine-max-iou",
                                       args.refine_max_iou != RefineArm.max_iou))
             if value]
    if not args.refine:
        if given:
            parser.error(f"{given[0]} goes with --refine")
        return None
    if args.refine_reference and builtin:
        parser.error("--refine-reference goes with --train (the built-in data's reference is "
                     "--refine-reference-images)")
    arm = RefineArm(
        folds=args.refine_folds, source=args.refine_source, reference=args.refine_reference,
        reference_images=args.refine_reference_images if builtin else 0,
        add_missing=not args.keep_missing, fix_classes=args.refine_fix_classes,
        max_iou=args.refine_max_iou,
    )  # fmt: skip
    return checked(parser, arm.check)


def checked(parser: argparse.ArgumentParser, check, *args):
    """`check(*args)`, an experiment's rule: its ValueError is a usage error."""
    try:
        return check(*args)
    except ValueError as e:
        parser.error(str(e))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_overrides(parser, args.opts)
    command = "noisy-mask robustness " + " ".join(sys.argv[1:] if argv is None else argv)
    launch = launch_from_args(parser, args)
    grid = (_user_grid(parser, args, launch) if args.train or args.val
            else _builtin_grid(parser, args, launch))
    try:
        table = run_robustness(grid, command)
    except RefinedCopyMismatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except RunsFailedError as e:  # each failed run named with its log; the others ran
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(table)
    return 0


def _builtin_grid(parser: argparse.ArgumentParser, args, launch: Launch) -> Grid:
    if args.config:
        parser.error("--config goes with --train and --val (your data)")
    if args.weights and args.pretrain_iters:
        parser.error("--pretrain-iters makes the detector that --weights replaces: give one")
    arm = refine_arm(parser, args, builtin=True)
    if args.smoke:  # its subset, unless the flags name others
        args.losses = args.losses or list(SMOKE["losses"])
        args.levels = args.levels or list(SMOKE["levels"])
        args.seeds = args.seeds or list(SMOKE["seeds"])
    levels = args.levels or list(DEFAULT_LEVELS)
    checked(parser, check_levels, levels, "clean")  # before the built-in data is written
    base = SMOKE["schedule"] if args.smoke else GRID
    if args.val_images is not None and args.val_images < 1:
        parser.error("--val-images must be at least 1")
    schedule = Schedule(base.num_train, args.val_images or base.num_val,
                        args.max_iter or base.max_iter)
    pretrain = SMOKE["pretrain"] if args.smoke else PRETRAIN
    if args.pretrain_iters:
        pretrain = Schedule(pretrain.num_train, 0, args.pretrain_iters)
    start = StartingPoint(weights=args.weights, pretrain=None if args.weights else pretrain,
                          variant=args.shapes_variant)
    return Grid(args.output, builtin_splits(args.output, schedule, args.shapes_variant),
                args.losses or list(DEFAULT_LOSSES), levels, args.seeds or list(DEFAULT_SEEDS), schedule, start,
                FINETUNE_CONFIG, args.opts, args.clean_losses, launch, arm,
                args.refine_losses)


def _user_grid(parser: argparse.ArgumentParser, args, launch: Launch) -> Grid:
    if not (args.train and args.val):
        parser.error("--train and --val go together")
    for flag, value in (("--shapes-variant", args.shapes_variant != "plain"),
                        ("--pretrain-iters", args.pretrain_iters),
                        ("--val-images", args.val_images)):
        if value:
            parser.error(f"{flag} is for the built-in data; not with --train")
    arm = refine_arm(parser, args, builtin=False)
    if args.smoke:
        parser.error("--smoke is the built-in data's quick subset; with --train use --levels, "
                     "--losses, --seeds and --max-iter")
    for flag, (json_path, image_dir) in (("--train", args.train), ("--val", args.val)):
        if not Path(json_path).is_file():
            parser.error(f"{flag}: annotation file {json_path} not found")
        if not Path(image_dir).is_dir():
            parser.error(f"{flag}: image folder {image_dir} not found")
    levels = args.levels or list(USER_LEVELS)
    checked(parser, check_levels, levels, AS_IS)
    splits = Splits(*args.train, *args.val, reference=AS_IS)
    config = args.config
    if config is None:
        config = write_dataset_config(args.train[0], args.train[1], args.output / "config.yaml")
        print(f"Config sized from your data: {config}", flush=True)
    max_iter = args.max_iter or USER_MAX_ITER["weights" if args.weights else "scratch"]
    # num_train and num_val are the built-in dataset's sizes; the user's files decide here.
    return Grid(args.output, splits, args.losses or list(USER_LOSSES), levels,
                args.seeds or list(DEFAULT_SEEDS), Schedule(0, 0, max_iter), StartingPoint(weights=args.weights), config, args.opts,
                args.clean_losses, launch, arm, args.refine_losses)
