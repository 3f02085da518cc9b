"""xforce_retention: wired as documented, with a dry-run param and a guarded `today`. (Clean imports,
cheap parsing and the house rules, for every DAG: test_dag_integrity.py.)"""

from __future__ import annotations

import pytest
from dag_folder import load_dagbag

pytestmark = pytest.mark.dags


@pytest.fixture(scope="module")
def dag(tmp_path_factory: pytest.TempPathFactory):
    return load_dagbag(tmp_path_factory.mktemp("airflow")).dags["xforce_retention"]


def test_retention_is_wired_as_documented(dag) -> None:
    assert "dry_run" in dag.doc_md
    assert "retention" in dag.tags
    assert str(dag.timetable.summary).startswith("15 5 * * *")
    assert {t.task_id for t in dag.tasks} == {"plan_retention", "apply_retention"}
    assert "plan_retention" in dag.get_task("apply_retention").upstream_task_ids
    assert dag.params["dry_run"] is False
    assert dag.params["today"] is None


def test_a_today_param_far_ahead_of_the_clock_is_refused(dag) -> None:
    from datetime import timedelta

    from airflow.sdk.exceptions import AirflowFailException

    from xforce.airflow import tasks
    from xforce.privacy import retention
    from xforce.settings import Settings

    policy = retention.load_policy(Settings.from_env().config_dir)
    tomorrow = retention.latest_today(policy)
    assert tasks._retention_day({"today": tomorrow.isoformat()}, policy) == tomorrow  # a day ahead: allowed
    assert tasks._retention_day({}, policy) == policy.today()
    with pytest.raises(AirflowFailException, match="more than a day ahead of the clock"):
        tasks._retention_day({"today": (tomorrow + timedelta(days=1)).isoformat()}, policy)
    later = tomorrow + timedelta(days=1)
    assert tasks._retention_day({"today": later.isoformat(), "force": True}, policy) == later  # meant: allowed
    assert dag.params["force"] is False
