"""What each Airflow task does, as functions the DAG wires (no Airflow import at module level).

Kept apart from :mod:`xforce.pipeline` so that the pipeline stays free of Airflow: these only
translate between Airflow's world (context, skips, failures) and the plain functions.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from xforce import pipeline


def resolve_night(params: dict[str, Any], logical_date: datetime | None, timezone: str = "Europe/London") -> str:
    """The night a run processes: the ``night`` param, else the local day before the run's date."""
    if params.get("night"):
        return str(params["night"])
    if logical_date is None:
        raise ValueError("a run with no logical date needs the 'night' param")
    return (logical_date.astimezone(ZoneInfo(timezone)) - timedelta(days=1)).date().isoformat()


def land(item: dict[str, str], run_id: str) -> dict[str, Any]:
    ctx = pipeline.Context.from_env()
    return pipeline.land_extract(ctx, item["night"], item["force"], item["dataset"], run_id)


def process(ref: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Process one extract; a missing one is skipped, an unusable one fails its task (others go on)."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    if ref["status"] == "missing":
        raise AirflowSkipException(f"no {ref['dataset']} extract from {ref['force']} for {ref['night']}")
    ctx = pipeline.Context.from_env()
    if ref["status"] == "quarantined":
        row = ctx.ledger.get(ref["night"], ref["force"], ref["dataset"]) or {}
        raise AirflowFailException(f"{ref['force']}/{ref['dataset']} refused: {row.get('error')}")
    try:
        result = pipeline.process_extract(ctx, ref, run_id)
    except Exception as exc:
        ctx.ledger.record(
            ref["night"],
            ref["force"],
            ref["dataset"],
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            run_id=run_id,
        )
        raise
    if result["status"] == "quarantined":
        row = ctx.ledger.get(ref["night"], ref["force"], ref["dataset"]) or {}
        raise AirflowFailException(
            f"{ref['force']}/{ref['dataset']} quarantined whole (raw copy kept): {row.get('error')}"
        )
    return result


def publish(night: str, run_id: str) -> list[dict[str, Any]]:
    ctx = pipeline.Context.from_env()
    pipeline.publish_night(ctx, night, run_id)
    table = pipeline.night_table(ctx, night)
    print(format_table(table))
    return table


def format_table(rows: list[dict[str, Any]]) -> str:
    cols = ("force", "dataset", "received", "published", "quarantined", "status")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    for r in rows:
        line = "  ".join(
            str(r[c]).rjust(widths[c]) if isinstance(r[c], int) else str(r[c]).ljust(widths[c]) for c in cols
        )
        if r.get("error"):
            line += f"  {r['error'][:100]}"
        lines.append(line)
    return "\n".join(lines)
