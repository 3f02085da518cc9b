"""Every Airflow task of the hub, as the function its DAG calls (imported inside the task, at run time).

The DAG files only wire these; these only translate between Airflow's world (params, run ids,
skips, failures, the task log) and the plain functions of the stages, which know nothing of
Airflow. Each builds its :class:`~xforce.context.Context` once, at this edge.
"""

from __future__ import annotations

import functools
import logging
import traceback
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from xforce.context import Context
from xforce.errors import ConfigError, NightBusyError, ProcessingError, XforceError
from xforce.exchange import land, lease
from xforce.redaction import describe_error
from xforce.store.connections import loose_zone_permissions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from xforce.privacy.retention import Policy

_T = TypeVar("_T")
_P = ParamSpec("_P")


def _config_errors_fail_at_once(task: Callable[_P, _T]) -> Callable[_P, _T]:
    """A configuration error (no plate key, another key under a known key version, a wrong contract or
    setting: :class:`~xforce.errors.ConfigError`) fails the task at once: a retry would meet the same
    configuration (no retries, as for a night another run holds)."""

    @functools.wraps(task)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return task(*args, **kwargs)
        except ConfigError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc

    return run


# ------------------------------------------------------------------------------ xforce_nightly
def resolve_night(params: dict[str, Any], interval_start: datetime | None, timezone: str = "Europe/London") -> str:
    """The night a run processes: its ``night`` param, else the local date its data interval starts on
    (:class:`~xforce.airflow.timetable.NightlyTimetable`: a scheduled run's logical date, the night;
    a manual run's, the day before it was triggered)."""
    from xforce.airflow.timetable import night_of

    if params.get("night"):
        return str(params["night"])
    if interval_start is None:
        raise ValueError("a run with no data interval needs the 'night' param")
    return night_of(interval_start, timezone)


def _one_run_per_night(step: Callable[[], _T]) -> _T:
    """A night held by another run fails the task at once: retrying cannot help (no retries)."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        return step()
    except NightBusyError as exc:
        raise AirflowFailException(str(exc)) from exc


@_config_errors_fail_at_once
def plan_night(params: dict[str, Any], interval_start: datetime | None, run_id: str, timezone: str) -> str:
    """``plan_night``: the night, held for this run; folders in landing that name no known force are recorded."""
    night = resolve_night(params, interval_start, timezone)
    ctx = Context.from_env()
    _one_run_per_night(lambda: lease.hold_night(ctx, night, run_id))
    warn_loose_permissions(ctx, night, run_id)
    land.scan_landing(ctx, night, run_id)
    if land.nothing_delivered(ctx, night):  # one alert for the night, not one per force and dataset
        from xforce.quality.deadlines import alert_nothing_landed

        alert_nothing_landed(ctx, night, run_id)
    return night


def warn_loose_permissions(ctx: Context, night: str, run_id: str) -> list[dict[str, str]]:
    """At the start of a night: a ``loose_permissions`` warning event (and a task-log warning) for each
    local raw/restricted folder or key file other accounts could read (what ``xforce doctor`` reports)."""
    found = loose_zone_permissions(ctx.settings)
    for f in found:
        logging.getLogger(__name__).warning(
            "%s %s is %s, should be %s: other accounts could read it (xforce doctor)",
            f["what"],
            f["path"],
            f["mode"],
            f["want"],
        )
        ctx.ledger.event("loose_permissions", night=night, detail=f, run_id=run_id)
    return found


@_config_errors_fail_at_once
def plan_extracts(night: str, datasets: Iterable[str]) -> list[dict[str, str]]:
    """``plan_<dataset>``: one item per force x dataset (what ``land_<dataset>`` maps over)."""
    return land.plan_night(Context.from_env(), night, tuple(datasets))


@_config_errors_fail_at_once
def land_extract(item: dict[str, str], run_id: str) -> dict[str, Any]:
    """``land_<dataset>``: the force's files for the night, landing -> raw."""
    ctx = Context.from_env()
    ref = _one_run_per_night(lambda: land.land_extract(ctx, item["night"], item["force"], item["dataset"], run_id))
    files = ref.get("files") or []
    logging.getLogger(__name__).info(
        "%s/%s %s: %s; %d file(s), %d bytes%s",
        ref["force"],
        ref["dataset"],
        ref["night"],
        ref["status"],
        len(files),
        sum(int(f.get("bytes") or 0) for f in files),
        "; " + (ref.get("error") or ref.get("warning") or "") if ref.get("error") or ref.get("warning") else "",
    )
    return ref


@_config_errors_fail_at_once
def process_extract(ref: dict[str, Any], run_id: str) -> dict[str, Any]:
    """``validate_<dataset>``: a missing extract is skipped, an unusable one fails its task (others go on)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from xforce.exchange import process, tuning  # here, not at the top: each task imports only its own

    if ref["status"] == "missing":
        raise AirflowSkipException(f"no {ref['dataset']} extract from {ref['force']} for {ref['night']}")
    if ref["status"] == "quarantined":
        raise AirflowFailException(f"{ref['force']}/{ref['dataset']} refused: {ref.get('error')}")
    tuning.arrow_memory_pool()  # this task's own process (Airflow 3 runs each task in one)
    ctx = Context.from_env()
    try:
        outcome = _one_run_per_night(lambda: process.process_extract(ctx, ref, run_id))
    except AirflowFailException:
        raise
    except Exception as exc:
        # The hub's own errors say nothing of content; anything else may quote a value: described.
        message = f"{type(exc).__name__}: {exc}" if isinstance(exc, XforceError) else describe_error(exc)
        ctx.ledger.record(ref["night"], ref["force"], ref["dataset"], status="failed", error=message, run_id=run_id)
        if isinstance(exc, XforceError):
            raise
        frames = "".join(traceback.format_tb(exc.__traceback__))
        logging.getLogger(__name__).error("%s, raised at:\n%s", message, frames)
        raise ProcessingError(message) from None  # the traceback's frames above, never its message
    _log_outcome(ctx, outcome)
    if outcome.status in ("quarantined", "failed"):  # deterministic: a retry would read the same bytes
        raise AirflowFailException(
            f"{ref['force']}/{ref['dataset']} {outcome.status} whole (raw copy kept): {outcome.error}"
        )
    return outcome.ref()


def _log_outcome(ctx: Context, outcome: Any) -> None:
    """The extract's summary in the task log, and where to look next (never a value)."""
    from xforce.store import layout

    log = logging.getLogger(__name__)
    for line in outcome.summary():
        log.info("%s", line)
    results = layout.validation_results(outcome.night, outcome.force, outcome.dataset)
    log.info("Data Docs results: %s", ctx.zones.docs.uri_of(results))
    log.info(
        "more: the Data exchange view (/xforce/extract/%s/%s/%s), `xforce status --date %s`",
        outcome.night,
        outcome.force,
        outcome.dataset,
        outcome.night,
    )


@_config_errors_fail_at_once
def publish_night(night: str, run_id: str) -> list[dict[str, Any]]:
    """``publish_night``: publish what this run staged, write the manifests, print the table; its
    lineage (raw objects in, partitions out, with counts and schemas) and the curated Assets' event
    metadata (:mod:`xforce.airflow.lineage`)."""
    from xforce.airflow import lineage
    from xforce.exchange import publish

    ctx = Context.from_env()
    _one_run_per_night(lambda: publish.publish_night(ctx, night, run_id))
    lineage.report_publish(ctx, night, run_id)
    table = publish.night_table(ctx, night)
    print(publish.format_table(table))
    return table


def on_validate_skipped(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """``on_skipped_callback`` of the validate tasks (:mod:`xforce.airflow.callbacks`)."""
    from xforce.airflow.callbacks import on_validate_skipped

    return on_validate_skipped(context)


# ------------------------------------------------------------------------------ xforce_reports
@_config_errors_fail_at_once
def build_reports(params: dict[str, Any], triggering_asset_events: Any) -> list[dict[str, str]]:
    """``build_reports``: every report for the nights the triggering runs published (and the latest)."""
    from xforce.reports import queries as reports

    ctx = Context.from_env()
    run_ids = reports.source_run_ids(triggering_asset_events)
    nights = reports.nights_to_report(ctx.ledger, run_ids, params.get("night"))
    return [reports.build_reports(ctx.settings, night, list(ctx.registry.forces))["files"] for night in nights]


# ------------------------------------------------------------------------- xforce_late_extracts
@_config_errors_fail_at_once
def find_late_nights() -> list[dict[str, Any]]:
    """``find_late_nights``: one trigger (run id and conf) per night with late extracts."""
    from xforce.exchange import late

    found = late.find_late_nights(Context.from_env())
    for n in found:
        print(f"{n.night}: " + "; ".join(f"{e.force}/{e.dataset} {e.reason}" for e in n.extracts))
    return [n.conf() for n in found]


# ----------------------------------------------------------------------------- xforce_retention
def _retention_day(params: dict[str, Any], policy: Policy) -> date:
    """The ``today`` param (default: today, local); more than a day ahead of the clock is refused
    (it would delete data not yet past its retention), as ``xforce retention`` refuses it without ``--force``."""
    from airflow.sdk.exceptions import AirflowFailException

    from xforce.privacy import retention

    if not params.get("today"):
        return policy.today()
    today = date.fromisoformat(str(params["today"]))
    if today > retention.latest_today(policy) and not params.get("force"):
        raise AirflowFailException(
            f"today={today} is more than a day ahead of the clock (latest {retention.latest_today(policy)}): "
            "refused; set the `force` param (or `xforce retention --today D --force`) if that is meant"
        )
    return today


@_config_errors_fail_at_once
def plan_retention(params: dict[str, Any]) -> list[dict[str, Any]]:
    """``plan_retention``: the expired folders as small dicts (paths only), printed for the log."""
    from xforce.privacy import retention

    ctx = Context.from_env()
    policy = retention.load_policy(ctx.settings.config_dir)
    expired = retention.plan(ctx.settings, policy, _retention_day(params, policy))
    print(retention.format_plan(expired, dry_run=True))
    return [e.as_dict() for e in expired]


@_config_errors_fail_at_once
def apply_retention(params: dict[str, Any], planned: list[dict[str, Any]], run_id: str) -> dict[str, Any]:
    """``apply_retention``: delete the planned folders that are still expired (none in a dry run)."""
    from xforce.privacy import retention

    if params.get("dry_run"):
        print("dry run: nothing deleted")
        return {"dry_run": True, "deleted": 0, "planned": len(planned)}
    ctx = Context.from_env()
    policy = retention.load_policy(ctx.settings.config_dir)
    today = _retention_day(params, policy)
    still = {(e.zone, e.path): e for e in retention.plan(ctx.settings, policy, today)}
    chosen = [still[(p["zone"], p["path"])] for p in planned if (p["zone"], p["path"]) in still]
    done = retention.delete(ctx.settings, ctx.ledger, chosen, run_id)
    retention.mark_expired(ctx.ledger, policy, today)
    print(retention.format_plan(done, dry_run=False))
    return {"dry_run": False, "deleted": len(done), "planned": len(planned)}
