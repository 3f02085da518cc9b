"""
### xforce_reports: the cross-force reports, whenever a night is published

Scheduled on data, not on the clock: `xforce_nightly`'s `publish_night` emits an asset event for each
curated dataset (`xforce_curated_incidents`, `xforce_curated_anpr_reads`, `xforce_curated_seizures`),
and this DAG runs once all three have new events, i.e. after every published night (a backfill or a
rerun included).

**build_reports** finds the nights the triggering runs published (from the run ledger), adds the latest
published night (its page covers the whole history) or the `night` param of a manual run, and for each
runs the SQL in `sql/reports/*.sql` with DuckDB over the curated Parquet:

* vehicles (plate tokens) read by ANPR in two or more forces within ±2 hours of hare coursing there;
* the night's hare-coursing incidents;
* incidents per force per month, and per financial year with the change on the year before;
* seizures per force and item type (night and financial year to date).

Output: `<reports>/<report>/date=<night>/part-0.parquet` and a static page `<reports>/html/<night>.html`
with the charts as inline SVG (`<reports>`: `XFORCE_REPORTS_URI`, else `reports/` beside the curated zone).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task

from xforce.airflow.assets import CURATED  # the assets publish_night in xforce_nightly emits


@dag(
    dag_id="xforce_reports",
    schedule=CURATED,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["xforce", "reports"],
    default_args={
        "owner": "xforce",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=30),
    },
    params={
        "night": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Night to report on (YYYY-MM-DD); default: the nights the triggering runs published",
        )
    },
    doc_md=__doc__,
)
def xforce_reports() -> None:
    @task(
        doc_md="Run `sql/reports/*.sql` with DuckDB over the curated dataset for each night the triggering "
        "runs published (and the latest night); write the Parquet tables and the night's HTML page.",
    )
    def build_reports(params: dict | None = None, triggering_asset_events: object = None) -> list[dict]:
        """Build every report for the nights the triggering runs published."""
        from xforce.airflow import tasks

        return tasks.build_reports(params or {}, triggering_asset_events)

    build_reports()


xforce_reports()
