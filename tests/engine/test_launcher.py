import threading
import time
from pathlib import Path

from noisy_mask.engine import launcher


def test_last_task_waits_for_the_others_and_gets_every_core(monkeypatch):
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 4)
    lock = threading.Lock()
    running, events = [0], []

    def task(name, seconds, threads):
        with lock:
            running[0] += 1
            events.append((name, "start", threads, running[0]))
        time.sleep(seconds)
        with lock:
            running[0] -= 1
            events.append((name, "end"))
        return name

    tasks = [launcher.Task(n, Path(n), lambda threads, n=n, s=s: task(n, s, threads))
             for n, s in [("a", 0.05), ("b", 0.3), ("c", 0.05), ("d", 0.05), ("e", 0.05)]]
    assert launcher.run_in_parallel(tasks, jobs=2) == ["a", "b", "c", "d", "e"]
    starts = {e[0]: e for e in events if e[1] == "start"}
    # Two side by side on 2 of the 4 cores each, never more than two at once.
    assert [starts[n][2] for n in "abcd"] == [2, 2, 2, 2]
    assert max(e[3] for e in starts.values()) == 2
    # The fifth, alone, starts after every other has ended and has the 4 cores.
    assert starts["e"][2] == 4 and starts["e"][3] == 1
    assert events.index(starts["e"]) == len(events) - 2


def test_fewer_tasks_than_jobs_share_the_cores(monkeypatch):
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 2)
    task = launcher.Task("t", Path("t"), lambda threads: threads)
    seen = launcher.run_in_parallel([task] * 3, jobs=4)
    assert seen == [1, 1, 1]  # 3 jobs on 2 cores: at least one thread each
    assert launcher.run_in_parallel([task], jobs=2) == [2]
    assert launcher.run_in_parallel([], jobs=2) == []


def test_a_finished_run_is_evaluated_elsewhere_when_its_validation_file_changed(tmp_path):
    import hashlib
    import json

    import pytest

    first = tmp_path / "val.json"
    first.write_text('{"images": [1, 2]}')
    same = tmp_path / "same_bytes.json"
    same.write_text(first.read_text())
    other = tmp_path / "other.json"
    other.write_text('{"images": [1]}')
    run = tmp_path / "run"
    run.mkdir()
    stamp = launcher.evaluated_on(first)
    assert stamp == {"val_json": str(first),
                     "sha256": hashlib.sha256(b'{"images": [1, 2]}').hexdigest()}
    (run / launcher.EVALUATED_ON_FILE).write_text(json.dumps(stamp))
    # by content, not by name
    assert not launcher.evaluated_elsewhere(run, first)
    assert not launcher.evaluated_elsewhere(run, same)
    assert launcher.evaluated_elsewhere(run, other)

    # a run from before the record: the val_clean file its config.yaml registers
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.yaml").write_text(
        "DATASETS:\n  REGISTER_COCO:\n  - - train\n    - t.json\n    - t\n"
        f"  - - val_clean\n    - {first}\n    - images\n")
    assert not launcher.evaluated_elsewhere(legacy, same)
    assert launcher.evaluated_elsewhere(legacy, other)
    first.unlink()  # gone: nothing to tell by, the run is kept as it is
    assert not launcher.evaluated_elsewhere(legacy, other)
    (legacy / "config.yaml").write_text("MODEL:\n  DEVICE: cpu\n")
    assert not launcher.evaluated_elsewhere(legacy, other)

    with pytest.raises(FileNotFoundError, match=r"legacy: no model_final.pth to evaluate on "
                                                r".*other.json again"):
        launcher.evaluate_again(legacy, "bce", {"val_json": str(other), "val_images": "images",
                                              "train_json": "t.json", "train_images": "t"})
