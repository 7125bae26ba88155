"""The options of the experiments: the loss grid (`Grid`), where its runs start
(`StartingPoint`), its refinement arm (`RefineArm`), and their defaults. Each checks its own
rules (`check`), so that a command only turns their ValueError into a usage error."""

from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional, Sequence

from ..engine.launcher import Launch, Schedule, pretrain_detector
from ..model_zoo import get_config_file
from ..refine.options import MAX_IOU, RefineOptions
from .levels import AS_IS, NOISE_LEVELS, REFERENCE_LEVELS, Splits

DEFAULT_LOSSES = ("bce", "dice", "label_smoothing", "svls", "bootstrap_soft", "bce+pairwise_color")
# clean, easy, mid, hard, and mid with clean masks: what a mask loss could win back at mid at most
DEFAULT_LEVELS = NOISE_LEVELS + ("mid_no_outlines",)
# On a user's data: the annotations as they are and the mid preset on top, the losses that did
# best on the built-in grid and the two of the original experiment (30 runs with 3 seeds).
USER_LOSSES = ("bce", "dice", "label_smoothing", "sce", "bce+pairwise_color")
USER_LEVELS = (AS_IS, "mid")
# Three seeds: a spread, and a paired comparison per seed.
DEFAULT_SEEDS = (0, 1, 2)
# Levels whose training masks are clean: only BCE is trained there.
BCE_ONLY_LEVELS = ("mid_no_outlines",)
# Every run fine-tunes one detector, pretrained without masks on 400 clean images of their own
# (shapes seed 1; the grid's images are seed 0), as models are fine-tuned from a model zoo's
# weights: a from-scratch run of 600 iterations reached 46.7 +- 4.8 mask AP on clean masks
# (3 seeds, docs/robustness.md), a fine-tuned one of 300 iterations about 70.
PRETRAIN = Schedule(num_train=400, num_val=0, max_iter=1500)
PRETRAIN_SEED = 1
FINETUNE_CONFIG = Path(get_config_file("shapes/Shapes-R18-FPN-finetune.yaml"))
# 150 validation images: the evaluation's own sampling noise is part of the seed-to-seed spread.
GRID = Schedule(num_train=200, num_val=150, max_iter=300)
# From scratch on a user's data: 600 iterations (300 from given weights).
USER_MAX_ITER = {"scratch": 600, "weights": 300}
# Checks the whole pipeline, not the losses.
SMOKE = dict(losses=("bce", "bce+pairwise_color"), levels=("clean", "mid"), seeds=(0,),
             schedule=Schedule(num_train=100, num_val=50, max_iter=150),
             pretrain=Schedule(num_train=200, num_val=0, max_iter=300))
# On the built-in data: the clean masks of 5 training images stand for the few images a user
# annotates with care (docs/refine.md: without a reference a weak model finds no source).
BUILTIN_REFERENCE_IMAGES = 5

@dataclass(frozen=True)
class RefineArm:
    """How the arm refines: `folds` cross-fitted models; the refine tool's `source`; a reference
    file (`reference`, a COCO file of some training images annotated with care) or, for data
    whose clean masks are known, the clean annotations of the first `reference_images` training
    images as that reference; `add_missing`: add the confident predictions no annotation covers
    (the noise deletes instances); `fix_classes`: correct the classes the model disputes, where
    the reference shows that fixes more than it breaks, beyond chance; `max_iou`: the refine
    tool's --max-iou (1: every matched annotation may get a new mask, not only the suspicious)."""

    folds: int = 2
    source: str = "auto"
    reference: Optional[str] = None
    reference_images: int = 0
    add_missing: bool = True
    fix_classes: bool = False
    max_iou: float = MAX_IOU

    def check(self) -> "RefineArm":
        """ValueError, naming the grid command's option, unless the arm can run: at least 2
        folds, a reference file that exists, and refine options the refine tool takes."""
        if self.folds < 2:
            raise ValueError("--refine-folds must be at least 2")
        if self.reference and not Path(self.reference).is_file():
            raise ValueError(f"--refine-reference: file {self.reference} not found")
        try:
            self.options()
        except ValueError as e:  # the refine tool's own checks, e.g. max_iou above min_iou
            raise ValueError(f"--refine-max-iou: {e}") from None
        return self

    def options(self) -> RefineOptions:
        """The refine tool's options for this arm."""
        return RefineOptions(source=self.source, add_missing=self.add_missing,
                             fix_classes=self.fix_classes, max_iou=self.max_iou).check()

    def describe(self) -> str:
        if self.reference:
            how = f"reference {self.reference}"
        elif self.reference_images:
            how = f"the clean masks of {self.reference_images} training images as the reference"
        else:
            how = "no reference (label-free evidence)"
        options = self.options()
        scope = (f"the masks of audited mask IoU in {options.iou_range()}"
                 if options.max_iou < 1 else "every matched mask")
        return (f"audited with {self.folds} cross-fitted folds, refined with source "
                f"{self.source} ({how}; {scope})"
                f"{', missing instances added' if self.add_missing else ''}"
                f"{', classes corrected where the reference agrees' if self.fix_classes else ''}")


@dataclass(frozen=True)
class StartingPoint:
    """Where every run of a grid starts: `weights` (a detectron2 checkpoint; heads whose shapes
    differ are re-initialized, as detectron2 does), a detector pretrained without masks on
    built-in images of its own with the `pretrain` schedule (made when a run first needs it), or,
    with neither, from scratch."""

    weights: str = ""
    pretrain: Optional[Schedule] = None
    variant: str = "plain"  # of the built-in images the detector is pretrained on

    def describe(self) -> str:
        if self.weights:
            return f"fine-tuned from {self.weights}"
        if self.pretrain is not None:
            return (f"fine-tuned from a detector pretrained {self.pretrain.max_iter} iterations"
                    + (f" on {self.variant} shapes" if self.variant != "plain" else ""))
        return "trained from scratch"

    def weights_opts(self, output_dir: Path, config: Path, launch: Launch = Launch()) -> List[str]:
        """The MODEL.WEIGHTS override of every run (pretraining the detector, alone where
        `launch` says, if needed)."""
        if self.pretrain is not None:
            weights = pretrain_detector(output_dir, self.pretrain, PRETRAIN_SEED, config,
                                        launch, variant=self.variant)
            return ["MODEL.WEIGHTS", str(weights)]
        return ["MODEL.WEIGHTS", self.weights]


@dataclass(frozen=True)
class Grid:
    """A loss grid: every (loss, level, seed) on `splits`, each run trained `schedule` from
    `start` with `config` and `overrides` (KEY VALUE, after the grid's own), where `launch` says,
    into `output_dir`/runs/<level>/seed<seed>/<loss>. At the reference level only `clean_losses`
    are trained (None: all of `losses`), at BCE_ONLY_LEVELS only bce. With `refine`, each noise
    level is also refined per seed and `refine_losses` (None: bce and the level's best loss by the
    grid) trained on the copy, as the level `<level>_refined`."""

    output_dir: Path
    splits: Splits
    losses: Sequence[str]
    levels: Sequence[str]
    seeds: Sequence[int]
    schedule: Schedule = GRID
    start: StartingPoint = StartingPoint(pretrain=PRETRAIN)
    config: Path = FINETUNE_CONFIG
    overrides: Sequence[str] = ()
    clean_losses: Optional[Sequence[str]] = None
    launch: Launch = Launch(jobs=1)
    refine: Optional[RefineArm] = None
    refine_losses: Optional[Sequence[str]] = None

    def check(self) -> "Grid":
        """The grid's rules (`check_levels`), as ValueError naming the option."""
        check_levels(self.levels, self.splits.reference)
        return self

    def with_bce(self) -> "Grid":
        """The grid with bce among its losses (and its clean losses): every share is measured
        against it."""
        clean = self.clean_losses
        return replace(self, losses=_with_bce(self.losses),
                       clean_losses=None if clean is None else _with_bce(clean))

    def run_dir(self, level: str, seed: int, loss: str) -> Path:
        return Path(self.output_dir) / "runs" / level / f"seed{seed}" / loss.replace("+", "_plus_")


def check_levels(levels: Sequence[str], reference: str) -> None:
    """ValueError unless `levels` suit data whose reference level is `reference`: a user's data
    (`as_is`) has no clean masks, the built-in data (`clean`) no `as_is`."""
    if reference == AS_IS:
        misplaced = [level for level in levels if level in REFERENCE_LEVELS and level != AS_IS]
        if misplaced:
            raise ValueError(f"your data has no clean masks: its reference level is {AS_IS}, "
                             f"not {', '.join(misplaced)}")
    elif AS_IS in levels:
        raise ValueError(f"level {AS_IS} is your data's reference: give --train and --val")


def _with_bce(losses: Sequence[str]) -> List[str]:
    return list(losses) if "bce" in losses else ["bce", *losses]


