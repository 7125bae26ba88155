"""Register COCO-format datasets named in the config (`DATASETS.REGISTER_COCO`), no code needed.

A config may list datasets that a run does not use: the shapes configs list `shapes_train` and
`shapes_val`, and a run on a user's data names others in DATASETS.TRAIN and DATASETS.TEST. So a
dataset whose files are missing is registered all the same: its metadata names its files, and
only loading it raises FileNotFoundError naming the dataset and the missing file. Before training,
`data.checks.check_registered_datasets` requires the files of the datasets the run uses (a
LazyConfig run, which has no such checks, meets the error when its data loader loads the dataset).
"""

import logging
import os
from typing import Iterable, List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

logger = logging.getLogger(__name__)


def missing_files(name: str, json_file: str, image_root: str) -> Optional[str]:
    """`DATASETS.REGISTER_COCO 'NAME': no annotation file JSON` (or `no image folder DIR`), or
    None when both exist."""
    if not os.path.isfile(json_file):
        return f"DATASETS.REGISTER_COCO {name!r}: no annotation file {json_file}"
    if not os.path.isdir(image_root):
        return f"DATASETS.REGISTER_COCO {name!r}: no image folder {image_root}"
    return None


def register_coco_datasets(entries: Iterable[Sequence[str]]) -> None:
    """Register each `[name, annotation_json, image_root]` with detectron2's COCO loader, as
    `register_coco_instances` does (metadata json_file, image_root, evaluator_type "coco").

    Missing files are looked for when the dataset is loaded, not here (see the module docstring).
    A name registered before with the same files is left as it is; with other files it is an
    error naming the entry, and so is an entry that is not three strings.
    """
    for entry in entries:
        if len(entry) != 3 or not all(isinstance(part, str) for part in entry):
            raise ValueError(
                f"DATASETS.REGISTER_COCO entry {entry!r} must be [name, annotation_json, "
                "image_root]"
            )
        name, json_file, image_root = entry
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
        DatasetCatalog.register(name, _loader(name, json_file, image_root))
        MetadataCatalog.get(name).set(
            json_file=json_file, image_root=image_root, evaluator_type="coco"
        )
        missing = missing_files(name, json_file, image_root)
        if missing:
            logger.info(f"{missing}: registered all the same; a run that uses it stops")
        else:
            logger.info(f"Registered dataset {name!r}: {json_file}, images in {image_root}")


def _loader(name: str, json_file: str, image_root: str):
    """detectron2's COCO loader of one dataset, which first makes sure that its files exist."""

    def load() -> List[dict]:
        missing = missing_files(name, json_file, image_root)
        if missing:
            raise FileNotFoundError(missing)
        return load_coco_json(json_file, image_root, name)

    return load
