"""
### xforce_late_extracts: rerun a night when an extract lands after its run

Every hour:

1. **find_late_nights**: for each night published in the last 14 days, compare the landing folders with
   the run ledger; a night is late when an extract landed that was missing at its run, or a file is new,
   or its checksum differs (a changed re-delivery). Logic: `xforce.exchange.late.find_late_nights`.
2. **trigger_nightly** (one per late night): triggers `xforce_nightly` with conf `{"night": D}`. The run id
   is derived from the late files' state, so the same late files trigger one run, not one an hour
   (an existing run is skipped). The rerun lands, validates and republishes the night atomically; a
   changed re-delivery supersedes the earlier one (ledger event `superseded`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

TZ = "Europe/London"


@dag(
    dag_id="xforce_late_extracts",
    schedule=CronTriggerTimetable("45 * * * *", timezone=TZ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["xforce", "late"],
    default_args={
        "owner": "xforce",
        "retries": 1,
        "retry_delay": timedelta(minutes=5),
        "execution_timeout": timedelta(minutes=15),
    },
    doc_md=__doc__,
)
def xforce_late_extracts() -> None:
    @task(doc_md="Published nights of the last 14 days whose landing has files the ledger does not have.")
    def find_late_nights() -> list[dict]:
        """One trigger (run id and conf) per night with late extracts."""
        from xforce.airflow import tasks

        return tasks.find_late_nights()

    TriggerDagRunOperator.partial(
        task_id="trigger_nightly",
        trigger_dag_id="xforce_nightly",
        skip_when_already_exists=True,
        doc_md='Trigger xforce_nightly for one late night (conf `{"night": D}`).',
    ).expand_kwargs(find_late_nights())


xforce_late_extracts()
