"""One run per night at a time: every step of a run takes or renews its night's lease in the ledger.

Whatever starts a run (the scheduler, ``xforce run``, a backfill, the late-extract DAG,
``xforce ingest``, a test), its land, process and publish steps hold the night; a second run of
the same night is refused with :class:`~xforce.errors.NightBusyError` until the first releases
it (end of publish) or, after a crash, until its lease expires (``XFORCE_NIGHT_LEASE_SECONDS``,
default 900, renewed by every step).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from xforce.errors import NightBusyError

if TYPE_CHECKING:
    from xforce.context import Context


def lease_seconds() -> int:
    return int(os.environ.get("XFORCE_NIGHT_LEASE_SECONDS", "").strip() or 900)


def hold_night(ctx: Context, night: str, run_id: str) -> None:
    """Take or renew the night for this run (:class:`~xforce.errors.NightBusyError` if another holds it;
    the refusal is recorded as a ``night_busy`` event of the refused run)."""
    try:
        ctx.ledger.acquire_lease(night, run_id, lease_seconds())
    except NightBusyError as exc:
        ctx.ledger.event("night_busy", night=night, detail=str(exc), run_id=run_id)
        raise
