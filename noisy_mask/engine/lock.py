"""One run at a time in an output folder: a second run into a folder that a live run writes is
refused, and a killed run leaves nothing that blocks the next one.

The lock is an exclusive `flock` on `OUTPUT_DIR/.lock`, taken before anything is written there
and held until the process ends: the kernel releases it when the process exits, however it exits
(SIGKILL and crashes included), so the file itself may stay and means nothing on its own. It
records the holder (pid, host, start time, command) for the message of a refused run.

The folder is per machine: on each machine the process of local rank 0 locks it for the
machine's processes (`hold_output_dir_on_each_machine`). Machine K > 0 of a multi-machine run
locks `.lock.machineK`, so that machines writing one folder over a network file system do not
refuse each other, while a second run of the same shape is refused on every machine. Processes
forked from the holder (the data loader's workers) do not keep the lock: once the holder is
gone, the folder is free even while they wind down.
"""

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Dict

from detectron2.utils import comm

logger = logging.getLogger("noisy_mask")

LOCK_FILE = ".lock"

# Lock file (real path) -> its open descriptor, for the life of this process: closing the
# descriptor would release the lock.
_HELD: Dict[str, int] = {}


class OutputDirInUseError(RuntimeError):
    """Another live process holds the lock of the output folder."""


def lock_file_name(machine_rank: int = 0) -> str:
    """`.lock` for machine 0, `.lock.machineK` for machine K of a multi-machine run."""
    return LOCK_FILE if machine_rank == 0 else f"{LOCK_FILE}.machine{machine_rank}"


def hold_output_dir(output_dir: str, key: str = "OUTPUT_DIR", machine_rank: int = 0) -> Path:
    """Lock `output_dir` (created if missing) for this process until it ends; return the lock
    file. Taking a lock this process already holds returns at once.

    Args:
        output_dir: the run's output folder.
        key: the config key that sets it, for the message ("OUTPUT_DIR", "train.output_dir").
        machine_rank: this machine's rank in a multi-machine run.
    Raises:
        OutputDirInUseError: another live process holds it; the message names the folder, the
            key, and the holder's pid, host and start time.
    """
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.realpath(os.path.join(output_dir, lock_file_name(machine_rank)))
    if path in _HELD:
        return Path(path)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise OutputDirInUseError(
            f"{key} {output_dir} is in use by another run{holder}: wait for it to end or give "
            f"this run another {key}. The lock, {path}, is released when that process ends, even "
            "if it is killed"
        ) from None
    except OSError as e:
        os.close(fd)
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        # Some network file systems have no locks: run, but say what is not guarded.
        logger.warning(
            f"Cannot lock {path} ({e.strerror}): a second run into {key} {output_dir} would not "
            "be refused"
        )
        return Path(path)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": sys.argv,
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    _HELD[path] = fd
    return Path(path)


def _holder(fd: int) -> str:
    """The holder as the lock file records it, "(pid 1234 on host gpu-3, since 2025-06-01
    12:00:00)" with a space before, or "" if it was not written yet."""
    try:
        record = json.loads(os.pread(fd, 1 << 16, 0))
        return f" (pid {record['pid']} on host {record['host']}, since {record['since']})"
    except (OSError, ValueError, TypeError, KeyError):
        return ""


def release_output_dir(output_dir: str, machine_rank: int = 0) -> None:
    """Release a lock this process holds (a no-op otherwise), for callers that run several
    trainings in one process."""
    path = os.path.realpath(os.path.join(output_dir, lock_file_name(machine_rank)))
    fd = _HELD.pop(path, None)
    if fd is not None:
        os.close(fd)


def hold_output_dir_on_each_machine(output_dir: str, key: str = "OUTPUT_DIR") -> None:
    """`hold_output_dir` in the process of local rank 0 of each machine, then a barrier: no
    process of the run writes into `output_dir` before every machine holds its lock.

    A refused process raises; detectron2's `launch` then stops the other processes of its
    machine (the other machines' processes wait at the barrier until the process group's
    timeout).
    """
    if comm.get_world_size() == 1:
        hold_output_dir(output_dir, key)
        return
    if comm.get_local_rank() == 0:
        hold_output_dir(output_dir, key, machine_rank=comm.get_rank() // comm.get_local_size())
    comm.synchronize()


def _close_in_child() -> None:
    # A forked process shares the holder's lock until it closes its copy of the descriptor:
    # without this, data loader workers outliving a killed run would keep its folder locked.
    for fd in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_in_child)
