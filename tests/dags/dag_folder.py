"""The DAGs of ``dags/`` for the DAG tests: their ids, Airflow's DagBag of them, and what parsing one
imports. (A helper module, not a conftest.py: ``tests/conftest.py`` is imported as ``conftest``.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FOLDER = ROOT / "dags"
#: One DAG per file of dags/, named as its file (test_dag_integrity.py checks that the DagBag agrees).
DAG_IDS = tuple(sorted(p.stem for p in DAG_FOLDER.glob("*.py")))


def load_dagbag(airflow_home: Path) -> Any:
    """Airflow's DagBag of every file in dags/ (no example DAGs). The environment Airflow is given for
    it (a scratch AIRFLOW_HOME unless one is set) is put back as it was once the bag is filled."""
    with pytest.MonkeyPatch.context() as env:
        if "AIRFLOW_HOME" not in os.environ:
            env.setenv("AIRFLOW_HOME", str(airflow_home))
        env.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
        from airflow.dag_processing.dagbag import DagBag

        return DagBag(dag_folder=str(DAG_FOLDER))


def modules_imported_by_parsing(dag_id: str, candidates: tuple[str, ...], airflow_home: Path) -> list[str]:
    """Those of ``candidates`` (modules, or packages: any module of theirs counts) that a fresh
    interpreter has imported after running ``dags/<dag_id>.py``, as the DAG processor parses it."""
    code = (
        "import json, runpy, sys\n"
        f"runpy.run_path({str(DAG_FOLDER / f'{dag_id}.py')!r})\n"
        f"wanted = {list(candidates)!r}\n"
        "print(json.dumps([w for w in wanted if any(m == w or m.startswith(w + '.') for m in sys.modules)]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    env.setdefault("AIRFLOW_HOME", str(airflow_home))  # (the child's environment, not this process's)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=300)
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found
