"""Config overrides at the end of a command line, as detectron2's `opts`: KEY VALUE pairs."""
import argparse
from typing import Sequence


def check_overrides(parser: argparse.ArgumentParser, opts: Sequence[str]) -> None:
    """Exit through `parser.error` unless `opts` are KEY VALUE pairs with no flag among them (a
    flag there was meant for the command, but argparse's REMAINDER took it as an override)."""
    flags = [o for o in opts if o.startswith("--")]
    if flags:
        parser.error(f"{flags[0]} after the KEY VALUE overrides: put the overrides last")
    if len(opts) % 2:
        parser.error(f"overrides come in KEY VALUE pairs, got {list(opts)}")
