"""Reading COCO files: the instances json, checked for what a tool reads (errors name the file, the
annotation and the key), a checked segmentation as an RLE, and the image files."""

import os
from pathlib import Path
from typing import Any, Collection, Dict, Mapping, Optional, Union

import cv2
import numpy as np

from .annotation_checks import check_segmentation
from .checks import PathArg, coco_problems
from .problems import FATAL, problem_location
from .rle import Rle, to_rle
from .values import parse_json

CocoArg = Union[PathArg, Mapping[str, Any]]  # a COCO json's path, or its dict


class AnnotationError(ValueError):
    """A COCO file a tool cannot use: the message names the file, the annotation and the key."""

    def __init__(self, message: str, file: Optional[str] = None):
        super().__init__(f"{file}: {message}" if file is not None else message)


def load_json(path: PathArg) -> Any:
    """The parsed json file at `path`, read as bytes (so UTF-8, -16 and -32 all decode).

    Raises:
        FileNotFoundError: `PATH: no such file`.
        AnnotationError: `PATH: not valid JSON: <the parser's reason>`.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{os.fspath(path)}: no such file") from None
    try:
        return parse_json(data)
    except ValueError as e:
        raise AnnotationError(str(e), os.fspath(path)) from None


# ---------------------------------------------------------------------------------------------
# A tool's use of a file: the first problem that stops it is raised.


def check_coco(
    coco: Any, name: str, unused: Collection[str] = (), readable_masks: bool = False
) -> Dict[str, Any]:
    """`coco`, a parsed COCO instances json, if it has no problem that stops a tool.

    The tool stops on every fatal problem but those of the keys in `unused` (what it does not
    read, e.g. "bbox" for a tool that recomputes boxes). With `readable_masks`, every
    segmentation must also be one pycocotools reads: an empty polygon list or a polygon of fewer
    than 3 points stops it, an empty mask does not.

    Raises:
        AnnotationError: `NAME: annotation A (image I): message` of the first such problem.
    """
    for problem in coco_problems(coco, name):
        if problem.key in unused:
            continue
        unreadable = problem.key == "segmentation" and not problem.empty_mask
        if problem.severity == FATAL or (readable_masks and unreadable):
            where = problem_location(problem)
            raise AnnotationError(f"{where}: {problem.message}" if where else problem.message, name)
    return coco


def read_coco(
    coco: CocoArg,
    name: Optional[str] = None,
    unused: Collection[str] = (),
    readable_masks: bool = False,
) -> Dict[str, Any]:
    """A COCO instances dict, read from a path (or given), checked with `check_coco`; a shallow
    copy. `name` goes into the errors (default: the path, or "annotations")."""
    if isinstance(coco, (str, os.PathLike)):
        name = name or os.fspath(coco)
        coco = load_json(coco)
    name = name or "annotations"
    return dict(check_coco(coco, name, unused, readable_masks))


def segmentation_rle(segmentation: Any, height: int, width: int, where: str) -> Optional[Rle]:
    """pycocotools RLE of a COCO segmentation (polygons, or RLE with string or list counts) of a
    height x width image; None when it is empty or degenerate (a skippable problem: nothing to
    draw); AnnotationError `WHERE: 'segmentation' ...` when it is malformed (pycocotools would
    crash or misread it)."""
    issues = check_segmentation(segmentation, (height, width))
    fatal = [issue.message for issue in issues if issue.severity == FATAL]
    if fatal:
        raise AnnotationError(f"{where}: {fatal[0]}")
    if issues:
        return None
    return to_rle(segmentation, height, width)


def annotation_rle(ann: Dict[str, Any], image: Dict[str, Any], name: str) -> Optional[Rle]:
    """`segmentation_rle` of an annotation of `image`; errors name the file `name` and the ids."""
    where = f"{name}: annotation {ann['id']} (image {ann['image_id']})"
    return segmentation_rle(ann["segmentation"], image["height"], image["width"], where)


# ---------------------------------------------------------------------------------------------
# Names and images.


def coco_name(coco: CocoArg, default: str) -> str:
    """The path of a COCO file for the error messages, or `default` for a dict given as is."""
    return os.fspath(coco) if isinstance(coco, (str, os.PathLike)) else default


def read_image(image_dir: PathArg, image: Mapping[str, Any]) -> np.ndarray:
    """(H, W, 3) uint8 RGB of a COCO image entry, checked against its height and width."""
    path = Path(image_dir) / image["file_name"]
    if not path.is_file():
        raise FileNotFoundError(f"image {image['id']}: file {path} not found")
    pixels = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ValueError(f"image {image['id']}: {path} is not a readable image")
    if pixels.shape[:2] != (image["height"], image["width"]):
        raise ValueError(
            f"image {image['id']}: {path} is {pixels.shape[1]}x{pixels.shape[0]}, the annotations"
            f" say {image['width']}x{image['height']}"
        )
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
