"""What can be wrong with a COCO instances json and its images: the one validator of the package.

`validate_coco` lists every problem of a file (and of its images), `python -m noisy_mask.validate`
prints them, and `coco.io.read_coco` raises the first one that stops a tool. Messages name the
file, the ids and the key: `instances_train.json: annotation 17 (image 4): 'segmentation' polygon
0 has 5 coordinates (odd count)`.

A problem is `skippable` when dropping that one instance is a sane choice for training (empty or
degenerate segmentation, zero-area polygon, box of non-positive size); every other problem is
`fatal`. `skippable_annotation_ids` gives the instances to drop. This module imports neither torch
nor detectron2: the json is read with the standard library, the images with PIL.
"""

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Set, Tuple, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..utils.text import plural
from .rle import decode_rle_counts
from .values import bad, is_int, is_number, kind, parse_json, show

FATAL = "fatal"
SKIPPABLE = "skippable"
# a box may overhang the image by this much: exporters round coordinates to whole pixels
BOX_TOLERANCE_PX = 1.0
# a polygon whose fan of triangles from its first point adds up to less than this is a line or point
ZERO_AREA_PX2 = 1e-6
SECTIONS = ("images", "annotations", "categories")
_EXIF_ORIENTATION = 0x0112

PathArg = Union[str, os.PathLike]


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


def validate_dataset(
    annotations_path: PathArg, image_dir: Optional[PathArg] = None, workers: Optional[int] = None
) -> Validation:
    """Every problem in a COCO instances json and, if `image_dir` is given, in its image files.

    Args:
        annotations_path: the json file; its problems name it by its base name.
        image_dir: the folder the images' `file_name`s are relative to; None checks the json only.
        workers: threads that decode images (PIL decodes without holding the GIL); default: CPUs.

    Raises:
        FileNotFoundError: `annotations_path` is not a file or `image_dir` is not a folder.
    """
    data, problem = read_annotation_file(annotations_path)
    if image_dir is not None and not Path(image_dir).is_dir():
        raise FileNotFoundError(f"{image_dir}: no such image folder")
    if problem is not None:
        return Validation([problem], 0, 0)
    return validate_data(data, Path(annotations_path).name, image_dir, workers)


def read_annotation_file(annotations_path: PathArg) -> Tuple[Any, Optional[Problem]]:
    """(the parsed json, None), or (None, the problem `NAME: not valid JSON: ...`) of a file.

    Raises:
        FileNotFoundError: `annotations_path` is not a file.
    """
    path = Path(annotations_path)
    if not path.is_file():
        raise FileNotFoundError(f"{annotations_path}: no such annotation file")
    try:
        return parse_json(path.read_bytes()), None
    except ValueError as e:
        return None, Problem(path.name, None, None, str(e))


def validate_data(
    data: Any, name: str, image_dir: Optional[PathArg] = None, workers: Optional[int] = None
) -> Validation:
    """`validate_dataset` of a json already parsed, `data`; `name` (the file) names its problems."""
    problems = coco_problems(data, name)
    if image_dir is not None and isinstance(data, dict) and isinstance(data.get("images"), list):
        problems.extend(_check_image_files(Path(image_dir), _image_files(data["images"]), workers))
    images, annotations = (data.get(k) if isinstance(data, dict) else None for k in SECTIONS[:2])
    num_images = len(images) if isinstance(images, list) else 0
    return Validation(
        problems, num_images, len(annotations) if isinstance(annotations, list) else 0
    )


def validate_coco(
    annotations_path: PathArg,
    image_dir: Optional[PathArg] = None,
    check_images: bool = True,
    workers: Optional[int] = None,
) -> List[Problem]:
    """The problems of `validate_dataset`; `check_images` False checks the json only."""
    return validate_dataset(annotations_path, image_dir if check_images else None, workers).problems


# ---------------------------------------------------------------------------------------------
# The json.


def coco_problems(data: Any, name: str) -> List[Problem]:
    """Every problem of `data`, a parsed COCO instances json, in the order images, categories,
    annotations (each entry's in the order of its keys' checks); `name` is the file."""
    if not isinstance(data, dict):
        return [Problem(name, None, None, f"top level is {kind(data)}, expected an object")]
    problems: List[Problem] = []
    sections: Dict[str, Optional[list]] = {}
    for key in SECTIONS:
        sections[key] = None
        if key not in data:
            problems.append(Problem(name, None, None, f"missing top-level key '{key}'", key=key))
        elif not isinstance(data[key], list):
            message = f"'{key}' is {kind(data[key])}, expected a list"
            problems.append(Problem(name, None, None, message, key=key))
        else:
            sections[key] = data[key]

    sizes = None
    if sections["images"] is not None:
        sizes = _check_images(name, sections["images"], problems)
    category_ids = None
    if sections["categories"] is not None:
        category_ids = _check_categories(name, sections["categories"], problems)
    if sections["annotations"] is not None:
        _check_annotations(name, sections["annotations"], sizes, category_ids, problems)
    return problems


def _check_images(
    name: str, images: list, problems: List[Problem]
) -> Dict[int, Optional[Tuple[int, int]]]:
    """Check the `images` entries; return each valid id's (height, width) (None if invalid)."""
    sizes: Dict[int, Optional[Tuple[int, int]]] = {}
    first_index: Dict[int, int] = {}
    for index, image in enumerate(images):
        if not isinstance(image, dict):
            message = f"images[{index}] is {kind(image)}, expected an object"
            problems.append(Problem(name, None, None, message, key="images"))
            continue
        image_id = image.get("id")
        if not is_int(image_id):
            message = f"images[{index}]: {bad('id', image, 'an int')}"
            problems.append(Problem(name, None, None, message, key="id"))
            image_id, prefix = None, f"images[{index}]: "
        else:
            prefix = ""
            if image_id in first_index:
                message = (
                    f"duplicate image id (images[{first_index[image_id]}] and images[{index}])"
                )
                problems.append(Problem(name, image_id, None, message, key="id"))
            first_index.setdefault(image_id, index)

        for key in ("width", "height"):
            if not (is_int(image.get(key)) and image[key] > 0):
                message = prefix + bad(key, image, "a positive int")
                problems.append(Problem(name, image_id, None, message, key=key))
        if image_id is not None:
            sizes.setdefault(image_id, _image_size(image))
        if not _file_name(image):
            message = prefix + bad("file_name", image, "a path")
            problems.append(Problem(name, image_id, None, message, key="file_name"))
    return sizes


def _image_size(image: dict) -> Optional[Tuple[int, int]]:
    """(height, width) of an image entry, None unless both are positive ints."""
    if all(is_int(image.get(key)) and image[key] > 0 for key in ("height", "width")):
        return image["height"], image["width"]
    return None


def _file_name(image: dict) -> Optional[str]:
    file_name = image.get("file_name")
    return file_name if isinstance(file_name, str) and file_name else None


def _check_categories(name: str, categories: list, problems: List[Problem]) -> Set[int]:
    """Check the `categories` entries; return the valid ids."""
    first_index: Dict[int, int] = {}
    for index, category in enumerate(categories):
        if not isinstance(category, dict):
            message = f"categories[{index}] is {kind(category)}, expected an object"
            problems.append(Problem(name, None, None, message, key="categories"))
            continue
        category_id = category.get("id")
        if not is_int(category_id):
            message = f"categories[{index}]: {bad('id', category, 'an int')}"
            problems.append(Problem(name, None, None, message, key="id"))
            where = f"categories[{index}]"
        else:
            where = f"category {category_id}"
            if category_id in first_index:
                message = (
                    f"{where}: duplicate category id "
                    f"(categories[{first_index[category_id]}] and categories[{index}])"
                )
                problems.append(Problem(name, None, None, message, key="id"))
            first_index.setdefault(category_id, index)
        if not (isinstance(category.get("name"), str) and category["name"]):
            message = f"{where}: {bad('name', category, 'a non-empty string')}"
            problems.append(Problem(name, None, None, message, key="name"))
    return set(first_index)


def _check_annotations(
    name: str,
    annotations: list,
    sizes: Optional[Dict[int, Optional[Tuple[int, int]]]],
    category_ids: Optional[Set[int]],
    problems: List[Problem],
) -> None:
    """Check the `annotations` entries against the images' sizes and the category ids.

    `sizes` or `category_ids` is None when that section is missing: references to it go unchecked.
    """
    first_index: Dict[int, int] = {}
    for index, annotation in enumerate(annotations):
        if not isinstance(annotation, dict):
            message = f"annotations[{index}] is {kind(annotation)}, expected an object"
            problems.append(Problem(name, None, None, message, key="annotations"))
            continue
        annotation_id = annotation.get("id")
        image_id = annotation.get("image_id") if is_int(annotation.get("image_id")) else None
        issues: List[Tuple[str, Issue]] = []  # (key, issue)
        if not is_int(annotation_id):
            issues.append(("id", Issue(bad("id", annotation, "an int"))))
            annotation_id = None
        elif annotation_id in first_index:
            message = (
                f"duplicate annotation id "
                f"(annotations[{first_index[annotation_id]}] and annotations[{index}])"
            )
            issues.append(("id", Issue(message)))
        else:
            first_index[annotation_id] = index

        size = None
        if image_id is None:
            issues.append(("image_id", Issue(bad("image_id", annotation, "an int"))))
        elif sizes is not None:
            if image_id not in sizes:
                issues.append(("image_id", Issue(f"image_id {image_id} is not in 'images'")))
            size = sizes.get(image_id)
        category_id = annotation.get("category_id")
        if not is_int(category_id):
            issues.append(("category_id", Issue(bad("category_id", annotation, "an int"))))
        elif category_ids is not None and category_id not in category_ids:
            message = f"category_id {category_id} is not in 'categories'"
            issues.append(("category_id", Issue(message)))
        if "iscrowd" in annotation and not (
            is_int(annotation["iscrowd"]) and annotation["iscrowd"] in (0, 1)
        ):
            issues.append(("iscrowd", Issue(bad("iscrowd", annotation, "0 or 1"))))
        area = annotation.get("area")
        if not (is_number(area) and math.isfinite(area) and area >= 0):
            # pycocotools' COCOeval reads every ground-truth area to sort it into small/medium/large
            issues.append(("area", Issue(bad("area", annotation, "a finite number >= 0"))))
        for key, check in (("bbox", check_bbox), ("segmentation", check_segmentation)):
            if key in annotation:
                issues.extend((key, issue) for issue in check(annotation[key], size))
            else:
                issues.append((key, Issue(f"'{key}' is missing")))

        prefix = f"annotations[{index}]: " if annotation_id is None else ""
        for key, (message, severity, empty_mask) in issues:
            problems.append(
                Problem(name, image_id, annotation_id, prefix + message, severity, key, empty_mask)
            )


# ---------------------------------------------------------------------------------------------
# One value: the pieces the other tools call.


def check_bbox(bbox: Any, size: Optional[Tuple[int, int]]) -> List[Issue]:
    """Problems with a COCO box [x, y, width, height] in an image of `size` (height, width).

    The box must lie in [-t, W + t] x [-t, H + t], t = BOX_TOLERANCE_PX; `size` None skips that.
    """
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(is_number(v) for v in bbox)):
        return [Issue(f"'bbox' is {show(bbox)}, expected 4 numbers [x, y, width, height]")]
    if not all(math.isfinite(v) for v in bbox):
        return [Issue(f"'bbox' {show(bbox, typed=False)} has a non-finite value")]
    x, y, w, h = bbox
    issues = []
    if w <= 0 or h <= 0:
        message = f"box {show(bbox, typed=False)} has non-positive width or height"
        issues.append(Issue(message, SKIPPABLE))
    if size is not None:
        height, width = size
        t = BOX_TOLERANCE_PX
        outside = [
            f"{label} = {_num(value)} {op} {_num(limit)}"
            for label, value, op, limit, bad in (
                ("x", x, "<", 0, x < -t),
                ("y", y, "<", 0, y < -t),
                ("x + width", x + w, ">", width, x + w > width + t),
                ("y + height", y + h, ">", height, y + h > height + t),
            )
            if bad
        ]
        if outside:
            message = (
                f"box {show(bbox, typed=False)} lies outside the {width}x{height} image by more "
                f"than the {_num(t)} px tolerance: {', '.join(outside)}"
            )
            issues.append(Issue(message))
    return issues


def check_segmentation(segmentation: Any, size: Optional[Tuple[int, int]]) -> List[Issue]:
    """Problems with a COCO segmentation (a list of polygons, or an RLE object) in an image of
    `size` (height, width); `size` None skips the comparison with the RLE's size. Each message
    names the key: 'segmentation' ... or segmentation is empty."""
    if isinstance(segmentation, list):
        if not segmentation:
            return [Issue("segmentation is empty", SKIPPABLE)]
        issues = [i for k, polygon in enumerate(segmentation) for i in check_polygon(k, polygon)]
    elif isinstance(segmentation, dict):
        issues = check_rle(segmentation, size)
    else:
        expected = "expected a list of polygons or an RLE object"
        return [Issue(f"'segmentation' is {show(segmentation)}, {expected}")]
    return [issue._replace(message=f"'segmentation' {issue.message}") for issue in issues]


def check_polygon(index: int, polygon: Any) -> List[Issue]:
    """Problems with polygon `index`, a flat list [x0, y0, x1, y1, ...].

    Zero area is tested with the fan of triangles from the first point,
    A = sum_i |(p_i - p_0) x (p_{i+1} - p_0)| / 2, which is 0 exactly when the polygon is a point
    or traces a line (and, unlike the signed shoelace area, not for a figure eight).
    """
    name = f"polygon {index}"
    if not isinstance(polygon, list):
        return [Issue(f"{name} is {show(polygon)}, expected a list of coordinates")]
    for position, value in enumerate(polygon):
        if not is_number(value):
            return [
                Issue(
                    f"{name} has non-numeric coordinates, the first at position {position}: "
                    f"{show(value)}"
                )
            ]
    issues = []
    non_finite = [i for i, value in enumerate(polygon) if not math.isfinite(value)]
    if non_finite:
        message = (
            f"{name} has NaN or infinite coordinates ({len(non_finite)}, the first at position "
            f"{non_finite[0]}: {show(polygon[non_finite[0]], typed=False)})"
        )
        issues.append(Issue(message))
    if len(polygon) % 2:
        issues.append(Issue(f"{name} has {len(polygon)} coordinates (odd count)"))
    if issues:
        return issues
    if len(polygon) < 6:
        message = f"{name} has {len(polygon) // 2} points; a polygon needs at least 3"
        return [Issue(message, SKIPPABLE)]
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    edges = points[1:] - points[0]
    crosses = edges[:-1, 0] * edges[1:, 1] - edges[:-1, 1] * edges[1:, 0]
    fan_area = np.abs(crosses).sum() / 2
    if fan_area < ZERO_AREA_PX2:
        return [Issue(f"{name} has zero area (its points lie on one line)", SKIPPABLE, True)]
    return []


def check_rle(rle: dict, size: Optional[Tuple[int, int]]) -> List[Issue]:
    """Problems with an RLE {"size": [height, width], "counts": str or list of run lengths}.

    The runs alternate background and foreground, column by column, and must add up to
    height * width; a mask with no foreground run is empty.
    """
    issues = []
    rle_size = rle.get("size")
    if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(is_int(v) for v in rle_size)):
        issues.append(Issue(f"RLE {bad('size', rle, '[height, width]')}"))
        rle_size = None
    elif size is not None and tuple(rle_size) != tuple(size):
        message = f"RLE 'size' {rle_size} does not match the image's [height, width] {list(size)}"
        issues.append(Issue(message))

    counts = rle.get("counts")
    if isinstance(counts, str):
        try:
            runs = decode_rle_counts(counts)
        except ValueError as e:
            return issues + [Issue(f"RLE 'counts' string is malformed: {e}")]
    elif isinstance(counts, list) and all(is_int(v) for v in counts):
        runs = np.asarray(counts, dtype=np.int64)
    else:
        return issues + [Issue(f"RLE {bad('counts', rle, 'a string or a list of ints')}")]

    negative = np.flatnonzero(runs < 0)
    if negative.size:
        message = f"RLE 'counts' have a negative run at position {negative[0]}: {runs[negative[0]]}"
        return issues + [Issue(message)]
    if rle_size is not None and int(runs.sum()) != rle_size[0] * rle_size[1]:
        message = (
            f"RLE 'counts' sum to {int(runs.sum())} pixels, but size {rle_size} has "
            f"{rle_size[0] * rle_size[1]}"
        )
        return issues + [Issue(message)]
    if not runs[1::2].any():
        issues.append(Issue("RLE mask is empty", SKIPPABLE, True))
    return issues


# ---------------------------------------------------------------------------------------------
# The image files.

_ImageFile = Tuple[Optional[int], str, Optional[Tuple[int, int]]]  # id, file_name, (height, width)


def _image_files(images: list) -> List[_ImageFile]:
    """The entries of `images` whose file can be looked for (it has a file_name)."""
    files = []
    for image in images:
        if isinstance(image, dict) and _file_name(image):
            image_id = image.get("id") if is_int(image.get("id")) else None
            files.append((image_id, image["file_name"], _image_size(image)))
    return files


def check_image_file(path: Path, size: Optional[Tuple[int, int]]) -> Optional[str]:
    """What is wrong with the image at `path` (missing, unreadable, truncated, of another size than
    `size` (height, width) once its EXIF orientation is applied, as detectron2 does), or None.

    Every pixel is decoded (with PIL, which releases the GIL), so a truncated file is caught.
    """
    if not path.is_file():
        return f"not found in {path.parent}" if not path.exists() else "is not a file"
    try:
        with Image.open(path) as image:
            image.load()
            width, height = image.size
            try:
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            except Exception:  # detectron2 ignores a broken EXIF block too
                orientation = 1
    except UnidentifiedImageError:
        return "is not an image file PIL can read"
    except Exception as e:  # OSError for truncated data, SyntaxError for broken PNG chunks, ...
        return f"cannot be decoded: {type(e).__name__}: {e}"
    rotated = orientation in (5, 6, 7, 8)
    if rotated:
        width, height = height, width
    if size is not None and (height, width) != tuple(size):
        after = " after its EXIF rotation" if rotated else ""
        return (
            f"is {width}x{height} (width x height){after}, but the json says "
            f"{size[1]}x{size[0]}"
        )
    return None


def _check_image_files(
    image_dir: Path, files: List[_ImageFile], workers: Optional[int]
) -> List[Problem]:
    """Decode every listed image in parallel; one problem per bad file, in the json's order."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        messages = pool.map(lambda f: check_image_file(image_dir / f[1], f[2]), files)
        return [
            Problem(file_name, image_id, None, message, key="file_name")
            for (image_id, file_name, _), message in zip(files, messages)
            if message is not None
        ]


def _num(value: float) -> str:
    return f"{value:.6g}"
