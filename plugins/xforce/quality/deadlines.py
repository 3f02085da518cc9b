"""Deadlines: an extract not landed by its configured cut-off raises an alert (a ledger event and a
line on the ``xforce.alerts`` logger), once; a night nothing landed for at all raises one alert for the
night instead of one per extract."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from xforce.quality.config import load_config

if TYPE_CHECKING:
    from xforce.context import Context


log = logging.getLogger("xforce.quality")
alerts_log = logging.getLogger("xforce.alerts")


def alert_missing_extract(
    ctx: Context, night: str, force: str, dataset: str, run_id: str | None = None, now: datetime | None = None
) -> dict[str, Any] | None:
    """Alert (ledger event ``alert`` and a log line on ``xforce.alerts``) when an extract has not landed
    by its cut-off. Returns the alert, or None (landed after all, not due yet, or already alerted)."""
    cfg = load_config(ctx.settings.config_dir)
    due = cfg.cutoff_at(night, force, dataset)
    now = now or datetime.now(UTC)
    row = ctx.ledger.get(night, force, dataset)
    if row is not None and row.get("status") != "missing":
        return None
    if now < due:
        log.info("%s/%s for %s missing but not due until %s", force, dataset, night, due.isoformat())
        return None
    if ctx.ledger.has_alert(night, force, dataset) or ctx.ledger.has_night_alert(night):
        return None  # said once: for this extract, or for the whole night
    local = due.astimezone(ZoneInfo(cfg.timezone))
    message = (
        f"ALERT: {force} has not delivered its {dataset} extract for the night of {night} "
        f"(cut-off {local:%Y-%m-%d %H:%M} {cfg.timezone}); the other extracts publish as usual"
    )
    alert = {"kind": "extract_missing", "cutoff": due.isoformat(), "message": message}
    ctx.ledger.event("alert", night=night, force=force, dataset=dataset, run_id=run_id, detail=alert)
    alerts_log.warning(message)
    return alert


def alert_nothing_landed(
    ctx: Context, night: str, run_id: str | None = None, now: datetime | None = None
) -> dict[str, Any] | None:
    """One alert for a night for which no force delivered anything, once its earliest cut-off has
    passed (instead of an alert per extract: the cause is rarely 21 forces at once, more often the
    landing location). Returns the alert, or None (not due yet, or already raised)."""
    from xforce.schemas import DATASETS

    cfg = load_config(ctx.settings.config_dir)
    due = min(cfg.cutoff_at(night, f, d) for f in ctx.registry.forces for d in DATASETS)
    if (now or datetime.now(UTC)) < due or ctx.ledger.has_night_alert(night):
        return None
    message = (
        f"ALERT: nothing landed for the night of {night} from any force ({len(ctx.registry.forces)} forces, "
        f"{len(DATASETS)} datasets): check the landing location ({ctx.settings.landing}) before the forces"
    )
    alert = {"kind": "night_empty", "cutoff": due.isoformat(), "message": message}
    ctx.ledger.event("alert", night=night, run_id=run_id, detail=alert)
    alerts_log.warning(message)
    return alert
