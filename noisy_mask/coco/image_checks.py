"""The checks of the image files a COCO json lists: each one found, decoded in full and of the
size the json gives (after its EXIF orientation, as detectron2 loads it), in parallel threads."""

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Tuple

from PIL import Image, UnidentifiedImageError

from .problems import Problem

_EXIF_ORIENTATION = 0x0112

ImageFile = Tuple[Optional[int], str, Optional[Tuple[int, int]]]  # id, file_name, (height, width)


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


def check_image_files(
    image_dir: Path, files: List[ImageFile], workers: Optional[int]
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
