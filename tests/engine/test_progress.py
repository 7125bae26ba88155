"""Progress over runs: the lines, the time left from the measured cost, and the bar on a
terminal only."""
import io
import json

from noisy_mask.engine.progress import RunProgress, ap_summary


class Terminal(io.StringIO):
    def isatty(self):
        return True


def write_results(run_dir, box, mask, boundary):
    run_dir.mkdir(parents=True)
    (run_dir / "eval_results.json").write_text(json.dumps(
        {"bbox": {"AP": box}, "segm": {"AP": mask}, "boundary": {"AP": boundary}}))


def test_time_left_is_the_measured_cost_then_the_mean_of_the_runs_done():
    progress = RunProgress(total=4, jobs=2, seconds_per_run=60.0, stream=io.StringIO())
    assert progress.seconds_left() == 120.0  # 4 runs x 60 s, 2 at a time
    progress.finish("a", "nowhere", 30.0)
    assert progress.seconds_left() == 45.0  # 3 runs x 30 s (the mean so far) / 2
    progress.finish("b", "nowhere", 90.0)
    assert progress.seconds_left() == 60.0  # 2 x 60 / 2
    assert RunProgress(total=3, stream=io.StringIO()).left() == "time left unknown"


def test_lines_name_the_run_its_log_time_and_aps(tmp_path):
    stream = io.StringIO()
    progress = RunProgress(total=2, jobs=1, seconds_per_run=200.0, stream=stream)
    write_results(tmp_path / "mid", 56.04, 58.0, 29.66)
    progress.start("mid seed 1 dice", tmp_path / "mid")
    progress.finish("mid seed 1 dice", tmp_path / "mid", 441.0)
    progress.finish("fold 2 of 2", tmp_path / "fold", 12.0)  # no eval_results.json
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"run mid seed 1 dice: log {tmp_path / 'mid' / 'train_net.out'}"
    assert lines[1].startswith("[1/2] mid seed 1 dice: 7 min; box AP 56.0, mask AP 58.0, "
                               "boundary AP 29.7 (elapsed ")
    assert lines[1].endswith(", about 7 min left)")  # 1 run left at the 441 s measured
    assert lines[2].startswith("[2/2] fold 2 of 2: 12 s (elapsed ") and "left" not in lines[2]
    assert ap_summary(tmp_path / "nothing") == ""


def test_a_terminal_gets_a_bar_and_the_same_lines_above_it(tmp_path):
    stream = Terminal()
    progress = RunProgress(total=2, jobs=2, seconds_per_run=30.0, stream=stream)
    progress.finish("clean seed 0 bce", tmp_path, 20.0)
    progress.finish("mid seed 0 bce", tmp_path, 20.0)
    progress.close()
    text = stream.getvalue()
    assert "[1/2] clean seed 0 bce: 20 s" in text and "[2/2] mid seed 0 bce: 20 s" in text
    assert "2/2 runs |" in text and "about 30 s left" in text  # the bar, from the cost at start
    assert "(elapsed" not in text  # the bar says it
