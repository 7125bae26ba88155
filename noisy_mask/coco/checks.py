"""What can be wrong with a COCO instances json and its images: the one validator of the package.

`validate_coco` lists every problem of a file (and of its images), `python -m noisy_mask.validate`
prints them, and `coco.io.read_coco` raises the first one that stops a tool. Messages name the
file, the ids and the key: `instances_train.json: annotation 17 (image 4): 'segmentation' polygon
0 has 5 coordinates (odd count)`.

This module checks the file and its entries (images, categories, annotations and the references
between them); the problems and their severities are in `coco.problems`, the checks of one box or
segmentation in `coco.annotation_checks`, those of the image files in `coco.image_checks`. None of
them imports torch or detectron2: the json is read with the standard library, the images with PIL.
"""

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple, Union

from .annotation_checks import check_bbox, check_segmentation
from .image_checks import ImageFile, check_image_files
from .problems import (
    FATAL,
    SKIPPABLE,
    Issue,
    Problem,
    Validation,
    format_problem,
    problem_location,
    skippable_annotation_ids,
)
from .values import bad, is_int, is_number, kind, parse_json

# The validator's results, importable from here with the validator.
__all__ = [
    "FATAL",
    "SKIPPABLE",
    "PathArg",
    "Problem",
    "Validation",
    "coco_problems",
    "format_problem",
    "problem_location",
    "read_annotation_file",
    "skippable_annotation_ids",
    "validate_coco",
    "validate_data",
    "validate_dataset",
]

SECTIONS = ("images", "annotations", "categories")

PathArg = Union[str, os.PathLike]


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
        problems.extend(check_image_files(Path(image_dir), _image_files(data["images"]), workers))
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


def _image_files(images: list) -> List[ImageFile]:
    """The entries of `images` whose file can be looked for (it has a file_name)."""
    files = []
    for image in images:
        if isinstance(image, dict) and _file_name(image):
            image_id = image.get("id") if is_int(image.get("id")) else None
            files.append((image_id, image["file_name"], _image_size(image)))
    return files
