"""Register COCO-format datasets named in the config (`DATASETS.REGISTER_COCO`), no code needed."""

import logging
import os
from typing import Iterable, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

logger = logging.getLogger(__name__)


def register_coco_datasets(entries: Iterable[Sequence[str]]) -> None:
    """Register each `[name, annotation_json, image_root]` with detectron2's COCO loader.

    A name registered before with the same files is left as it is; with other files, or with
    files that do not exist, it is an error naming the entry.
    """
    for entry in entries:
        if len(entry) != 3 or not all(isinstance(part, str) for part in entry):
            raise ValueError(
                f"DATASETS.REGISTER_COCO entry {entry!r} must be [name, annotation_json, image_root]"
            )
        name, json_file, image_root = entry
        if not os.path.isfile(json_file):
            raise FileNotFoundError(
                f"DATASETS.REGISTER_COCO {name!r}: no annotation file {json_file}"
            )
        if not os.path.isdir(image_root):
            raise FileNotFoundError(
                f"DATASETS.REGISTER_COCO {name!r}: no image folder {image_root}"
            )
        if name in DatasetCatalog.list():
            registered = MetadataCatalog.get(name)
            same = (registered.get("json_file"), registered.get("image_root")) == (
                json_file,
                image_root,
            )
            if not same:
                raise ValueError(
                    f"DATASETS.REGISTER_COCO {name!r}: already registered with "
                    f"{registered.get('json_file')} and {registered.get('image_root')}"
                )
            continue
        register_coco_instances(name, {}, json_file, image_root)
        logger.info(f"Registered dataset {name!r}: {json_file}, images in {image_root}")
