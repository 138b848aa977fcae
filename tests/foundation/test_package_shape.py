"""The package's shape: one folder per stage, imports only downwards, no cycles, small modules and classes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "lakehouse"
# The stages, lowest first: a module imports only from its own stage or a lower one. `commands` (the command line:
# the scripts' parsers and mains, and the `lakehouse` command) sits on top, the one stage that may import every other.
STAGES = ["foundation", "kafka", "produce", "lake", "warehouse", "governance", "orchestration", "commands"]
MAX_MODULE_LINES, MAX_CLASS_LINES = 450, 200


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else "foundation"


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The lakehouse modules `module` imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lakehouse"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
    found.discard(module)
    return {name for name in found if name in known and name != "lakehouse"}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_every_stage_has_its_folder_and_a_short_map() -> None:
    for stage in STAGES[1:]:
        init = PACKAGE / stage / "__init__.py"
        assert init.is_file(), f"lakehouse/{stage}/ is missing"
        assert len(init.read_text().splitlines()) <= 20, f"lakehouse/{stage}/__init__.py should only map its modules"


def test_stages_import_only_downwards() -> None:
    upward = [f"{module} -> {target}" for module, targets in _graph().items() for target in targets
              if STAGES.index(_stage(target)) > STAGES.index(_stage(module))]
    assert upward == []


def test_there_are_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


@pytest.mark.parametrize("module", sorted(_modules()))
def test_modules_and_classes_stay_small(module: str) -> None:
    path = _modules()[module]
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: {len(source.splitlines())} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            size = node.end_lineno - node.lineno + 1
            assert size <= MAX_CLASS_LINES, f"{module}.{node.name}: {size} lines"
