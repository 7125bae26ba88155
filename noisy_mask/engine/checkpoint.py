"""Checkpoints that a killed run never leaves half-written, so that `--resume` always finds one.

detectron2's `DetectionCheckpointer.save` (fvcore's `Checkpointer.save`) writes `model_XXXXXXX.pth`
in place and then overwrites `last_checkpoint`: a run killed during the write leaves a truncated
file that `last_checkpoint` may already name, or will name after the restart overwrites it.
"""

import logging
import os
import re
from pathlib import Path
from typing import Any, List

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..utils.atomic import atomic_write

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last_checkpoint"  # fvcore's tag file: the basename of the newest checkpoint
# atomic_write's temporary files of a checkpoint or of the tag: `.NAME.RANDOM.tmp`
_TEMP_NAME = re.compile(r"^\.(?P<name>.+\.pth|last_checkpoint)\.[^.]+\.tmp$")


class AtomicCheckpointer(DetectionCheckpointer):
    """A `DetectionCheckpointer` whose `save` is atomic.

    `NAME.pth` is written to a temporary file in the same folder and renamed onto its name; only
    then is `last_checkpoint` replaced the same way. A kill at any moment leaves the previous
    checkpoint and tag intact, plus a `.NAME.pth.RANDOM.tmp` file that `remove_stale_temp_files`
    deletes when the next run starts. Loading is `DetectionCheckpointer`'s. A `save_dir` that is
    a URL (`scheme://...`) is written as fvcore does.
    """

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        if "://" in self.save_dir:
            return super().save(name, **kwargs)
        # fvcore's Checkpointer.save, with atomic_write in place of open(save_file, "wb")
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        assert os.path.basename(save_file) == basename, basename
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f), mode="wb")
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if "://" in self.save_dir:
            return super().tag_last_checkpoint(last_filename_basename)
        atomic_write(
            os.path.join(self.save_dir, LAST_CHECKPOINT),
            lambda f: f.write(last_filename_basename),
        )

    def remove_stale_temp_files(self) -> List[Path]:
        """Delete the temporary files of saves killed midway; call before training starts.

        Only the saving process deletes, and only checkpoint and tag temporaries; a second run
        saving into the same folder at the same time is not supported (its checkpoints would
        overwrite this one's anyway). Returns the deleted paths.
        """
        if not (self.save_dir and self.save_to_disk and os.path.isdir(self.save_dir)):
            return []
        removed = []
        for entry in sorted(Path(self.save_dir).iterdir()):
            match = _TEMP_NAME.match(entry.name)
            if match and entry.is_file():
                entry.unlink(missing_ok=True)
                removed.append(entry)
                logger.warning(f"Removed {entry}, left by an interrupted save of {match['name']}")
        return removed
