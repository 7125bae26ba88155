"""The package's import graph, read from the sources: dependencies point one way,

    commands -> experiments -> tools (audit, refine) -> engine -> modeling -> losses

with the data, COCO, noise, evaluation and picture code below them all, and no cycle between
modules or between the package's parts."""
import ast
from pathlib import Path
from typing import Dict, List, Set

from samples import ROOT

PACKAGE = ROOT / "noisy_mask"
# A part may import its own rank or below. The `python -m noisy_mask.X` doors (a root module of
# a command's name, and the `__main__` of a package) call commands and are left out: nothing
# imports them.
RANKS = {
    "commands": 6,
    "experiments": 5,
    "audit": 4,
    "refine": 4,
    "engine": 3,
    "<root>": 2,  # noisy_mask/__init__.py: registers the head (modeling) and its config
    "modeling": 2,
    "config": 2,
    "losses": 1,
}
BELOW = ("coco", "data", "noise", "evaluation", "viz", "utils", "model_zoo")
DOORS = ("train_net", "robustness", "validate", "plot", "visualize")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> Dict[str, Set[str]]:
    """Module -> the noisy_mask modules it imports (at any depth of its code)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")
               if "__pycache__" not in p.parts and "configs" not in p.relative_to(PACKAGE).parts}
    graph: Dict[str, Set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets: Set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = (".".join(base + [node.module] if node.module else base)
                          if node.level else node.module)
                for alias in node.names if source.startswith("noisy_mask") else []:
                    full = f"{source}.{alias.name}"
                    targets.add(full if full in modules else source)
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.startswith("noisy_mask")}
        graph[name] = targets - {name}
    return graph


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "<root>"


def is_door(module: str) -> bool:
    return module.endswith(".__main__") or module in {f"noisy_mask.{d}" for d in DOORS}


def rank(module: str) -> int:
    return 0 if part(module) in BELOW else RANKS[part(module)]


def cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One cycle of `graph` (its nodes, the first repeated at the end), or []."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> List[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_every_part_has_a_rank():
    parts = {part(m) for m in import_graph() if not is_door(m)}
    assert parts <= set(RANKS) | set(BELOW), parts - set(RANKS) - set(BELOW)


def test_dependencies_point_one_way():
    graph = import_graph()
    upward = sorted(f"{source} -> {target}" for source, targets in graph.items()
                    if not is_door(source) for target in targets if rank(target) > rank(source))
    assert not upward
    # The arrows the layout is about, named: no tool, nor anything below, imports experiments.
    assert not [s for s, ts in graph.items() if not is_door(s)
                and part(s) in ("audit", "refine", "engine")
                and any(part(t) in ("experiments", "commands") for t in ts)]


def test_no_import_cycle_between_modules_or_parts():
    graph = {m: ts for m, ts in import_graph().items() if not is_door(m)}
    assert cycle(graph) == []
    parts: Dict[str, Set[str]] = {}
    for source, targets in graph.items():
        parts.setdefault(part(source), set()).update(
            part(t) for t in targets if part(t) != part(source))
    assert cycle(parts) == []


def test_the_checks_find_an_upward_arrow_and_a_cycle():
    # The graph of a tool importing an experiment, which imports the tool back.
    graph = {"noisy_mask.audit.run": {"noisy_mask.experiments.runner"},
             "noisy_mask.experiments.runner": {"noisy_mask.audit.run"}}
    assert rank("noisy_mask.experiments.runner") > rank("noisy_mask.audit.run")
    assert cycle(graph) == ["noisy_mask.audit.run", "noisy_mask.experiments.runner",
                            "noisy_mask.audit.run"]
    assert cycle({"a": {"b"}, "b": set()}) == []


def test_the_graph_reads_relative_imports():
    graph = import_graph()
    # `from ..engine.launcher import run_train_net` in audit/predict.py, and
    # `from . import predict` in audit/run.py.
    assert "noisy_mask.engine.launcher" in graph["noisy_mask.audit.predict"]
    assert "noisy_mask.audit.predict" in graph["noisy_mask.audit.run"]


def test_tests_mirror_the_package():
    """Each part of the package has its folder of tests."""
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    missing = sorted(f for f in folders if not (ROOT / "tests" / f).is_dir())
    assert not missing, missing
