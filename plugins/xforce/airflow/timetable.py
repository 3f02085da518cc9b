"""The nightly schedule, keyed by its night: a run's logical date is the night it processes and a
scheduled run's id names it (``night__2026-11-27``).

``xforce_nightly`` runs at 02:30 Europe/London for the local day before. As a plain
``CronTriggerTimetable`` its logical date was the run time (the day after the night) and its run id
``scheduled__<run time>``: the grid said one day and the runs processed another. Here each run's
data interval is the 24 hours before its trigger, so the logical date (the interval's start, 02:30
on the night) falls on the night in local time, whatever the clock change. A fresh deployment,
unpaused, waits for the next 02:30: it never runs a night from before it was deployed (a DAG
paused later and unpaused again runs the latest night it missed, as Airflow does without catchup).

Registered with Airflow by the plugin in ``plugins/xforce_ui_plugin.py`` (a custom timetable must be).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from airflow.timetables.base import DagRunInfo
from airflow.timetables.trigger import CronTriggerTimetable

if TYPE_CHECKING:
    from datetime import datetime

    from airflow.timetables.base import DataInterval, TimeRestriction

NIGHT_TZ = "Europe/London"


def night_of(interval_start: datetime, timezone: str = NIGHT_TZ) -> str:
    """The night a run processes: the local date its data interval starts on."""
    return interval_start.astimezone(ZoneInfo(timezone)).date().isoformat()


class NightlyTimetable(CronTriggerTimetable):
    """``CronTriggerTimetable`` (give it ``interval=timedelta(days=1)``) whose scheduled runs are named
    ``night__<night>`` and whose first run on a fresh deployment is the next one, not a past one."""

    def generate_run_id(
        self, *, run_type: Any, run_after: Any, data_interval: DataInterval | None, **extra: Any
    ) -> str:
        from airflow.utils.types import DagRunType

        if run_type == DagRunType.SCHEDULED and data_interval is not None:
            return f"night__{night_of(data_interval.start)}"
        return super().generate_run_id(run_type=run_type, run_after=run_after, data_interval=data_interval, **extra)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if restriction.catchup or last_automated_data_interval is not None:
            return super().next_dagrun_info(
                last_automated_data_interval=last_automated_data_interval, restriction=restriction
            )
        from airflow._shared.timezones.timezone import coerce_datetime, utcnow

        start = self._align_to_next(coerce_datetime(utcnow()))  # never a night from before deployment
        if restriction.earliest is not None:
            start = max(start, self._align_to_next(restriction.earliest))
        if restriction.latest is not None and restriction.latest < start:
            return None
        return DagRunInfo.interval(coerce_datetime(start - self._interval), start)
