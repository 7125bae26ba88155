"""What train_net refuses in `setup`, before any model is built or anything is written: an output
folder that another live run holds (`noisy_mask.engine.lock`), and mixed precision without CUDA."""

import errno
import fcntl
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
import torch

from noisy_mask import model_zoo
from noisy_mask.engine import lazy, trainer
from noisy_mask.engine.lock import (
    OutputDirInUseError,
    hold_output_dir,
    hold_output_dir_on_each_machine,
    release_output_dir,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "shapes" / "mask_rcnn_R18_FPN_shapes_dice.yaml"
LAZY = model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_dice.py")


def in_a_fork(function, *args) -> int:
    """Run `function(*args)` in a forked process whose exit status is what it returns (1 if it
    raises); return the pid."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = function(*args)
        finally:
            os._exit(status)
    return pid


def exit_status(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def hold_and_wait(folder, machine_rank, fork, ready) -> int:
    """Lock `folder` as a run does, fork a child that outlives this process if `fork`, write the
    child's pid (or 0) to the pipe `ready`, and sleep."""
    hold_output_dir(str(folder), machine_rank=machine_rank)
    child = in_a_fork(time.sleep, 120) if fork else 0
    os.write(ready, f"{child}\n".encode())
    time.sleep(120)
    return 0


@pytest.fixture
def holder():
    """holder(folder, machine_rank=0, fork=False): (pid, child pid or None) of a process holding
    `folder`'s lock, forked from this one. Every process started is killed at the end."""
    started = []

    def start(folder, machine_rank=0, fork=False):
        read, write = os.pipe()
        pid = in_a_fork(hold_and_wait, folder, machine_rank, fork, write)
        os.close(write)
        started.append(pid)
        with os.fdopen(read) as ready:
            line = ready.readline()
        assert line, f"the process meant to hold {folder} exited"
        child = int(line) or None
        if child:
            started.append(child)
        return pid, child

    yield start
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):  # gone, or not our child
            pass


def try_to_hold(folder) -> int:
    """0 if this process gets `folder`'s lock, 3 if it is refused."""
    try:
        hold_output_dir(str(folder))
    except OutputDirInUseError:
        return 3
    return 0


def refusal(folder, key, pid):
    """The message of a refused run, as a regular expression (the start time varies)."""
    return (
        re.escape(
            f"{key} {folder} is in use by another run (pid {pid} on host {socket.gethostname()}, "
            "since "
        )
        + r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)"
        + re.escape(
            f": wait for it to end or give this run another {key}. The lock, {folder}/.lock, is "
            "released when that process ends, even if it is killed"
        )
    )


def test_a_folder_held_by_another_process_is_refused_naming_it(tmp_path, holder):
    folder = tmp_path / "run"
    pid, _ = holder(folder)
    with pytest.raises(OutputDirInUseError) as error:
        hold_output_dir(str(folder))
    assert re.fullmatch(refusal(folder, "OUTPUT_DIR", pid), str(error.value))
    with pytest.raises(OutputDirInUseError) as error:
        hold_output_dir(str(folder), "train.output_dir")
    assert re.fullmatch(refusal(folder, "train.output_dir", pid), str(error.value))
    record = json.loads((folder / ".lock").read_text())
    assert record["pid"] == pid and record["command"] == sys.argv


def test_a_killed_holder_leaves_the_folder_free(tmp_path, holder):
    folder = tmp_path / "run"
    pid, _ = holder(folder)
    os.kill(pid, signal.SIGKILL)
    assert exit_status(pid) == -signal.SIGKILL
    assert (folder / ".lock").exists()  # the file stays; the kernel dropped the lock
    try:
        assert hold_output_dir(str(folder)) == folder / ".lock"
        assert json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
    finally:
        release_output_dir(str(folder))


def test_a_forked_child_does_not_keep_the_lock_of_a_killed_holder(tmp_path, holder):
    # A data loader's workers are forked from the run; they outlive a SIGKILL by a few seconds.
    folder = tmp_path / "run"
    pid, child = holder(folder, fork=True)
    os.kill(pid, signal.SIGKILL)
    exit_status(pid)
    os.kill(child, 0)  # still alive (raises if not)
    try:
        hold_output_dir(str(folder))
    finally:
        release_output_dir(str(folder))


def test_a_process_takes_its_own_lock_again_and_releases_it(tmp_path):
    folder = tmp_path / "run"
    try:
        assert hold_output_dir(str(folder)) == hold_output_dir(str(tmp_path / "." / "run"))
        assert exit_status(in_a_fork(try_to_hold, folder)) == 3  # another process is refused
    finally:
        release_output_dir(str(folder))
    release_output_dir(str(folder))  # releasing a lock not held does nothing
    assert exit_status(in_a_fork(try_to_hold, folder)) == 0


def test_each_machine_has_its_own_lock_in_a_shared_folder(tmp_path, holder):
    # Machines 0 and 1 of one run writing one folder (a network file system) do not conflict;
    # a second run's machine 1 is refused by the first run's machine 1.
    folder = tmp_path / "run"
    holder(folder, machine_rank=0)
    pid, _ = holder(folder, machine_rank=1)
    assert (folder / ".lock.machine1").is_file()
    with pytest.raises(OutputDirInUseError, match=f"pid {pid} on host") as error:
        hold_output_dir(str(folder), machine_rank=1)
    assert f"The lock, {folder}/.lock.machine1, is released" in str(error.value)


def test_one_process_runs_lock_the_folder_and_create_it(tmp_path):
    folder = tmp_path / "new" / "run"
    try:
        hold_output_dir_on_each_machine(str(folder))  # not distributed: this process
        assert (folder / ".lock").is_file()
    finally:
        release_output_dir(str(folder))


def test_a_file_system_without_locks_warns_and_goes_on(tmp_path, monkeypatch, caplog):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="noisy_mask"):
        hold_output_dir(str(tmp_path))
    assert (
        f"Cannot lock {tmp_path}/.lock (No locks available): a second run into OUTPUT_DIR "
        f"{tmp_path} would not be refused"
    ) in caplog.text


# ---------------------------------------------------------------------------------------------
# Mixed precision without CUDA


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_amp_without_cuda_is_refused_in_setup(tmp_path, no_cuda):
    output_dir = tmp_path / "run"
    args = trainer.argument_parser().parse_args(
        ["--config-file", str(CONFIG), "SOLVER.AMP.ENABLED", "True", "OUTPUT_DIR", str(output_dir)]
    )
    with pytest.raises(ValueError) as error:
        trainer.setup(args)
    assert str(error.value) == (
        "SOLVER.AMP.ENABLED is True, but CUDA is not available: mixed precision training "
        "(detectron2's AMPTrainer) needs a GPU. Add SOLVER.AMP.ENABLED False to train in float32 "
        "on the CPU"
    )
    assert not output_dir.exists()  # refused before the lock, the config file and the logs


def test_amp_without_cuda_is_refused_in_lazy_setup(tmp_path, no_cuda):
    output_dir = tmp_path / "run"
    args = trainer.argument_parser().parse_args(
        ["--config-file", LAZY, "train.amp.enabled=True", f"train.output_dir={output_dir}"]
    )
    with pytest.raises(ValueError) as error:
        lazy.setup(args)
    assert str(error.value) == (
        "train.amp.enabled is True, but CUDA is not available: mixed precision training "
        "(detectron2's AMPTrainer) needs a GPU. Add train.amp.enabled=False to train in float32 "
        "on the CPU"
    )
    assert not output_dir.exists()
