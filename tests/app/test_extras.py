"""The core install: `healthner tag`, `query` and `validate` need none of the extras (apache-airflow,
dvc, dvclive, great-expectations), shown twice: statically (no module they reach imports an extra
at module level) and for real (the commands run with those packages made unimportable). The locks
per use are cut from requirements.lock with its very pins."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.nightly.nights import night_params, publish_day_checked, stage_and_tag, write_inbox

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "healthner"
EXTRAS_ONLY = ("airflow", "dvc", "dvclive", "great_expectations")  # what the core must not need
CORE_COMMANDS = ("tag", "query", "validate")
BLOCKER = f"""
import sys

BLOCKED = {EXTRAS_ONLY!r}


class NotInTheCoreInstall:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in the core install)", name=name)
        return None


sys.meta_path.insert(0, NotInTheCoreInstall())
"""


# --- the import graph --------------------------------------------------------------------------------


def module_file(name: str) -> Path | None:
    """The source file of a healthner module (a package's __init__), None for anything else."""
    if name.split(".")[0] != "healthner":
        return None
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(nodes: list[ast.stmt], package: str) -> set[str]:
    """Modules the statements import (`from a import b` gives a and a.b: b may be a module)."""
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def module_level_statements(tree: ast.Module) -> list[ast.stmt]:
    """What runs on import: top-level statements, into if/try blocks, not into functions, classes'
    methods, or `if TYPE_CHECKING:`."""
    found, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
        elif isinstance(node, ast.With):
            todo += node.body
        elif isinstance(node, (ast.If, ast.Try)):
            todo += node.body + node.orelse + getattr(node, "finalbody", []) + [
                s for h in getattr(node, "handlers", []) for s in h.body]
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
    return found


def package_of(path: Path) -> str:
    """The package a module's relative imports start from (for a package's __init__: itself)."""
    return ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])


def command_imports(command: str) -> set[str]:
    """The modules a CLI command imports in its body (the CLI keeps heavy imports there)."""
    trees = [ast.parse(path.read_text(encoding="utf-8")) for path in sorted((PACKAGE / "cli").glob("*.py"))]
    (function,) = [node for tree in trees for node in tree.body
                   if isinstance(node, ast.FunctionDef) and node.name == command]
    return {name for name in imported_names(list(ast.walk(function)), "healthner") if name}


def reachable(roots: set[str]) -> dict[str, set[str]]:
    """Every healthner module imported on the way from `roots` -> what it imports at module level."""
    graph: dict[str, set[str]] = {}
    todo = [name for name in roots if module_file(name)]
    while todo:
        name = todo.pop()
        if name in graph:
            continue
        path = module_file(name)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = imported_names(module_level_statements(tree), package_of(path))
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # packages run first
        todo += [n for n in [*graph[name], *parents] if module_file(n) and n not in graph]
    return graph


def extras_imported(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    return {module: sorted(n for n in names if n.split(".")[0] in EXTRAS_ONLY)
            for module, names in graph.items() if any(n.split(".")[0] in EXTRAS_ONLY for n in names)}


@pytest.mark.parametrize("command", CORE_COMMANDS)
def test_no_module_a_core_command_reaches_imports_an_extra_at_module_level(command: str) -> None:
    graph = reachable({"healthner.cli", *command_imports(command)})
    assert {"healthner.cli", "healthner.config"} <= set(graph)
    assert len(graph) > 5, sorted(graph)  # the walk did follow the command into the package
    assert extras_imported(graph) == {}


def test_the_graph_walk_sees_an_extra_imported_at_module_level(tmp_path: Path) -> None:
    """The check above can fail: a module-level import is seen, one inside a function is not."""
    tree = ast.parse("import os\ntry:\n    import dvc.api\nexcept ImportError:\n    pass\n"
                     "def later():\n    import great_expectations\n")
    names = imported_names(module_level_statements(tree), "healthner")
    assert "dvc.api" in names and "great_expectations" not in names
    assert extras_imported({"healthner.x": names}) == {"healthner.x": ["dvc.api"]}


# --- for real: the commands with the extras unimportable ----------------------------------------------


def core_only(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """`healthner ARGS` in a Python where importing an extra raises ModuleNotFoundError (a
    sitecustomize, so that every process it starts is the same)."""
    site = tmp_path / "core-only"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "healthner.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600, check=False)


def test_the_blocker_does_block(tmp_path: Path) -> None:
    done = core_only(["--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    probe = subprocess.run([sys.executable, "-c", "import dvclive"], capture_output=True, text=True, check=False,
                           env={**os.environ, "PYTHONPATH": str(tmp_path / "core-only")})
    assert probe.returncode == 1 and "not in the core install" in probe.stderr


def test_tag_and_query_run_without_the_extras(random_ensemble: Path, tmp_path: Path) -> None:
    articles = tmp_path / "articles.jsonl"
    articles.write_text("".join(json.dumps({"article_id": f"a{i}", "text": text}, ensure_ascii=False) + "\n"
                                for i, text in enumerate(["頭痛發燒三天。", "咳嗽", ""])), encoding="utf-8")
    tagged = core_only(["tag", "--model", str(random_ensemble), "--input", str(articles), "--output",
                        str(tmp_path / "entities.parquet"), "--params", str(REPO / "params.yaml")], tmp_path)
    assert tagged.returncode == 0, tagged.stderr[-3000:]
    assert (tmp_path / "entities.parquet").is_file() and "rejected" in tagged.stdout

    params = night_params(tmp_path)  # a published day to query, staged and published with the extras
    write_inbox(tmp_path, "2026-11-24", [{"article_id": "a1", "text": "頭痛"}, {"article_id": "a2", "text": "發燒"}])
    publish_day_checked(params, stage_and_tag(params, "2026-11-24"))
    params_file = tmp_path / "night.yaml"
    params_file.write_text(json.dumps(params.model_dump(mode="json", by_alias=True)), encoding="utf-8")
    queried = core_only(["query", "SELECT count(*) AS n FROM articles", "--params", str(params_file)], tmp_path)
    assert queried.returncode == 0, queried.stderr[-3000:]
    assert "2" in queried.stdout.split("n", 1)[1]


def test_validate_runs_the_python_checks_without_great_expectations(tmp_path: Path) -> None:
    from healthner.config import load_params
    from tests.corpus.test_validate import FT, conll_slice

    params = load_params(REPO / "params.yaml")
    corpus = REPO / params.data.corpus_dir
    if not corpus.is_dir():
        pytest.skip(f"real corpus not found at {corpus}")
    sliced = tmp_path / FT
    sliced.write_bytes(conll_slice(params.with_updates(data={"corpus_dir": corpus})))
    done = core_only(["validate", str(sliced), "--genre", "FT", "--params", str(REPO / "params.yaml")], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "validation passed" in done.stdout and "GX not run: great-expectations is not installed" in done.stdout
    asked = core_only(["validate", str(sliced), "--genre", "FT", "--params", str(REPO / "params.yaml"), "--data-docs",
                       str(tmp_path / "docs")], tmp_path)
    assert asked.returncode == 1
    assert asked.stderr.strip().splitlines() == [
        f"error: Data Docs ({tmp_path / 'docs'}) need great-expectations: pip install 'healthner[checks]'"]


# --- the locks -----------------------------------------------------------------------------------------


def test_the_locks_per_use_are_in_sync_with_requirements_lock() -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "make_locks.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def pins(path: Path) -> dict[str, str]:
    return dict(line.split("==") for line in path.read_text(encoding="utf-8").splitlines()
                if line and not line.startswith("#"))


def test_the_runtime_lock_pins_no_extra_and_the_same_versions() -> None:
    full, runtime = pins(REPO / "requirements.lock"), pins(REPO / "requirements" / "runtime.lock")
    worker = pins(REPO / "requirements" / "worker.lock")
    assert all(full[name] == version for name, version in {**runtime, **worker}.items())
    blocked = ("apache-airflow", "dvc", "dvclive", "great-expectations", "great_expectations", "pytest", "moto")
    assert not [name for name in runtime if name.lower() in blocked]
    assert runtime["torch"] == full["torch"] == "2.13.0"
    assert {"apache-airflow", "great_expectations", "s3fs"} <= set(worker) and "pytest" not in worker
