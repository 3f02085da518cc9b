"""DAG integrity and policy: every DAG in dags/ imports cleanly, is cheap to parse and follows the
house rules (one parametrised test); then what is particular to xforce_nightly.

The other DAGs' own wiring is in test_report_dags.py and test_retention_dag.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from dag_folder import DAG_IDS, load_dagbag, modules_imported_by_parsing

pytestmark = pytest.mark.dags

TZ = "Europe/London"
#: What parsing a DAG file must not import: the heavy libraries, and the hub's logic (each task
#: imports what it needs when it runs).
HEAVY = (
    "great_expectations",
    "pyproj",
    "pandas",
    "duckdb",
    "xforce.exchange",
    "xforce.intake",
    "xforce.privacy",
    "xforce.quality",
    "xforce.reports",
)


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory):
    return load_dagbag(tmp_path_factory.mktemp("airflow"))


def test_every_dag_file_imports_cleanly(dagbag) -> None:
    assert dagbag.import_errors == {}
    # one DAG per file, named as its file: DAG_IDS (the policy test's parameters) misses none
    assert sorted(dagbag.dag_ids) == list(DAG_IDS)
    assert "xforce_nightly" in DAG_IDS


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_follows_the_house_rules(dagbag, dag_id: str, tmp_path: Path) -> None:
    dag = dagbag.dags[dag_id]
    assert dag.doc_md and dag.doc_md.strip(), "the DAG has no docs"
    assert "xforce" in dag.tags and len(dag.tags) >= 2, dag.tags  # "xforce" and one naming its job
    assert dag.catchup is False and dag.max_active_runs == 1
    # on the clock (a cron timetable; xforce_reports runs on assets instead): UK local time
    schedule = dag.timetable.serialize() if hasattr(dag.timetable, "serialize") else {}
    if "timezone" in schedule:
        assert schedule["timezone"] == TZ, schedule
    assert dag.tasks
    for task in dag.tasks:
        assert task.owner == "xforce", task.task_id
        assert task.retries >= 1 and task.retry_delay.total_seconds() > 0, task.task_id
        assert task.execution_timeout is not None and task.execution_timeout.total_seconds() > 0, task.task_id
        assert task.doc_md, f"{task.task_id} has no docs"
    assert modules_imported_by_parsing(dag_id, HEAVY, tmp_path / "airflow") == []  # cheap to parse


def test_nightly_is_wired_as_documented(dagbag) -> None:
    dag = dagbag.dags["xforce_nightly"]
    assert "publish_night" in dag.doc_md
    assert "nightly" in dag.tags
    assert str(dag.timetable.summary).startswith("30 2 * * *")
    ids = {t.task_id for t in dag.tasks}
    assert ids == {
        "plan_night",
        "plan_incidents",
        "plan_anpr_reads",
        "plan_seizures",
        "land_incidents",
        "validate_incidents",
        "land_anpr_reads",
        "validate_anpr_reads",
        "land_seizures",
        "validate_seizures",
        "publish_night",
    }
    publish = dag.get_task("publish_night")
    assert publish.trigger_rule == "all_done"  # one broken force never holds back the others
    assert dag.get_task("validate_seizures").trigger_rule == "all_done"
    # seizures are checked against the night's incidents; the ANPR reads do not hold them back
    assert dag.get_task("validate_seizures").upstream_task_ids == {"land_seizures", "validate_incidents"}
    assert dag.get_task("validate_anpr_reads").upstream_task_ids == {"land_anpr_reads"}
    assert dag.get_task("publish_night").upstream_task_ids == {
        "plan_night",
        "validate_incidents",
        "validate_anpr_reads",
        "validate_seizures",
    }
