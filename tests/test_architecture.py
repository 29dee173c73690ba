"""The house rules of the package layout, checked on the source itself.

One folder per stage; imports flow one way (cli -> workflows -> interfaces -> stages ->
derivatives, errors, config); the pipeline never imports the simulator; no module is longer
than one sitting's reading.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hermesflow"
MAX_LINES = 400
# The stages in the order data flows; a stage may import the ones before it, never after.
STAGES = ["bids", "preproc", "glm", "roi", "group"]
# Below every stage: anyone may import these.
FOUNDATION = {"errors", "config", "derivatives", "templates", "arrays", "__init__"}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _top(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """The ``hermesflow.<top>`` folders or modules that ``path`` imports (anywhere in it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "hermesflow" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_the_stage_folders_exist():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert {*STAGES, "derivatives", "simulation", "cluster", "cli", "interfaces",
            "workflows", "containers"} <= folders


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_readable_in_one_sitting(path):
    n_lines = len(path.read_text().splitlines())
    assert n_lines <= MAX_LINES, f"{path.name} has {n_lines} lines (limit {MAX_LINES})"


def test_imports_flow_one_way():
    problems = []
    for path in _modules():
        top, imported = _top(path), _imports(path)
        if top != "cli" and "cli" in imported:
            problems.append(f"{path}: imports cli")
        if top not in {"cli", "workflows"} and "workflows" in imported:
            problems.append(f"{path}: imports workflows")
        if top not in {"cli", "simulation"} and "simulation" in imported:
            problems.append(f"{path}: the pipeline imports the simulator")
        if top in STAGES:
            later = set(STAGES[STAGES.index(top) + 1:])
            if imported & (later | {"interfaces"}):
                problems.append(f"{path}: stage {top} imports {sorted(imported & later)}")
        if top in FOUNDATION and top != "__init__":
            upward = imported - FOUNDATION - {top}
            if upward:
                problems.append(f"{path}: {top} imports {sorted(upward)}")
    assert not problems, "\n".join(problems)


def test_the_rule_checker_sees_a_violation(tmp_path):
    # The checker itself must be able to fail: a module that imports cli is reported.
    module = tmp_path / "bad.py"
    module.write_text("from hermesflow.cli.run import main\nimport hermesflow.workflows.base\n")
    assert _imports(module) == {"cli", "workflows"}
