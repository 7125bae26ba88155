"""The grid's progress, as a user reads it with output not a terminal: the built-in smoke grid
cut to two runs (bce at clean and at mid, seed 0) and a few iterations each."""
import re

import pytest

from noisy_mask.commands.robustness import main


@pytest.mark.slow
def test_the_grid_says_where_each_run_is_and_counts_to_the_total(tmp_path, capsys):
    out = tmp_path / "grid"
    assert main(["--output", str(out), "--smoke", "--losses", "bce", "--max-iter", "4",
                 "--pretrain-iters", "4", "--val-images", "3", "--jobs", "2",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    # The cost line, then each run's log once at its start, and one line per finished run.
    assert any(re.match(r"2 runs \(2 to train\) on the CPU, 2 side by side, 1 thread\(s\) each, "
                        r"\d+\.\d min per run measured there: about \d+\.\d min$", line)
               for line in lines)
    starts = sorted(line for line in lines if line.startswith("run "))
    assert starts == [f"run clean seed 0 bce: log {out}/runs/clean/seed0/bce/train_net.out",
                      f"run mid seed 0 bce: log {out}/runs/mid/seed0/bce/train_net.out",
                      f"run the cost probe: log {out}/cost_probe/train_net.out",
                      f"run the detector pretrained without masks: log {out}/pretrain/"
                      "train_net.out"]
    # The detector, pretrained first, is a count of its own (it has no evaluation).
    assert re.search(r"^\[1/1\] the detector pretrained without masks: \d+ s \(elapsed \d+ s\)$",
                     printed, re.MULTILINE)
    done = [line for line in lines if re.match(r"\[\d/2\] ", line)]
    assert len(done) == 2
    finished = {}
    for line in done:
        match = re.match(r"\[(\d)/2\] (clean|mid) seed 0 bce: \d+ s; box AP (\d+\.\d), mask AP "
                         r"(\d+\.\d), boundary AP (\d+\.\d) \(elapsed \d+ s(, about \d+ s left)?\)$",
                         line)
        assert match, line
        finished[match.group(2)] = match
    assert sorted(int(m.group(1)) for m in finished.values()) == [1, 2]  # the count reaches 2
    # the time left goes with every line but the last
    assert [m.group(6) is None for m in sorted(finished.values(), key=lambda m: m.group(1))] == [
        False, True]
    # The APs are those of the runs' own eval_results.json, rounded.
    import json

    for level, match in finished.items():
        results = json.loads((out / "runs" / level / "seed0" / "bce" / "eval_results.json")
                             .read_text())
        assert [float(match.group(i)) for i in (3, 4, 5)] == [
            round(results[task]["AP"], 1) for task in ("bbox", "segm", "boundary")]
    # Nothing of the runs' own logs (iterations, AP tables) is printed again; no bar off a terminal.
    assert "iter:" not in printed and "|" not in printed.split("Verdict")[0]
