"""xforce_retention: wired as documented, with a dry-run param. (Clean imports, cheap parsing and the
house rules, for every DAG: test_dag_integrity.py.)"""

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
