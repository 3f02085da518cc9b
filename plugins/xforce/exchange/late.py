"""Late extracts: files that landed after their night's run, found so the night can be rerun.

A night counts once ``xforce_nightly`` has published it (the ledger has ``night_published``).
An extract of such a night is *late* when its landing folder holds files the ledger does not
have: the extract was missing at run time, or a file is new, or its checksum differs (a
changed re-delivery). Nights never published are left to their scheduled run. Landing names
the pipeline would refuse (symlinks, unsafe names, dot files) are ignored here as there.

``dags/xforce_late_extracts.py`` calls :func:`find_late_nights` hourly and triggers
``xforce_nightly`` with ``{"night": D}`` for each night found, under a run id derived from the
landing state (:attr:`LateNight.run_id`), so the same late files trigger one run, not one an hour.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from xforce.exchange.land import settle_seconds, settled
from xforce.schemas import DATASETS
from xforce.store import layout

if TYPE_CHECKING:
    from xforce.context import Context


@dataclass(frozen=True)
class LateExtract:
    force: str
    dataset: str
    reason: str  # "not in the ledger", "missing at its run", "new file", "changed file"
    files: tuple[str, ...]


@dataclass(frozen=True)
class LateNight:
    night: str
    digest: str  # of the late extracts' landing state (names, sizes, checksums)
    extracts: tuple[LateExtract, ...] = field(default=())

    @property
    def run_id(self) -> str:
        return f"late__{self.night}__{self.digest[:12]}"

    def conf(self) -> dict[str, Any]:
        return {"trigger_run_id": self.run_id, "conf": {"night": self.night}}


def _is_night(name: str) -> bool:
    try:
        return date.fromisoformat(name).isoformat() == name
    except ValueError:
        return False


def published_nights(ctx: Context) -> set[str]:
    return ctx.ledger.published_nights()


def find_late_nights(ctx: Context, today: date | None = None, lookback_days: int = 14) -> list[LateNight]:
    """Published nights (within ``lookback_days`` of ``today``) whose landing has files not yet landed.

    A file whose name and size match the ledger is hashed to confirm it is the same; a name or a
    size the ledger does not have is late without reading it.
    """
    today = today or date.today()
    oldest = (today - timedelta(days=lookback_days)).isoformat()
    published = published_nights(ctx)
    landing = ctx.zones.landing
    found: dict[str, list[tuple[LateExtract, list[str]]]] = {}
    for force in ctx.registry.forces:
        for dataset in DATASETS:
            for night in landing.list_dirs(layout.deliveries_dir(force, dataset)):
                if not _is_night(night) or night not in published or not oldest <= night <= today.isoformat():
                    continue
                late = _late_extract(ctx, night, force, dataset)
                if late is not None:
                    found.setdefault(night, []).append(late)
    out = []
    for night in sorted(found):
        state = sorted(entry for _, entries in found[night] for entry in entries)
        digest = hashlib.sha256("\n".join(state).encode()).hexdigest()
        out.append(LateNight(night, digest, tuple(e for e, _ in found[night])))
    return out


def _late_extract(ctx: Context, night: str, force: str, dataset: str) -> tuple[LateExtract, list[str]] | None:
    landing = ctx.zones.landing
    files = []
    for info in landing.list_files(layout.delivery_dir(force, dataset, night)):
        name = info.path.rsplit("/", 1)[-1]
        if info.is_symlink or not layout.SAFE_FILE_NAME.match(name):
            continue
        if not settled(info, settle_seconds(ctx.registry)):  # half uploaded: not late yet, not changed
            continue
        files.append((name, info))
    if not files:
        return None
    row = ctx.ledger.get(night, force, dataset) or {}
    landed = {f["name"]: f for f in row.get("files") or []}
    state = [f"{force}/{dataset}/{name}:{info.size}" for name, info in files]
    if not landed:
        reason = "missing at its run" if row else "not in the ledger"
        return LateExtract(force, dataset, reason, tuple(n for n, _ in files)), state
    new = [name for name, _ in files if name not in landed]
    if new:
        return LateExtract(force, dataset, "new file", tuple(new)), state
    changed = [name for name, info in files if int(landed[name]["bytes"]) != info.size]
    for name, info in files:
        if name in changed:
            continue
        sha = landing.sha256(info.path)
        if sha != landed[name]["sha256"]:
            changed.append(name)
            state.append(f"{force}/{dataset}/{name}#{sha}")
    if changed:
        return LateExtract(force, dataset, "changed file", tuple(sorted(changed))), state
    return None
