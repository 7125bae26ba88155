"""Atomic file writes: a temporary file beside the target, then a rename.

A reader, or a run killed at any moment, sees either the old file or the new one, never a
half-written one.
"""
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Union

PathLike = Union[str, os.PathLike]


def atomic_write(path: PathLike, write: Callable[[IO], None], mode: str = "w") -> None:
    """Call `write(file)` on a temporary file next to `path`, then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data), mode="wb")


def write_text_atomic(path: PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json_atomic(path: PathLike, obj: Any, **dump_options) -> None:
    """`obj` as json (`json.dump` options, default indent 1) and a final newline, atomically."""
    dump_options.setdefault("indent", 1)

    def write(f: IO) -> None:
        json.dump(obj, f, **dump_options)
        f.write("\n")

    atomic_write(path, write)
