"""DAG integrity and policy: imports cleanly, is cheap to parse, and follows the house rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.dags

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("airflow")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert "xforce_nightly" in dagbag.dag_ids


def test_nightly_policy(dagbag) -> None:
    dag = dagbag.dags["xforce_nightly"]
    assert dag.doc_md and "publish_night" in dag.doc_md
    assert {"xforce", "nightly"} <= set(dag.tags)
    assert dag.catchup is False and dag.max_active_runs == 1
    assert str(dag.timetable.summary).startswith("30 2 * * *")
    assert "Europe/London" in repr(dag.timetable.serialize())
    for task in dag.tasks:
        assert task.owner == "xforce", task.task_id
        assert task.retries >= 1, task.task_id
        assert task.doc_md, f"{task.task_id} has no docs"
    ids = {t.task_id for t in dag.tasks}
    assert ids == {
        "plan_night",
        "plan_extracts",
        "plan_seizures",
        "land_extract",
        "validate_extract",
        "land_seizures",
        "validate_seizures",
        "publish_night",
    }
    publish = dag.get_task("publish_night")
    assert publish.trigger_rule == "all_done"  # one broken force never holds back the others
    assert dag.get_task("validate_seizures").trigger_rule == "all_done"
    assert "validate_extract" in dag.get_task("validate_seizures").upstream_task_ids


def test_parse_is_cheap() -> None:
    """Parsing the DAG file imports neither Great Expectations, pandas, pyproj nor the pipeline."""
    code = (
        "import sys, json, runpy\n"
        f"runpy.run_path({str(ROOT / 'dags' / 'xforce_nightly.py')!r})\n"
        "heavy = [m for m in ('great_expectations', 'pyproj', 'pandas', 'xforce.pipeline', 'duckdb') "
        "if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
