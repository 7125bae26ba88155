import io
import threading
import time
from pathlib import Path

import pytest

from noisy_mask.engine import launcher
from noisy_mask.engine.progress import RunProgress


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

    tasks = [launcher.Task(n, Path(n), lambda slot, n=n, s=s: task(n, s, slot.threads))
             for n, s in [("a", 0.05), ("b", 0.3), ("c", 0.05), ("d", 0.05), ("e", 0.05)]]
    assert launcher.run_in_parallel(tasks, launcher.Launch(jobs=2)) == ["a", "b", "c", "d", "e"]
    starts = {e[0]: e for e in events if e[1] == "start"}
    # Two side by side on 2 of the 4 cores each, never more than two at once.
    assert [starts[n][2] for n in "abcd"] == [2, 2, 2, 2]
    assert max(e[3] for e in starts.values()) == 2
    # The fifth, alone, starts after every other has ended and has the 4 cores.
    assert starts["e"][2] == 4 and starts["e"][3] == 1
    assert events.index(starts["e"]) == len(events) - 2


def test_fewer_tasks_than_jobs_share_the_cores(monkeypatch):
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 2)
    task = launcher.Task("t", Path("t"), lambda slot: slot.threads)
    seen = launcher.run_in_parallel([task] * 3, launcher.Launch(jobs=4))
    assert seen == [1, 1, 1]  # 3 jobs on 2 cores: at least one thread each
    assert launcher.run_in_parallel([task], launcher.Launch(jobs=2)) == [2]
    assert launcher.run_in_parallel([], launcher.Launch(jobs=2)) == []


def test_a_failed_run_is_named_with_its_log_and_the_others_go_on(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher.os, "cpu_count", lambda: 2)
    done = []

    def run(name, slot):
        if name == "b":
            raise RuntimeError(f"training b failed (exit 1): see {tmp_path / 'b' / 'train_net.out'}")
        done.append(name)
        return name

    tasks = [launcher.Task(n, tmp_path / n, lambda slot, n=n: run(n, slot)) for n in "abcd"]
    stream = io.StringIO()
    with pytest.raises(launcher.RunsFailedError) as failed:
        launcher.run_in_parallel(tasks, launcher.Launch(jobs=2), RunProgress(4, 2, stream=stream))
    assert sorted(done) == ["a", "c", "d"]  # the runs after the failed one ran
    assert str(failed.value) == (f"1 of 4 runs failed (the others ran):\n  b: training b failed "
                                 f"(exit 1): see {tmp_path / 'b' / 'train_net.out'}")
    lines = stream.getvalue().splitlines()
    assert sum(line.startswith("[") for line in lines) == 4
    assert any(line.endswith("b: FAILED: training b failed (exit 1): see "
                             f"{tmp_path / 'b' / 'train_net.out'}") for line in lines)


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
