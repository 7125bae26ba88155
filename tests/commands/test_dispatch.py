"""`noisy-mask COMMAND` (and `python -m noisy_mask COMMAND`): one door to every command, and
every command the README and docs teach answers its --help."""
import re
import subprocess
import sys

import pytest
from samples import ROOT

from noisy_mask.commands import COMMANDS, main

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_help_lists_every_command_with_its_purpose(capsys):
    assert main(["--help"]) == 0
    words = " ".join(capsys.readouterr().out.split())  # purposes wrap at 100 columns
    for command, purpose in COMMANDS.items():
        assert f" {command} {' '.join(purpose.split())}" in words, command


def test_every_command_module_has_a_parser_and_main_and_its_purpose_as_description():
    import importlib

    for command, purpose in COMMANDS.items():
        module = importlib.import_module(f"noisy_mask.commands.{command}")
        parser = module.build_parser()
        assert parser.prog == f"noisy-mask {command}"
        assert parser.description.startswith(purpose), command
        assert callable(module.main)


def test_a_dash_reads_as_an_underscore_and_an_unknown_command_is_named(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train-net", "--help"])
    assert exit.value.code == 0
    assert capsys.readouterr().out.startswith("usage: noisy-mask train_net")
    assert main(["trian_net"]) == 2
    assert "unknown command 'trian_net'" in capsys.readouterr().err
    assert main([]) == 2  # no command: the list, and a usage error


def documented_commands():
    """Each distinct command the README and docs show (`noisy-mask X`, `python -m noisy_mask.X`,
    `python -m noisy_mask X`), with `visualize`'s subcommand: (door, command, file)."""
    found = {}
    # In code: after a backtick, or at the start of a line of a code block.
    pattern = re.compile(r"(?:`|^ *)(noisy-mask|python -m noisy_mask\.([a-z_.]+)|"
                         r"python -m noisy_mask) ([a-z][a-z_-]*)?", re.MULTILINE)
    for doc in DOCS:
        for match in pattern.finditer(doc.read_text()):
            door, module, word = match.groups()
            if module:  # python -m noisy_mask.X [subcommand]
                key = ("module", module, word if module == "visualize" else None)
            elif word:
                key = ("command", word, None)
            else:
                continue
            found.setdefault(key, doc.name)
    return found


def test_the_docs_name_only_commands_that_exist():
    for (door, name, _), doc in documented_commands().items():
        if door == "command":
            assert name.replace("-", "_") in COMMANDS, (name, doc)


@pytest.mark.slow
def test_every_documented_command_answers_help():
    """Each `python -m noisy_mask.X` door the docs show, as a process (all started at once);
    each `noisy-mask X` through the console script's main."""
    documented = documented_commands()
    procs = {}
    for (door, name, sub), doc in documented.items():
        if door == "module":
            args = [sys.executable, "-m", f"noisy_mask.{name}", *([sub] if sub else []), "--help"]
            procs[(name, sub, doc)] = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                                       stderr=subprocess.PIPE, text=True)
    assert {"train_net", "robustness", "audit", "refine", "noise", "data.shapes"} <= {
        name for name, _, _ in procs}
    for (name, sub, doc), proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.startswith("usage:"), (name, sub, doc, err[-2000:])
    commands = {name for (door, name, _) in documented if door == "command"}
    assert {"demo", "robustness", "mask_threshold", "loss_variants"} <= commands
    for name in commands:
        with pytest.raises(SystemExit) as exit:
            main([name, "--help"])
        assert exit.value.code == 0, name


def test_python_dash_m_noisy_mask_is_the_same_door():
    result = subprocess.run([sys.executable, "-m", "noisy_mask", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert all(f"  {command}" in result.stdout for command in COMMANDS)
