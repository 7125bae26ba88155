"""Config overrides at the end of a command line."""
import argparse

import pytest

from noisy_mask.utils.overrides import check_overrides


def parser_and_opts(argv):
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--jobs", type=int)
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    return parser, parser.parse_args(argv).opts


def test_pairs_pass():
    parser, opts = parser_and_opts(["--jobs", "2", "SOLVER.BASE_LR", "0.01", "SEED", "3"])
    check_overrides(parser, opts)  # returns: nothing to report


@pytest.mark.parametrize("argv, message", [
    (["SOLVER.BASE_LR"], "overrides come in KEY VALUE pairs, got ['SOLVER.BASE_LR']"),
    (["SEED", "3", "--jobs", "2"], "--jobs after the KEY VALUE overrides: put the overrides last"),
])
def test_odd_counts_and_flags_among_overrides_are_usage_errors(argv, message, capsys):
    parser, opts = parser_and_opts(argv)
    with pytest.raises(SystemExit) as exit_info:
        check_overrides(parser, opts)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith(f"tool: error: {message}")
