"""Each DVC stage's code deps, derived from what the stage really runs.

A stage's `cmd` is `healthner COMMAND ...`; the CLI's function for COMMAND imports the step's
module(s) inside its body. The stage runs those modules and everything they import from
`healthner`, at module level or inside functions (imports under `if TYPE_CHECKING:` never run),
plus the `__init__.py` of every package on the way. That import closure is the stage's code.
The CLI package (`healthner/cli/`) itself is left out: it only parses arguments and calls the step's
function, and listing it would make every change to any command retrain every model.

    python scripts/stage_deps.py          # list each stage's missing and stale code deps (exit 1 if any)
    python scripts/stage_deps.py --write  # rewrite dvc.yaml's code deps (comments and data deps kept)

`tests/pipeline/test_stage_deps.py` fails when dvc.yaml lacks a module of a stage's closure.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "healthner"
CLI = Path(PACKAGE) / "cli"  # the CLI package: one module per --help panel, the commands' functions in them
CODE_PREFIX = f"{PACKAGE}/"


def module_file(module: str, repo: Path = REPO) -> Path | None:
    """The file a dotted healthner module name runs (a module, or a package's __init__), if any."""
    base = repo.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(repo)
    return None


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            return True
    return False


def imported_modules(tree: ast.AST) -> set[str]:
    """Every healthner module an AST imports where it runs: `from pkg import sub` counts `pkg.sub`."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == PACKAGE:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _with_packages(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def closure(entries: set[str], repo: Path = REPO) -> set[Path]:
    """The files of the entry modules and of everything they import, transitively."""
    seen: set[Path] = set()
    todo = [m for entry in entries for m in _with_packages(entry)]
    while todo:
        path = module_file(todo.pop(), repo)
        if path is None or path in seen:
            continue
        seen.add(path)
        for module in imported_modules(ast.parse((repo / path).read_text(encoding="utf-8"))):
            todo.extend(_with_packages(module))
    return {path for path in seen if CLI not in path.parents}


def command_entries(command: str, repo: Path = REPO) -> set[str]:
    """The healthner modules the CLI's function for `command` imports (the step it calls)."""
    for source in sorted((repo / CLI).glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and command in _command_names(node):
                return imported_modules(node) | {f"{PACKAGE}.config"}  # the CLI loads params.yaml through it
    raise KeyError(f"{CLI}: no command {command!r}")


def _command_names(function: ast.FunctionDef) -> set[str]:
    names = set()
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith(".command"):
            names.add(decorator.args[0].value if decorator.args else function.name)
    return names


@dataclass(frozen=True)
class StageDeps:
    stage: str
    missing: tuple[str, ...]
    stale: tuple[str, ...]


def stage_bodies(dvc_yaml: dict) -> dict[str, dict]:
    """Each stage's body (a `foreach` stage's `do` template stands for all its instances)."""
    return {name: stage.get("do", stage) for name, stage in dvc_yaml["stages"].items()}


def _command(body: dict) -> str | None:
    words = str(body["cmd"]).split()
    return words[1] if words[:1] == [PACKAGE] and len(words) > 1 else None


def expected_code(body: dict, repo: Path = REPO) -> list[str]:
    command = _command(body)
    return sorted(p.as_posix() for p in closure(command_entries(command, repo), repo)) if command else []


def check(repo: Path = REPO) -> list[StageDeps]:
    """Per stage, the code it runs that dvc.yaml does not list, and listed code it no longer runs."""
    report = []
    for name, body in stage_bodies(YAML(typ="safe").load(repo / "dvc.yaml")).items():
        listed = {str(d) for d in body.get("deps", []) if str(d).startswith(CODE_PREFIX)}
        wanted = set(expected_code(body, repo))
        report.append(StageDeps(name, tuple(sorted(wanted - listed)), tuple(sorted(listed - wanted))))
    return report


def write(repo: Path = REPO) -> None:
    """Replace each stage's code deps by its closure, keeping the data deps, their order and comments."""
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    doc = yaml.load(repo / "dvc.yaml")
    for body in stage_bodies(doc).values():
        if _command(body) is None:
            continue
        deps = body["deps"]
        for item in [d for d in deps if str(d).startswith(CODE_PREFIX)]:
            deps.remove(item)
        deps.extend(expected_code(body, repo))
    yaml.dump(doc, repo / "dvc.yaml")


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        write()
    problems = [s for s in check() if s.missing or s.stale]
    for stage in problems:
        print(f"{stage.stage}: missing {list(stage.missing)}, stale {list(stage.stale)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
