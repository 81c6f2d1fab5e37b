"""The nightly DAG's own names, read from its file: dags/healthner_nightly.py owns them.

The DAG imports nothing from healthner when Airflow parses it, so it cannot take its names from
the package; the tools that set up an Airflow for it (make run, make e2e, the bench, the tests)
take them from the DAG file instead, by reading its module-level constants without importing it
(no Airflow import, no DAG built).

    python -m scripts.dag_constants TAG_POOL    # the pool of its tag tasks
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "healthner_nightly.py"


def dag_constant(name: str, dag_file: Path = DAG_FILE) -> str:
    """The literal value the DAG file assigns to `name` at module level."""
    for node in ast.parse(dag_file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(f"{dag_file}: no module-level constant {name}")


TAG_POOL = dag_constant("TAG_POOL")  # the pool the tag tasks run in; its size is nightly.tag_slots


if __name__ == "__main__":
    print(dag_constant(sys.argv[1]))
