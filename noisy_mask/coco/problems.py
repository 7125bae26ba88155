"""The problems the validator finds: one value's `Issue`, a `Problem` placed in the file (ids,
key, severity), its one-line form, and a dataset's `Validation`.

A problem is `skippable` when dropping that one instance is a sane choice for training (empty or
degenerate segmentation, zero-area polygon, box of non-positive size); every other problem is
`fatal`. `skippable_annotation_ids` gives the instances to drop.
"""

from dataclasses import dataclass
from typing import Iterable, List, NamedTuple, Optional, Set

from ..utils.text import plural

FATAL = "fatal"
SKIPPABLE = "skippable"


class Issue(NamedTuple):
    """A problem of one value, before it is placed in the file.

    empty_mask: the segmentation is well formed and its mask has no pixel; pycocotools reads it
        (unlike an empty polygon list or a polygon of fewer than 3 points, skippable too).
    """

    message: str
    severity: str = FATAL
    empty_mask: bool = False


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset.

    file: the json's name, or for a problem with an image file its `file_name` from the json.
    image_id, annotation_id: the ids involved when they are known and valid, else None.
    message: what is wrong, with the offending value.
    severity: FATAL, or SKIPPABLE when dropping the annotation is a sane choice for training.
    key: the key of the entry at fault ("bbox", "segmentation", "file_name", ...), the section
        ("images", ...) for a malformed entry, None for the file as a whole.
    empty_mask: see `Issue`.
    """

    file: str
    image_id: Optional[int]
    annotation_id: Optional[int]
    message: str
    severity: str = FATAL
    key: Optional[str] = None
    empty_mask: bool = False


def problem_location(problem: Problem) -> str:
    """`annotation A (image I)`, `annotation A`, `image I`, or '' for the file as a whole."""
    if problem.annotation_id is not None and problem.image_id is not None:
        return f"annotation {problem.annotation_id} (image {problem.image_id})"
    if problem.annotation_id is not None:
        return f"annotation {problem.annotation_id}"
    if problem.image_id is not None:
        return f"image {problem.image_id}"
    return ""


def format_problem(problem: Problem) -> str:
    """One line: `file: annotation A (image I): message`, `file: image I: message`, `file: message`.

    Skippable problems end with ` [skippable]`.
    """
    where = [problem.file, problem_location(problem)]
    suffix = " [skippable]" if problem.severity == SKIPPABLE else ""
    return ": ".join([w for w in where if w] + [problem.message]) + suffix


def skippable_annotation_ids(problems: Iterable[Problem]) -> Set[int]:
    """The ids of annotations with a skippable problem, for training code that drops them.

    An annotation listed here may also have fatal problems; those stay in `problems`.
    """
    return {
        p.annotation_id for p in problems if p.severity == SKIPPABLE and p.annotation_id is not None
    }


class Validation(NamedTuple):
    """Every problem of a dataset, and the number of images and annotations its json lists."""

    problems: List[Problem]
    num_images: int
    num_annotations: int

    def summary(self) -> str:
        """`ok: N images, M annotations`, or `P problems (E errors, S skippable) in N images, M
        annotations`."""
        counts = f"{self.num_images} images, {self.num_annotations} annotations"
        if not self.problems:
            return f"ok: {counts}"
        skippable = sum(p.severity == SKIPPABLE for p in self.problems)
        errors = len(self.problems) - skippable
        return (
            f"{plural(len(self.problems), 'problem')} ({plural(errors, 'error')}, {skippable} "
            f"skippable) in {counts}"
        )
