"""Progress over the training runs of one command (a grid, an audit's folds, a refinement arm, the
demo), as users of detectron2 and tqdm expect it:

    run mid seed 1 dice: log output/mine/runs/mid/seed1/dice/train_net.out
    [3/12] mid seed 1 dice: 441 s; box AP 56.0, mask AP 58.0, boundary AP 29.7 (elapsed 22 min, about 64 min left)

On a terminal a tqdm bar (done / total, elapsed, time left) stays under those lines; otherwise
(a log file, a pipe, CI) the lines alone. A run's own log has its iterations and its AP tables:
nothing of it is printed again.
"""

import json
import sys
import threading
import time
from pathlib import Path
from typing import Optional, TextIO

from tqdm import tqdm

from ..utils.run_folders import EVAL_RESULTS_FILE

# eval_results.json's AP of each task, as the per-run line names it.
AP_NAMES = (("bbox", "box AP"), ("segm", "mask AP"), ("boundary", "boundary AP"))


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def ap_summary(run_dir: Path) -> str:
    """'box AP 56.0, mask AP 58.0, boundary AP 29.7' from a run's eval_results.json ('' when it
    has none: a run that does not evaluate)."""
    path = Path(run_dir) / EVAL_RESULTS_FILE
    if not path.is_file():
        return ""
    results = json.loads(path.read_text())
    return ", ".join(f"{name} {results[task]['AP']:.1f}" for task, name in AP_NAMES
                     if isinstance(results.get(task), dict) and "AP" in results[task])


class RunProgress:
    """`total` runs, `jobs` side by side, each expected to take `seconds_per_run` (the measured
    cost; None: from the runs that finish). Thread-safe: runs side by side report to one."""

    def __init__(self, total: int, jobs: int = 1, seconds_per_run: Optional[float] = None,
                 stream: Optional[TextIO] = None):
        self.total, self.jobs, self.done = total, max(1, jobs), 0
        self.expected = seconds_per_run
        self.stream = stream or sys.stdout
        self.started = time.time()
        self.run_seconds = []
        self.lock = threading.Lock()
        self.bar = None
        if self.stream.isatty() and total > 0:
            self.bar = tqdm(total=total, file=self.stream, unit="run", dynamic_ncols=True,
                            bar_format="{n}/{total} runs |{bar}| {elapsed} elapsed, {postfix}")
            self.bar.set_postfix_str(self.left(), refresh=True)

    def seconds_left(self) -> Optional[float]:
        """The runs not done, `jobs` at a time, at the mean time of those done so far (before
        any: the measured cost)."""
        per_run = (sum(self.run_seconds) / len(self.run_seconds) if self.run_seconds
                   else self.expected)
        if per_run is None:
            return None
        return (self.total - self.done) * per_run / self.jobs

    def left(self) -> str:
        seconds = self.seconds_left()
        return "time left unknown" if seconds is None else f"about {minutes(seconds)} left"

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def start(self, name: str, run_dir: Path, where: str = "") -> None:
        """Said once when a run starts: where it runs, if elsewhere, and where its own log is."""
        with self.lock:
            self.write(f"run {name}: " + (f"{where}, " if where else "")
                       + f"log {Path(run_dir) / 'train_net.out'}")

    def finish(self, name: str, run_dir: Path, seconds: float) -> None:
        """One line per finished run: its count, name, time and APs, and the time left."""
        with self.lock:
            self.done += 1
            self.run_seconds.append(seconds)
            aps = ap_summary(run_dir)
            line = (f"[{self.done}/{self.total}] {name}: {minutes(seconds)}"
                    + (f"; {aps}" if aps else ""))
            if self.bar is None:
                line += (f" (elapsed {minutes(time.time() - self.started)}"
                         + (f", {self.left()})" if self.done < self.total else ")"))
            self.write(line)
            if self.bar is not None:
                self.bar.set_postfix_str(self.left(), refresh=False)
                self.bar.update(1)

    def fail(self, name: str, run_dir: Path, error: Exception) -> None:
        """A run that failed counts as done; its line says why (the error names its log)."""
        with self.lock:
            self.done += 1
            self.write(f"[{self.done}/{self.total}] {name}: FAILED: {error}")
            if self.bar is not None:
                self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
