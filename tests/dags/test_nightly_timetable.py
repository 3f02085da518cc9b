"""xforce_nightly's schedule, keyed by its night (xforce.airflow.timetable), and its validate pool: a
scheduled run's logical date is its night and its id names it; a fresh deployment never runs a night
from before it was deployed; a manual run without a night processes the day before it was triggered."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction
from airflow.utils.types import DagRunType
from dag_folder import load_dagbag

from xforce.airflow.tasks import resolve_night
from xforce.airflow.timetable import NightlyTimetable

pytestmark = pytest.mark.dags
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="module")
def timetable(tmp_path_factory: pytest.TempPathFactory) -> NightlyTimetable:
    tt = load_dagbag(tmp_path_factory.mktemp("airflow")).dags["xforce_nightly"].timetable
    assert isinstance(tt, NightlyTimetable)
    return tt


def _local(day: str, hh: int = 2, mm: int = 30) -> pendulum.DateTime:
    return pendulum.instance(datetime.fromisoformat(f"{day}T{hh:02d}:{mm:02d}").replace(tzinfo=LONDON))


@pytest.mark.parametrize(
    "night", ["2026-11-27", "2026-03-28", "2026-03-29", "2026-10-24", "2026-10-25"], ids=lambda n: n
)
def test_each_scheduled_run_is_keyed_by_its_night_across_clock_changes(timetable: NightlyTimetable, night: str) -> None:
    before = DataInterval(_local(night) - timedelta(days=1), _local(night))  # the run for the night before
    info = timetable.next_dagrun_info(
        last_automated_data_interval=before, restriction=TimeRestriction(None, None, catchup=True)
    )
    assert info is not None and info.logical_date is not None and info.data_interval is not None
    assert info.logical_date.astimezone(LONDON).date().isoformat() == night  # the grid shows the night
    next_day = (datetime.fromisoformat(night) + timedelta(days=1)).date()
    assert info.run_after.astimezone(LONDON).date() == next_day  # and it runs the morning after
    assert info.run_after.astimezone(LONDON).strftime("%H:%M") == "02:30"
    run_id = timetable.generate_run_id(
        run_type=DagRunType.SCHEDULED, run_after=info.run_after, data_interval=info.data_interval
    )
    assert run_id == f"night__{night}"
    assert resolve_night({}, info.data_interval.start) == night


def test_a_fresh_deployment_waits_for_the_next_night(timetable: NightlyTimetable) -> None:
    now = datetime.now(UTC)
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(pendulum.datetime(2026, 1, 1), None, catchup=False),
    )
    assert info is not None
    assert now < info.run_after <= now + timedelta(days=1)  # never one from before it was deployed


def test_a_paused_deployment_unpaused_runs_the_latest_night_it_missed(timetable: NightlyTimetable) -> None:
    long_ago = DataInterval(_local("2026-01-01"), _local("2026-01-02"))
    info = timetable.next_dagrun_info(
        last_automated_data_interval=long_ago,
        restriction=TimeRestriction(pendulum.datetime(2026, 1, 1), None, catchup=False),
    )
    assert info is not None and info.run_after <= datetime.now(UTC)  # the latest 02:30, not every night since


def test_a_manual_run_without_a_night_processes_the_day_before_it_was_triggered(timetable: NightlyTimetable) -> None:
    triggered = _local("2026-12-01", 9, 0)
    interval = timetable.infer_manual_data_interval(run_after=triggered)
    assert resolve_night({}, interval.start) == "2026-11-30"
    assert resolve_night({"night": "2026-11-20"}, interval.start) == "2026-11-20"
    manual = timetable.generate_run_id(run_type=DagRunType.MANUAL, run_after=triggered, data_interval=interval)
    assert manual.startswith("manual__")
    with pytest.raises(ValueError, match="needs the 'night' param"):
        resolve_night({}, None)


def test_every_validate_task_runs_in_the_validate_pool(tmp_path_factory: pytest.TempPathFactory) -> None:
    from xforce.airflow.pools import VALIDATE_POOL

    dag = load_dagbag(tmp_path_factory.mktemp("airflow")).dags["xforce_nightly"]
    pools = {t.task_id: t.pool for t in dag.tasks}
    assert pools["validate_incidents"] == pools["validate_anpr_reads"] == pools["validate_seizures"] == VALIDATE_POOL
    assert {p for t, p in pools.items() if not t.startswith("validate")} == {"default_pool"}
