"""xforce_retention: imports cleanly, is cheap to parse, follows the house rules, has a dry-run param."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.dags

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "xforce_retention.py"


@pytest.fixture(scope="module")
def dag(tmp_path_factory: pytest.TempPathFactory):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["xforce_retention"]


def test_retention_policy(dag) -> None:
    assert dag.doc_md and "dry_run" in dag.doc_md
    assert {"xforce", "retention"} <= set(dag.tags)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert "Europe/London" in repr(dag.timetable.serialize())
    assert {t.task_id for t in dag.tasks} == {"plan_retention", "apply_retention"}
    assert "plan_retention" in dag.get_task("apply_retention").upstream_task_ids
    for task in dag.tasks:
        assert task.owner == "xforce" and task.retries >= 1 and task.doc_md, task.task_id
    assert dag.params["dry_run"] is False
    assert dag.params["today"] is None


def test_parse_is_cheap() -> None:
    code = (
        "import sys, json, runpy\n"
        f"runpy.run_path({str(DAG_FILE)!r})\n"
        "heavy = [m for m in ('great_expectations', 'pyproj', 'pandas', 'xforce.pipeline', 'xforce.retention', "
        "'duckdb') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
