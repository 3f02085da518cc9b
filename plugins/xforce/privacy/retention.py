"""Retention as code: delete every partition older than its dataset's retention, in every zone.

The rules are data (``config/retention.yaml``). A partition is identified by its dataset and
night (the ``date=`` of the path); it is *expired* when its night is before the cutoff, today's
local date minus the dataset's retention (so on 2027-10-26 a 12-month rule keeps 2026-10-26 and
deletes 2026-10-25). Each zone has its own layout:

==========  =================================================================
curated     ``dataset=<d>/date=<night>/`` (every force, and the manifest)
quarantine  ``dataset=<d>/date=<night>/``
raw         ``<force>/<d>/<night>/``
landing     ``<force>/<d>/<night>/``
restricted  ``token_map/key_version=<v>/dataset=<d>/date=<night>/``
==========  =================================================================

Every deletion is an event ``retention_deleted`` in the ledger; the extract rows of an expired
night get status ``expired`` (their raw file references are cleared, so a re-run of that night
finds nothing rather than dangling references). A dry run lists and touches nothing.
"""

from __future__ import annotations

import calendar
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from xforce.errors import ConfigError
from xforce.intake.contracts import read_yaml
from xforce.schemas import DATASETS
from xforce.store import layout
from xforce.store.connections import Zones
from xforce.store.layout import TOKEN_MAP

if TYPE_CHECKING:
    from xforce.settings import Settings
    from xforce.store.ledger import Ledger
    from xforce.store.zones import Zone

ZONES = ("curated", "quarantine", "raw", "landing", "restricted")


@dataclass(frozen=True)
class Rule:
    dataset: str
    months: int = 0
    days: int = 0

    def cutoff(self, today: date) -> date:
        """The oldest night that is kept."""
        if self.days:
            return date.fromordinal(today.toordinal() - self.days)
        month = today.year * 12 + today.month - 1 - self.months
        year, month = divmod(month, 12)
        month += 1
        return date(year, month, min(today.day, calendar.monthrange(year, month)[1]))

    def describe(self) -> str:
        return f"{self.days} days" if self.days else f"{self.months} months"


@dataclass(frozen=True)
class Policy:
    timezone: str
    zones: tuple[str, ...]
    rules: dict[str, Rule]

    def today(self) -> date:
        return datetime.now(ZoneInfo(self.timezone)).date()


def load_policy(config_dir: str) -> Policy:
    """Read and check ``retention.yaml``."""
    path = Path(config_dir) / "retention.yaml"
    doc = read_yaml(path, "retention rules")
    zones = tuple(doc.get("zones") or ZONES)
    bad = [z for z in zones if z not in ZONES]
    if bad:
        raise ConfigError(f"{path.name}: unknown zone(s) {bad}; known: {', '.join(ZONES)}")
    rules: dict[str, Rule] = {}
    for dataset, spec in (doc.get("datasets") or {}).items():
        if dataset not in DATASETS:
            raise ConfigError(f"{path.name}: unknown dataset {dataset!r}")
        spec = spec or {}
        months, days = spec.get("months"), spec.get("days")
        if (months is None) == (days is None):
            raise ConfigError(f"{path.name}: {dataset} needs exactly one of months or days")
        value = months if months is not None else days
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{path.name}: {dataset} retention must be a positive whole number, not {value!r}")
        rules[dataset] = Rule(dataset, months=months or 0, days=days or 0)
    missing = [d for d in DATASETS if d not in rules]
    if missing:
        raise ConfigError(f"{path.name}: no retention for {missing} (every dataset needs one)")
    try:
        ZoneInfo(str(doc.get("timezone", "Europe/London")))
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"{path.name}: unknown timezone {doc.get('timezone')!r}") from exc
    return Policy(str(doc.get("timezone", "Europe/London")), zones, rules)


@dataclass(frozen=True)
class Expired:
    """One folder to delete: everything of one dataset and night in one zone (one force for raw/landing)."""

    zone: str
    path: str
    dataset: str
    night: str
    force: str | None
    cutoff: str
    retention: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _night(name: str, prefix: str = "") -> date | None:
    if not name.startswith(prefix):
        return None
    try:
        return date.fromisoformat(name[len(prefix) :])
    except ValueError:
        return None  # not a night folder: never deleted


def _candidates(zone_name: str, zone: Zone) -> list[tuple[str, str, date, str | None]]:
    """(path, dataset, night, force) of every night folder in a zone."""
    out: list[tuple[str, str, date, str | None]] = []
    if zone_name in ("curated", "quarantine"):
        for dataset in DATASETS:
            for day in zone.list_dirs(layout.dataset_dir(dataset)):
                if (night := _night(day, "date=")) is not None:
                    out.append((f"{layout.dataset_dir(dataset)}/{day}", dataset, night, None))
    elif zone_name in ("raw", "landing"):
        for force in zone.list_dirs(""):
            for dataset in DATASETS:
                for day in zone.list_dirs(f"{force}/{dataset}"):
                    if (night := _night(day)) is not None:
                        out.append((f"{force}/{dataset}/{day}", dataset, night, force))
    elif zone_name == "restricted":
        for version in zone.list_dirs(TOKEN_MAP):
            for dataset in DATASETS:
                base = f"{TOKEN_MAP}/{version}/{layout.dataset_dir(dataset)}"
                for day in zone.list_dirs(base):
                    if (night := _night(day, "date=")) is not None:
                        out.append((f"{base}/{day}", dataset, night, None))
    return out


def _zone(settings: Settings, name: str) -> Zone:
    if not getattr(settings, name, ""):
        raise ConfigError(f"zone {name!r} has no location in the settings")
    return Zones(settings).named(name)


def plan(settings: Settings, policy: Policy, today: date) -> list[Expired]:
    """Every expired folder, zone by zone (in ``policy.zones`` order), oldest night first."""
    out: list[Expired] = []
    for zone_name in policy.zones:
        zone = _zone(settings, zone_name)
        found = []
        for path, dataset, night, force in _candidates(zone_name, zone):
            rule = policy.rules[dataset]
            cutoff = rule.cutoff(today)
            if night < cutoff:
                found.append(
                    Expired(zone_name, path, dataset, night.isoformat(), force, cutoff.isoformat(), rule.describe())
                )
        out.extend(sorted(found, key=lambda e: (e.night, e.dataset, e.path)))
    return out


def apply(
    settings: Settings, ledger: Ledger, policy: Policy, today: date, *, dry_run: bool = False, run_id: str | None = None
) -> list[Expired]:
    """Delete what :func:`plan` lists (or only list it, when ``dry_run``); returns the folders."""
    expired = plan(settings, policy, today)
    if dry_run:
        return expired
    done = delete(settings, ledger, expired, run_id)
    mark_expired(ledger, policy, today)
    return done


def delete(settings: Settings, ledger: Ledger, expired: list[Expired], run_id: str | None = None) -> list[Expired]:
    """Delete each folder and log it (event ``retention_deleted``: zone, path, files, bytes, rule)."""
    done: list[Expired] = []
    for e in expired:
        zone = _zone(settings, e.zone)
        files = zone.list_files(e.path, recursive=True)
        zone.delete_dir(e.path)
        ledger.event(
            "retention_deleted",
            night=e.night,
            force=e.force,
            dataset=e.dataset,
            run_id=run_id,
            detail={
                "zone": e.zone,
                "path": e.path,
                "files": len(files),
                "bytes": sum(f.size for f in files),
                "retention": e.retention,
                "cutoff": e.cutoff,
            },
        )
        done.append(e)
    return done


def mark_expired(ledger: Ledger, policy: Policy, today: date) -> None:
    """Extract rows of expired nights: status ``expired``, raw file references cleared."""
    for row in ledger.extracts():
        rule = policy.rules.get(row["dataset"])
        if rule and row["status"] != "expired" and date.fromisoformat(row["night"]) < rule.cutoff(today):
            ledger.record(row["night"], row["force"], row["dataset"], status="expired", files=None, staged=None)


def format_plan(entries: list[Expired], dry_run: bool) -> str:
    verb = "would delete" if dry_run else "deleted"
    if not entries:
        return f"retention: nothing to delete ({'dry run' if dry_run else 'nothing deleted'})"
    lines = [f"retention: {verb} {len(entries)} folder(s)"]
    for e in entries:
        lines.append(f"  {e.zone:<10}  {e.path}  (night {e.night} < cutoff {e.cutoff}: {e.retention})")
    return "\n".join(lines)
