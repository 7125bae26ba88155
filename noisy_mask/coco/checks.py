"""Check a COCO instances json and its images in one pass, and report every problem found.

    python -m noisy_mask.validate ANNOTATIONS.json IMAGE_DIR

prints one line per problem (`instances_train.json: annotation 17 (image 4): polygon 0 has 5
coordinates (odd count)`), then a summary line, and exits 1 if there is any problem, 0 if there is
none (`ok: N images, M annotations`), 2 if a file or folder given on the command line is missing.

A problem is `skippable` when dropping that one instance is a sane choice for training (empty or
degenerate segmentation, zero-area polygon, box of non-positive size); every other problem is
`fatal`. `skippable_annotation_ids` gives the instances to drop. This module imports neither torch
nor detectron2: the json is read with the standard library, the images with PIL.
"""

import argparse
import json
import math
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

FATAL = "fatal"
SKIPPABLE = "skippable"
# a box may overhang the image by this much: exporters round coordinates to whole pixels
BOX_TOLERANCE_PX = 1.0
# a polygon whose fan of triangles from its first point adds up to less than this is a line or point
ZERO_AREA_PX2 = 1e-6
# pycocotools writes a 32-bit run (a signed 33-bit difference) in at most 7 five-bit characters
_MAX_RLE_CHARS_PER_RUN = 7
_EXIF_ORIENTATION = 0x0112
_SECTIONS = ("images", "annotations", "categories")

Issue = Tuple[str, str]  # (message, FATAL or SKIPPABLE)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the dataset.

    file: the json's name, or for a problem with an image file its `file_name` from the json.
    image_id, annotation_id: the ids involved when they are known and valid, else None.
    message: what is wrong, with the offending value.
    severity: FATAL, or SKIPPABLE when dropping the annotation is a sane choice for training.
    """

    file: str
    image_id: Optional[int]
    annotation_id: Optional[int]
    message: str
    severity: str = FATAL


def format_problem(problem: Problem) -> str:
    """One line: `file: annotation A (image I): message`, `file: image I: message`, `file: message`.

    Skippable problems end with ` [skippable]`.
    """
    where = [problem.file]
    if problem.annotation_id is not None and problem.image_id is not None:
        where.append(f"annotation {problem.annotation_id} (image {problem.image_id})")
    elif problem.annotation_id is not None:
        where.append(f"annotation {problem.annotation_id}")
    elif problem.image_id is not None:
        where.append(f"image {problem.image_id}")
    suffix = " [skippable]" if problem.severity == SKIPPABLE else ""
    return ": ".join(where + [problem.message]) + suffix


def skippable_annotation_ids(problems: Iterable[Problem]) -> Set[int]:
    """The ids of annotations with a skippable problem, for training code that drops them.

    An annotation listed here may also have fatal problems; those stay in `problems`.
    """
    return {
        p.annotation_id for p in problems if p.severity == SKIPPABLE and p.annotation_id is not None
    }


def summary_line(problems: Sequence[Problem], num_images: int, num_annotations: int) -> str:
    """`ok: N images, M annotations`, or `P problems (E errors, S skippable) in N images, M ...`."""
    counts = f"{num_images} images, {num_annotations} annotations"
    if not problems:
        return f"ok: {counts}"
    skippable = sum(p.severity == SKIPPABLE for p in problems)
    errors = len(problems) - skippable
    return (
        f"{_count(len(problems), 'problem')} ({_count(errors, 'error')}, {skippable} skippable) "
        f"in {counts}"
    )


def validate_coco(
    annotations_path: str,
    image_dir: Optional[str] = None,
    check_images: bool = True,
    workers: Optional[int] = None,
) -> List[Problem]:
    """Every problem in a COCO instances json and, if `image_dir` is given, in its image files.

    Args:
        annotations_path: the json file.
        image_dir: the folder the images' `file_name`s are relative to; None checks the json only.
        check_images: False checks the json only, even with `image_dir`.
        workers: threads that decode images (PIL decodes without holding the GIL); default: CPUs.

    Raises:
        FileNotFoundError: `annotations_path` is not a file or `image_dir` is not a folder.
    """
    return _validate(annotations_path, image_dir if check_images else None, workers)[0]


def _validate(
    annotations_path: str, image_dir: Optional[str], workers: Optional[int]
) -> Tuple[List[Problem], int, int]:
    """The problems, and the number of images and annotations that the json lists."""
    path = Path(annotations_path)
    if not path.is_file():
        raise FileNotFoundError(f"{annotations_path}: no such annotation file")
    if image_dir is not None and not Path(image_dir).is_dir():
        raise FileNotFoundError(f"{image_dir}: no such image folder")
    name = path.name
    try:
        data = json.loads(path.read_bytes())
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        return [Problem(name, None, None, f"not valid JSON: {e}")], 0, 0
    if not isinstance(data, dict):
        return [Problem(name, None, None, f"top level is {_kind(data)}, expected an object")], 0, 0

    problems: List[Problem] = []
    sections: Dict[str, Optional[list]] = {}
    for key in _SECTIONS:
        if key not in data:
            problems.append(Problem(name, None, None, f"missing key '{key}'"))
            sections[key] = None
        elif not isinstance(data[key], list):
            problems.append(
                Problem(name, None, None, f"'{key}' is {_kind(data[key])}, expected a list")
            )
            sections[key] = None
        else:
            sections[key] = data[key]

    sizes, files = None, []
    if sections["images"] is not None:
        sizes, files = _check_images(name, sections["images"], problems)
    category_ids = None
    if sections["categories"] is not None:
        category_ids = _check_categories(name, sections["categories"], problems)
    if sections["annotations"] is not None:
        _check_annotations(name, sections["annotations"], sizes, category_ids, problems)
    if image_dir is not None:
        problems.extend(_check_image_files(Path(image_dir), files, workers))
    num_images = len(sections["images"] or [])
    return problems, num_images, len(sections["annotations"] or [])


def _check_images(
    name: str, images: list, problems: List[Problem]
) -> Tuple[Dict[int, Optional[Tuple[int, int]]], List[Tuple[Optional[int], str, Optional[tuple]]]]:
    """Check the `images` entries; return each valid id's (height, width) (None if invalid), and
    the (id, file_name, (height, width)) of every entry whose file can be looked for."""
    sizes: Dict[int, Optional[Tuple[int, int]]] = {}
    first_index: Dict[int, int] = {}
    files = []
    for index, image in enumerate(images):
        if not isinstance(image, dict):
            problems.append(
                Problem(name, None, None, f"images[{index}] is {_kind(image)}, expected an object")
            )
            continue
        image_id = image.get("id")
        if not _is_int(image_id):
            problems.append(
                Problem(name, None, None, f"images[{index}]: {_bad('id', image, 'an int')}")
            )
            image_id, prefix = None, f"images[{index}]: "
        else:
            prefix = ""
            if image_id in first_index:
                message = (
                    f"duplicate image id (images[{first_index[image_id]}] and images[{index}])"
                )
                problems.append(Problem(name, image_id, None, message))
            first_index.setdefault(image_id, index)

        size_ok = True
        for key in ("width", "height"):
            if not (_is_int(image.get(key)) and image[key] > 0):
                size_ok = False
                message = prefix + _bad(key, image, "a positive int")
                problems.append(Problem(name, image_id, None, message))
        size = (image["height"], image["width"]) if size_ok else None
        if image_id is not None:
            sizes.setdefault(image_id, size)

        file_name = image.get("file_name")
        if isinstance(file_name, str) and file_name:
            files.append((image_id, file_name, size))
        else:
            problems.append(
                Problem(name, image_id, None, prefix + _bad("file_name", image, "a path"))
            )
    return sizes, files


def _check_categories(name: str, categories: list, problems: List[Problem]) -> Set[int]:
    """Check the `categories` entries; return the valid ids."""
    first_index: Dict[int, int] = {}
    for index, category in enumerate(categories):
        if not isinstance(category, dict):
            message = f"categories[{index}] is {_kind(category)}, expected an object"
            problems.append(Problem(name, None, None, message))
            continue
        category_id = category.get("id")
        if not _is_int(category_id):
            message = f"categories[{index}]: {_bad('id', category, 'an int')}"
            problems.append(Problem(name, None, None, message))
            where = f"categories[{index}]"
        else:
            where = f"category {category_id}"
            if category_id in first_index:
                message = (
                    f"{where}: duplicate category id "
                    f"(categories[{first_index[category_id]}] and categories[{index}])"
                )
                problems.append(Problem(name, None, None, message))
            first_index.setdefault(category_id, index)
        if not (isinstance(category.get("name"), str) and category["name"]):
            message = f"{where}: {_bad('name', category, 'a non-empty string')}"
            problems.append(Problem(name, None, None, message))
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
            message = f"annotations[{index}] is {_kind(annotation)}, expected an object"
            problems.append(Problem(name, None, None, message))
            continue
        annotation_id = annotation.get("id")
        image_id = annotation.get("image_id") if _is_int(annotation.get("image_id")) else None
        issues: List[Issue] = []
        if not _is_int(annotation_id):
            issues.append((_bad("id", annotation, "an int"), FATAL))
            annotation_id = None
        elif annotation_id in first_index:
            message = (
                f"duplicate annotation id "
                f"(annotations[{first_index[annotation_id]}] and annotations[{index}])"
            )
            issues.append((message, FATAL))
        else:
            first_index[annotation_id] = index

        size = None
        if image_id is None:
            issues.append((_bad("image_id", annotation, "an int"), FATAL))
        elif sizes is not None:
            if image_id not in sizes:
                issues.append((f"image_id {image_id} is not in 'images'", FATAL))
            size = sizes.get(image_id)
        category_id = annotation.get("category_id")
        if not _is_int(category_id):
            issues.append((_bad("category_id", annotation, "an int"), FATAL))
        elif category_ids is not None and category_id not in category_ids:
            issues.append((f"category_id {category_id} is not in 'categories'", FATAL))
        if "iscrowd" in annotation and not (
            _is_int(annotation["iscrowd"]) and annotation["iscrowd"] in (0, 1)
        ):
            issues.append((_bad("iscrowd", annotation, "0 or 1"), FATAL))
        area = annotation.get("area")
        if not (_is_number(area) and math.isfinite(area) and area >= 0):
            # pycocotools' COCOeval reads every ground-truth area to sort it into small/medium/large
            issues.append((_bad("area", annotation, "a finite number >= 0"), FATAL))
        if "bbox" in annotation:
            issues.extend(check_bbox(annotation["bbox"], size))
        else:
            issues.append(("'bbox' is missing", FATAL))
        if "segmentation" in annotation:
            issues.extend(check_segmentation(annotation["segmentation"], size))
        else:
            issues.append(("'segmentation' is missing", FATAL))

        prefix = f"annotations[{index}]: " if annotation_id is None else ""
        for message, severity in issues:
            problems.append(Problem(name, image_id, annotation_id, prefix + message, severity))


def check_bbox(bbox: Any, size: Optional[Tuple[int, int]]) -> List[Issue]:
    """Problems with a COCO box [x, y, width, height] in an image of `size` (height, width).

    The box must lie in [-t, W + t] x [-t, H + t], t = BOX_TOLERANCE_PX; `size` None skips that.
    """
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        return [(f"'bbox' is {_show(bbox)}, expected 4 numbers [x, y, width, height]", FATAL)]
    if not all(math.isfinite(v) for v in bbox):
        return [(f"'bbox' {_show(bbox, typed=False)} has a non-finite value", FATAL)]
    x, y, w, h = bbox
    issues = []
    if w <= 0 or h <= 0:
        message = f"box {_show(bbox, typed=False)} has non-positive width or height"
        issues.append((message, SKIPPABLE))
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
                f"box {_show(bbox, typed=False)} lies outside the {width}x{height} image by more "
                f"than the {_num(t)} px tolerance: {', '.join(outside)}"
            )
            issues.append((message, FATAL))
    return issues


def check_segmentation(segmentation: Any, size: Optional[Tuple[int, int]]) -> List[Issue]:
    """Problems with a COCO segmentation (a list of polygons, or an RLE object) in an image of
    `size` (height, width); `size` None skips the comparison with the RLE's size."""
    if isinstance(segmentation, list):
        if not segmentation:
            return [("segmentation is empty", SKIPPABLE)]
        issues = []
        for index, polygon in enumerate(segmentation):
            issues.extend(check_polygon(index, polygon))
        return issues
    if isinstance(segmentation, dict):
        return check_rle(segmentation, size)
    expected = "expected a list of polygons or an RLE object"
    return [(f"'segmentation' is {_show(segmentation)}, {expected}", FATAL)]


def check_polygon(index: int, polygon: Any) -> List[Issue]:
    """Problems with polygon `index`, a flat list [x0, y0, x1, y1, ...].

    Zero area is tested with the fan of triangles from the first point,
    A = sum_i |(p_i - p_0) x (p_{i+1} - p_0)| / 2, which is 0 exactly when the polygon is a point
    or traces a line (and, unlike the signed shoelace area, not for a figure eight).
    """
    name = f"polygon {index}"
    if not isinstance(polygon, list):
        return [(f"{name} is {_show(polygon)}, expected a list of coordinates", FATAL)]
    for position, value in enumerate(polygon):
        if not _is_number(value):
            return [(f"{name} has a non-number at position {position}: {_show(value)}", FATAL)]
    issues = []
    non_finite = [i for i, value in enumerate(polygon) if not math.isfinite(value)]
    if non_finite:
        message = (
            f"{name} has {len(non_finite)} non-finite coordinate(s), the first at position "
            f"{non_finite[0]}: {_show(polygon[non_finite[0]], typed=False)}"
        )
        issues.append((message, FATAL))
    if len(polygon) % 2:
        issues.append((f"{name} has {len(polygon)} coordinates (odd count)", FATAL))
    if issues:
        return issues
    if len(polygon) < 6:
        return [(f"{name} has {len(polygon) // 2} points (fewer than 3)", SKIPPABLE)]
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    edges = points[1:] - points[0]
    crosses = edges[:-1, 0] * edges[1:, 1] - edges[:-1, 1] * edges[1:, 0]
    fan_area = np.abs(crosses).sum() / 2
    if fan_area < ZERO_AREA_PX2:
        return [(f"{name} has zero area (its points lie on one line)", SKIPPABLE)]
    return []


def check_rle(rle: dict, size: Optional[Tuple[int, int]]) -> List[Issue]:
    """Problems with an RLE {"size": [height, width], "counts": str or list of run lengths}.

    The runs alternate background and foreground, column by column, and must add up to
    height * width; a mask with no foreground run is empty.
    """
    issues = []
    rle_size = rle.get("size")
    if not (
        isinstance(rle_size, list) and len(rle_size) == 2 and all(_is_int(v) for v in rle_size)
    ):
        issues.append((f"RLE {_bad('size', rle, '[height, width]')}", FATAL))
        rle_size = None
    elif size is not None and tuple(rle_size) != tuple(size):
        message = f"RLE size {rle_size} does not match the image's [height, width] {list(size)}"
        issues.append((message, FATAL))

    counts = rle.get("counts")
    if isinstance(counts, str):
        try:
            runs = decode_rle_counts(counts)
        except ValueError as e:
            return issues + [(f"RLE counts string is malformed: {e}", FATAL)]
    elif isinstance(counts, list) and all(_is_int(v) for v in counts):
        runs = np.asarray(counts, dtype=np.int64)
    else:
        return issues + [(f"RLE {_bad('counts', rle, 'a string or a list of ints')}", FATAL)]

    negative = np.flatnonzero(runs < 0)
    if negative.size:
        message = f"RLE counts have a negative run at position {negative[0]}: {runs[negative[0]]}"
        return issues + [(message, FATAL)]
    if rle_size is not None and int(runs.sum()) != rle_size[0] * rle_size[1]:
        message = (
            f"RLE counts add up to {int(runs.sum())} pixels, but size {rle_size} has "
            f"{rle_size[0] * rle_size[1]}"
        )
        return issues + [(message, FATAL)]
    if not runs[1::2].any():
        issues.append(("RLE mask is empty", SKIPPABLE))
    return issues


def decode_rle_counts(counts: str) -> np.ndarray:
    """The run lengths in a compressed COCO RLE string (pycocotools' `rleFrString`).

    Each character is 48 + a 5-bit group plus flags: 0x20 means another group follows, 0x10 in the
    last group is the sign. Groups are little-endian: x = sum_k (c_k & 0x1f) << 5k, minus
    2^(5K) if negative (K groups). Run m >= 3 stores the difference to run m - 2, so the runs are
    x_0, then cumulative sums over odd indices from 1 and over even indices from 2.

    Raises:
        ValueError: a character outside '0'..'o', a string ending inside a run, a run too long.
    """
    if not counts.isascii():
        position = next(i for i, ch in enumerate(counts) if not ch.isascii())
        raise ValueError(f"character {counts[position]!r} at position {position} is not ASCII")
    codes = np.frombuffer(counts.encode("ascii"), dtype=np.uint8).astype(np.int64) - 48
    bad = np.flatnonzero((codes < 0) | (codes > 63))
    if bad.size:
        position = int(bad[0])
        raise ValueError(
            f"character {counts[position]!r} at position {position} is outside '0'..'o'"
        )
    if codes.size == 0:
        return np.zeros(0, dtype=np.int64)
    last = (codes & 0x20) == 0
    if not last[-1]:
        raise ValueError("the string ends in the middle of a run")
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    lengths = np.diff(np.concatenate([starts, [codes.size]]))
    if lengths.max() > _MAX_RLE_CHARS_PER_RUN:
        run = int(np.argmax(lengths > _MAX_RLE_CHARS_PER_RUN))
        raise ValueError(
            f"run {run} at position {starts[run]} has {lengths[run]} characters "
            f"(at most {_MAX_RLE_CHARS_PER_RUN})"
        )
    shift = 5 * (np.arange(codes.size) - np.repeat(starts, lengths))
    values = np.add.reduceat((codes & 0x1F) << shift, starts)
    negative = (codes[last] & 0x10) != 0
    values[negative] -= np.int64(1) << (5 * lengths[negative])
    runs = values.copy()
    runs[1::2] = np.cumsum(values[1::2])
    runs[2::2] = np.cumsum(values[2::2])
    return runs


def check_image_file(path: Path, size: Optional[Tuple[int, int]]) -> Optional[str]:
    """What is wrong with the image at `path` (missing, unreadable, truncated, of another size than
    `size` (height, width) once its EXIF orientation is applied, as detectron2 does), or None."""
    if not path.is_file():
        return f"not found in {path.parent}" if not path.exists() else "is not a file"
    try:
        with Image.open(path) as image:
            image.load()  # decodes every pixel, so a truncated file fails here
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
    image_dir: Path, files: List[Tuple[Optional[int], str, Optional[tuple]]], workers: Optional[int]
) -> List[Problem]:
    """Decode every listed image in parallel; one problem per bad file, in the json's order."""
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        messages = pool.map(lambda f: check_image_file(image_dir / f[1], f[2]), files)
        return [
            Problem(file_name, image_id, None, message)
            for (image_id, file_name, _), message in zip(files, messages)
            if message is not None
        ]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    """The JSON type of `value`, with its article."""
    if isinstance(value, bool):
        return "a boolean"
    for types, kind in ((int, "an int"), (float, "a float"), (str, "a string"), (list, "a list")):
        if isinstance(value, types):
            return kind
    return "an object" if isinstance(value, dict) else "null"


def _show(value: Any, typed: bool = True) -> str:
    """`value` as the json spells it, cut at 60 characters, followed by its type if `typed`."""
    text = json.dumps(value)
    text = text if len(text) <= 60 else text[:56] + " ..."
    return f"{text} ({_kind(value)})" if typed and value is not None else text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _num(value: float) -> str:
    return f"{value:.6g}"


def _bad(key: str, entry: dict, expected: str) -> str:
    """`'key' is missing` or `'key' is VALUE (type), expected EXPECTED`."""
    if key not in entry:
        return f"'{key}' is missing"
    return f"'{key}' is {_show(entry[key])}, expected {expected}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m noisy_mask.validate",
        description="Report every problem in a COCO instances json and its images. Exit status: "
        "0 no problem, 1 problems found, 2 usage error.",
    )
    parser.add_argument("annotations", help="the COCO instances json")
    parser.add_argument("image_dir", nargs="?", help="the folder the images' file_name is under")
    parser.add_argument("--json-only", action="store_true", help="do not open the image files")
    parser.add_argument("--workers", type=int, default=None, help="image decoding threads")
    args = parser.parse_args(argv)
    if args.image_dir is None and not args.json_only:
        parser.error("IMAGE_DIR is required (or pass --json-only)")
    try:
        problems, num_images, num_annotations = _validate(
            args.annotations, None if args.json_only else args.image_dir, args.workers
        )
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for problem in problems:
        print(format_problem(problem))
    print(summary_line(problems, num_images, num_annotations))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
