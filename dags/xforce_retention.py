"""
### xforce_retention: delete what is past its retention, every day

Rules are data: `config/retention.yaml` (ANPR reads 12 months; incidents and seizures as configured).

1. **plan_retention**: list every partition whose night is before today minus its dataset's retention,
   in curated, quarantine, raw, landing and the restricted token map.
2. **apply_retention**: delete exactly those folders and log each deletion in the ledger
   (`retention_deleted` events; the night's extract rows become `expired`). With the `dry_run`
   param it only prints the list.

Params: `dry_run` (default false), `today` (YYYY-MM-DD; default: today in Europe/London; more than a
day ahead of the clock is refused unless `force` is true).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable

TZ = "Europe/London"


@dag(
    dag_id="xforce_retention",
    schedule=CronTriggerTimetable("15 5 * * *", timezone=TZ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["xforce", "retention"],
    default_args={
        "owner": "xforce",
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(hours=1),
    },
    params={
        "dry_run": Param(False, type="boolean", description="Only list what would be deleted"),
        "today": Param(
            None, type=["null", "string"], format="date", description="Date to count from (default: today, local)"
        ),
        "force": Param(
            False, type="boolean", description="Accept a `today` more than a day ahead of the clock (deletes early)"
        ),
    },
    doc_md=__doc__,
)
def xforce_retention() -> None:
    @task(doc_md="List the expired partitions of every zone (paths only) from `config/retention.yaml`.")
    def plan_retention(params: dict | None = None) -> list[dict]:
        """List the expired partitions."""
        from xforce.airflow import tasks

        return tasks.plan_retention(params or {})

    @task(doc_md="Delete the listed partitions and log each deletion in the ledger; a dry run only prints.")
    def apply_retention(expired: list[dict], params: dict | None = None, run_id: str | None = None) -> dict:
        """Delete (or, in a dry run, only print) the expired partitions."""
        from xforce.airflow import tasks

        return tasks.apply_retention(params or {}, expired, str(run_id))

    apply_retention(plan_retention())


xforce_retention()
