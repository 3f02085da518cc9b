"""
### xforce_nightly: the cross-force exchange, every night

For each of the seven forces and each dataset (incidents, ANPR reads, seizures):

1. **plan_night**: work out the night (the run's logical date, the local day before the 02:30 run; or the `night`
   param). Scheduled runs are named `night__<night>`. **plan_incidents**, **plan_anpr_reads**, **plan_seizures**
   list the forces for each dataset.
2. **land_incidents**, **land_anpr_reads**, **land_seizures**: copy the force's files from the landing zone to the
   immutable raw zone with their SHA-256 (an identical re-delivery is a no-op). No files: the extract is *missing*
   and its next tasks are skipped.
3. **validate_incidents**, **validate_anpr_reads**, **validate_seizures**: normalise to the canonical schema,
   validate with the Great Expectations suite in `expectations/`, pseudonymise plates, split valid rows from
   quarantined rows (each with its reason), stage. Each dataset starts once its own extracts have landed; seizures
   wait for incidents so each can be checked against its incident, ANPR reads run beside both. Then the table-level
   suite and schema drift (`config/quality.yaml`): a critical failure quarantines the extract, warnings are
   flagged; results go to `docs/validation/`. A missing extract raises an alert (ledger event `alert`) once past
   its cut-off.
4. **publish_night**: move every staged extract into `curated/dataset=…/date=…/force=…` and
   `quarantine/…` (one file per partition, replaced atomically), write `_manifest.json` per dataset and night,
   and print the force x dataset table. Runs whatever happened upstream: one force never holds back the others.
   Renders the night's Data Docs page (`docs/validation/date=<night>/index.html`; the "Data exchange" view links to it).

The ledger (`XFORCE_LEDGER_URL`) has a row per extract and night with counts, checksum, status and error.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task

from xforce.airflow.assets import CURATED
from xforce.airflow.links import extract_task
from xforce.airflow.pools import VALIDATE_POOL
from xforce.airflow.timetable import NightlyTimetable

TZ = "Europe/London"


def _alert_missing_extract(context: dict) -> None:
    """A skipped validate task means its extract never landed: alert past the cut-off (config/quality.yaml)."""
    from xforce.airflow import tasks

    tasks.on_validate_skipped(context)


@dag(
    dag_id="xforce_nightly",
    # 02:30 local for the night before; a run's logical date is its night, a scheduled run is night__<night>
    schedule=NightlyTimetable("30 2 * * *", timezone=TZ, interval=timedelta(days=1)),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["xforce", "nightly"],
    default_args={
        "owner": "xforce",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
        # a hung read or worker fails its task (and only its force's extract); 1 M reads take about a minute
        "execution_timeout": timedelta(minutes=45),
    },
    params={
        "night": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Night to process (YYYY-MM-DD); default: the day before the run",
        )
    },
    doc_md=__doc__,
)
def xforce_nightly() -> None:
    @task
    def plan_night(
        params: dict | None = None, data_interval_start: datetime | None = None, run_id: str | None = None
    ) -> str:
        """Work out the night; record folders in landing that name no known force."""
        from xforce.airflow import tasks

        return tasks.plan_night(params or {}, data_interval_start, str(run_id), TZ)

    @task
    def plan_extracts(night: str, dataset: str) -> list[dict[str, str]]:
        """One item per force for the dataset, from the force registry (config/forces.yaml)."""
        from xforce.airflow import tasks

        return tasks.plan_extracts(night, [dataset])

    @extract_task(  # @task, with links to the extract's page and the night's Data Docs
        map_index_template="{{ xforce_label }}",
        doc_md="Copy this force's files for the night from `landing/<force>/<dataset>/<night>/` to "
        "`raw/…/<sha256>/` (immutable; an identical re-delivery adds nothing). Ledger: landed or missing.",
    )
    def land_extract(item: dict[str, str], run_id: str | None = None) -> dict:
        """Copy this force's files for the night from landing to raw (SHA-256, immutable)."""
        from xforce.airflow import tasks

        get_current_context()["xforce_label"] = f"{item['force']}/{item['dataset']}"  # type: ignore[typeddict-unknown-key]
        return tasks.land_extract(item, str(run_id))

    @extract_task(  # @task, with links to the extract's page and the night's Data Docs
        map_index_template="{{ xforce_label }}",
        pool=VALIDATE_POOL,  # extracts validated at once: intake.validate_slots in config/forces.yaml
        doc_md="Normalise the raw copy to the canonical schema, validate it with `expectations/<dataset>.json` "
        "(Great Expectations), pseudonymise plates and stage published and quarantined rows under "
        "`staging/`; then the table-level suite `expectations/<dataset>.table.json` and schema drift "
        "(`config/quality.yaml`): a critical failure quarantines the extract, warnings are flagged in the "
        "ledger. Results (counts, row ids) go to `docs/validation/date=<night>/`. Skipped when the extract "
        "is missing, which raises a missing-extract alert past its cut-off (ledger event `alert`); fails "
        "(others go on) when it is unreadable or quarantined.",
        on_skipped_callback=_alert_missing_extract,
    )
    def validate_extract(ref: dict, run_id: str | None = None) -> dict:
        """Normalise, validate with GX, tokenise plates, split quarantine, stage."""
        from xforce.airflow import tasks

        get_current_context()["xforce_label"] = f"{ref['force']}/{ref['dataset']}"  # type: ignore[typeddict-unknown-key]
        return tasks.process_extract(ref, str(run_id))

    @task(
        trigger_rule="all_done",
        # one asset event per curated dataset on every publish: xforce_reports (and any analyst's
        # DAG) is scheduled on these, not on the clock
        outlets=CURATED,
    )
    def publish_night(night: str, run_id: str | None = None) -> list[dict]:
        """Publish every staged extract atomically, write manifests, print the table."""
        from xforce.airflow import tasks

        return tasks.publish_night(night, str(run_id))

    night = plan_night()

    def extracts(dataset: str, **validate_args: str):  # the mapped validate task
        """plan_<dataset> -> land_<dataset> (one per force) -> validate_<dataset> (one per force)."""
        items = plan_extracts.override(task_id=f"plan_{dataset}")(night, dataset)
        landed = land_extract.override(task_id=f"land_{dataset}").expand(item=items)
        return validate_extract.override(task_id=f"validate_{dataset}", **validate_args).expand(ref=landed)

    # One land and one validate task per dataset, so each dataset's validations start once its own
    # extracts have landed. Seizures are checked against the night's incidents, so they wait for those
    # (short, and first by Airflow's default weights), not for the ANPR reads, which take longest.
    incidents, anpr_reads = extracts("incidents"), extracts("anpr_reads")
    seizures = extracts("seizures", trigger_rule="all_done")
    incidents >> seizures
    [incidents, anpr_reads, seizures] >> publish_night(night)


xforce_nightly()
