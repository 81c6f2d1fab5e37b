"""The package's shape: sub-packages whose imports point one way, and no benchmark code inside it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "healthner"
LAYERS = ("corpus", "model", "ensemble", "nightly")  # each may import only the ones before it
BOTTOM = ("healthner.config", "healthner.sections", "healthner.errors", "healthner.io")  # every layer may import these


def _imports(path: Path) -> set[str]:
    """Every healthner module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("healthner"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("healthner"))
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_a_sub_package_imports_only_the_layers_below_it_and_the_config(layer: str) -> None:
    allowed = {*BOTTOM, *(f"healthner.{below}" for below in LAYERS[: LAYERS.index(layer) + 1])}
    upward = {
        f"{path.name}: {module}"
        for path in (PACKAGE / layer).glob("*.py")
        for module in _imports(path)
        if not any(module == ok or module.startswith(ok + ".") for ok in allowed)
    }
    assert not upward, f"healthner.{layer} reaches up: {sorted(upward)}"


def test_the_bottom_imports_no_layer() -> None:
    files = [PACKAGE / "config.py", PACKAGE / "errors.py", PACKAGE / "io.py", *(PACKAGE / "sections").glob("*.py")]
    upward = {
        f"{path.relative_to(PACKAGE)}: {module}"
        for path in files
        for module in _imports(path)
        if not any(module == ok or module.startswith(ok + ".") for ok in BOTTOM)
    }
    assert not upward, f"the bottom reaches up: {sorted(upward)}"


@pytest.mark.parametrize("layer", LAYERS)
def test_each_sub_package_says_what_lives_there(layer: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text(encoding="utf-8")))
    assert doc and "import" in doc


def test_the_installed_package_holds_no_benchmark_code() -> None:
    modules = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")]
    assert not [m for m in modules if "bench" in m]
    assert not [m for p in PACKAGE.rglob("*.py") for m in _imports(p) if "bench" in m]


def test_no_module_imports_itself_through_a_cycle() -> None:
    graph = {
        ".".join(("healthner", *p.relative_to(PACKAGE).with_suffix("").parts)): {
            m for m in _imports(p) if (PACKAGE.parent / (m.replace(".", "/") + ".py")).is_file()
        }
        for p in PACKAGE.rglob("*.py")
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            assert state.get(nxt) != 1, "import cycle: " + " -> ".join([*trail, node, nxt])
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
