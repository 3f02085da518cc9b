"""xforce_reports and xforce_late_extracts: import cleanly, wired as documented, cheap to parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.dags

ROOT = Path(__file__).resolve().parents[2]
DAGS = ("xforce_nightly.py", "xforce_reports.py", "xforce_late_extracts.py")


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("airflow")
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    out = {}
    for name in DAGS:
        bag = DagBag(dag_folder=str(ROOT / "dags" / name))
        assert bag.import_errors == {}, name
        out.update(bag.dags)
    return out


def test_reports_dag_is_scheduled_on_what_publish_night_emits(dags) -> None:
    outlets = dags["xforce_nightly"].get_task("publish_night").outlets
    names = {f"xforce_curated_{d}" for d in ("incidents", "anpr_reads", "seizures")}
    assert {a.name for a in outlets} == names
    assert {a.uri for a in outlets} == {
        f"xforce://curated/dataset={d}" for d in ("incidents", "anpr_reads", "seizures")
    }
    reports = dags["xforce_reports"]
    scheduled = {(a.name, a.uri) for a in reports.timetable.asset_condition.objects}
    assert scheduled == {(a.name, a.uri) for a in outlets}
    assert type(reports.timetable.asset_condition).__name__ == "AssetAll"  # all three: one run per publish
    assert [t.task_id for t in reports.tasks] == ["build_reports"]
    assert "night" in reports.params


def test_late_extracts_dag_triggers_the_nightly(dags) -> None:
    dag = dags["xforce_late_extracts"]
    assert str(dag.timetable.summary).startswith("45 * * * *")
    assert dag.catchup is False and dag.max_active_runs == 1
    trigger = dag.get_task("trigger_nightly")
    assert trigger.partial_kwargs["trigger_dag_id"] == "xforce_nightly"
    assert trigger.partial_kwargs["skip_when_already_exists"] is True
    assert "find_late_nights" in trigger.upstream_task_ids


@pytest.mark.parametrize("name", ["xforce_reports", "xforce_late_extracts"])
def test_policy(dags, name: str) -> None:
    dag = dags[name]
    assert dag.doc_md and {"xforce"} <= set(dag.tags)
    for task in dag.tasks:
        assert task.owner == "xforce", task.task_id
        assert task.retries >= 1, task.task_id
        assert task.doc_md, task.task_id


def test_parse_is_cheap() -> None:
    """Parsing either DAG file imports neither the report/late logic nor anything heavy."""
    code = (
        "import sys, json, runpy\n"
        f"runpy.run_path({str(ROOT / 'dags' / 'xforce_reports.py')!r})\n"
        f"runpy.run_path({str(ROOT / 'dags' / 'xforce_late_extracts.py')!r})\n"
        "heavy = [m for m in ('great_expectations', 'pyproj', 'pandas', 'duckdb', 'xforce.pipeline', "
        "'xforce.reports', 'xforce.late') if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
