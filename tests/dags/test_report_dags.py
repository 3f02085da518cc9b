"""xforce_reports and xforce_late_extracts: wired as documented. (Clean imports, cheap parsing and
the house rules, for every DAG: test_dag_integrity.py.)"""

from __future__ import annotations

import pytest
from dag_folder import load_dagbag

pytestmark = pytest.mark.dags


@pytest.fixture(scope="module")
def dags(tmp_path_factory: pytest.TempPathFactory):
    return load_dagbag(tmp_path_factory.mktemp("airflow")).dags


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
    trigger = dag.get_task("trigger_nightly")
    assert trigger.partial_kwargs["trigger_dag_id"] == "xforce_nightly"
    assert trigger.partial_kwargs["skip_when_already_exists"] is True
    assert "find_late_nights" in trigger.upstream_task_ids
