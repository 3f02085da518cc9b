"""Retention as code: delete every copy of a night older than its dataset's retention, in every zone.

The rules are data (``config/retention.yaml``). A partition is identified by its dataset and
night (the ``date=`` of the path); it is *expired* when its night is before the cutoff, today's
local date minus the dataset's retention (so on 2027-10-26 a 12-month rule keeps 2026-10-26 and
deletes 2026-10-25). Each zone has its own layout (:mod:`xforce.store.layout`):

==========  =================================================================
curated     ``dataset=<d>/date=<night>/`` (every force, and the manifest)
quarantine  ``dataset=<d>/date=<night>/``
raw         ``<force>/<d>/<night>/``
restricted  ``token_map/key_version=<v>/dataset=<d>/date=<night>/``
docs        ``validation/date=<night>/<force>/<d>.json`` (its dataset's rule) and
            ``validation/date=<night>/index.html`` (names every dataset's extracts: the shortest rule)
reports     ``<report>/date=<night>/`` (the shortest rule of the datasets its SQL reads, so
            ``crossing_vehicles`` follows ANPR) and ``html/<night>.html`` (every report: the shortest)
staging     ``<run key>/``: a run's folder once the run is no longer running (no live lease, no
            publish to complete): the test the publish step's own sweep applies
landing     ``<force>/<d>/<night>/``, only when asked (``include_landing: true`` or ``--include-landing``)
==========  =================================================================

Every deletion is an event ``retention_deleted`` in the ledger; the extract rows of an expired
night get status ``expired`` (their raw file references are cleared, so a re-run of that night
finds nothing rather than dangling references). A dry run lists and touches nothing.
"""

from __future__ import annotations

import calendar
import os
import re
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from xforce.errors import ConfigError
from xforce.intake.contracts import read_yaml
from xforce.schemas import DATASETS
from xforce.store import layout
from xforce.store.connections import Zones, open_zone
from xforce.store.layout import TOKEN_MAP
from xforce.store.ledger import open_ledger

if TYPE_CHECKING:
    from xforce.settings import Settings
    from xforce.store.ledger import Ledger
    from xforce.store.zones import Zone

#: Every zone retention knows, in the order it cleans them.
ZONES = ("curated", "quarantine", "raw", "restricted", "docs", "reports", "staging", "landing")
#: What is cleaned when ``config/retention.yaml`` names no ``zones``: all but landing.
DEFAULT_ZONES = tuple(z for z in ZONES if z != "landing")
#: Why a staging folder goes (it has no night of its own).
RUN_ENDED = "run not running"
_DATASET_WORD = re.compile(r"\b(" + "|".join(DATASETS) + r")\b")


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

    def with_landing(self) -> Policy:
        """The same policy, landing included (``--include-landing``)."""
        return self if "landing" in self.zones else replace(self, zones=(*self.zones, "landing"))

    def shortest(self, datasets: tuple[str, ...] | list[str], today: date) -> Rule:
        """Of these datasets' rules, the one that deletes first (a copy mixing them follows it)."""
        return max((self.rules[d] for d in datasets), key=lambda r: r.cutoff(today))


def load_policy(config_dir: str) -> Policy:
    """Read and check ``retention.yaml``."""
    path = Path(config_dir) / "retention.yaml"
    doc = read_yaml(path, "retention rules")
    zones = tuple(doc.get("zones") or DEFAULT_ZONES)
    bad = [z for z in zones if z not in ZONES]
    if bad:
        raise ConfigError(f"{path.name}: unknown zone(s) {bad}; known: {', '.join(ZONES)}")
    if "landing" in zones:
        raise ConfigError(
            f"{path.name}: landing is not listed under zones; it is cleaned only when asked: "
            "include_landing: true (or xforce retention --include-landing)"
        )
    include_landing = doc.get("include_landing", False)
    if not isinstance(include_landing, bool):
        raise ConfigError(f"{path.name}: include_landing must be true or false")
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
    policy = Policy(str(doc.get("timezone", "Europe/London")), zones, rules)
    return policy.with_landing() if include_landing else policy


def latest_today(policy: Policy) -> date:
    """The latest ``today`` retention accepts without being forced: tomorrow, local time.

    A later one deletes data that is not yet past its retention (``--force`` to mean it).
    """
    return policy.today() + timedelta(days=1)


def reports_location(settings: Settings) -> str | None:
    """Where the reports are written: ``XFORCE_REPORTS_URI``, else ``reports`` beside the curated zone.

    The one rule: ``xforce.reports.queries.reports_uri`` (where reports are written) and the
    policies use it too. None when there can be no reports: an ``s3://`` curated zone that is a whole bucket
    and no ``XFORCE_REPORTS_URI``.
    """
    value = os.environ.get("XFORCE_REPORTS_URI", "").strip()
    if value:
        return value if value.startswith("s3://") else str(Path(value).resolve())
    curated = settings.curated.rstrip("/")
    if curated.startswith("s3://"):
        head = curated.rsplit("/", 1)[0]
        return None if head == "s3:/" else f"{head}/reports"
    return str(Path(curated).parent / "reports")


@dataclass(frozen=True)
class Expired:
    """One thing to delete: a folder (``kind="folder"``) or a single file (``kind="file"``).

    Nights' copies carry their dataset, night and cutoff; a staging folder carries none of them
    (it goes because its run ended, ``retention`` says so).
    """

    zone: str
    path: str
    dataset: str | None
    night: str | None
    force: str | None
    cutoff: str | None
    retention: str
    kind: str = "folder"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _night(name: str, prefix: str = "") -> date | None:
    if not name.startswith(prefix):
        return None
    try:
        return date.fromisoformat(name[len(prefix) :])
    except ValueError:
        return None  # not a night folder: never deleted


def _hive_night(folder: str) -> date | None:
    """``date=<night>`` -> the night (None for anything else)."""
    value = layout.night_of(folder)
    return _night(value) if value is not None else None


#: (path, datasets whose rules apply, night, force, kind)
Candidate = tuple[str, tuple[str, ...], date, str | None, str]


def _candidates(zone_name: str, zone: Zone, sql_dir: str) -> list[Candidate]:
    """Every copy of a night in a zone: path, the datasets it holds, night, force, folder or file."""
    out: list[Candidate] = []
    if zone_name in ("curated", "quarantine"):
        for dataset in DATASETS:
            for day in zone.list_dirs(layout.dataset_dir(dataset)):
                if (night := _hive_night(day)) is not None:
                    out.append((layout.night_dir(dataset, night.isoformat()), (dataset,), night, None, "folder"))
    elif zone_name in ("raw", "landing"):
        for force in zone.list_dirs(""):
            for dataset in DATASETS:
                for day in zone.list_dirs(f"{force}/{dataset}"):
                    if (night := _night(day)) is not None:
                        out.append((f"{force}/{dataset}/{day}", (dataset,), night, force, "folder"))
    elif zone_name == "restricted":
        for version in zone.list_dirs(TOKEN_MAP):
            for dataset in DATASETS:
                base = f"{TOKEN_MAP}/{version}/{layout.dataset_dir(dataset)}"
                for day in zone.list_dirs(base):
                    if (night := _hive_night(day)) is not None:
                        out.append((f"{base}/{day}", (dataset,), night, None, "folder"))
    elif zone_name == "docs":
        out.extend(_docs_candidates(zone))
    elif zone_name == "reports":
        out.extend(_report_candidates(zone, sql_dir))
    return out


def _docs_candidates(zone: Zone) -> list[Candidate]:
    """Data Docs: an extract's results follow its dataset; a night's page names every dataset's extracts."""
    out: list[Candidate] = []
    for f in zone.list_files(layout.VALIDATION, recursive=True):
        parts = f.path.split("/")
        if len(parts) < 3 or (night := _hive_night(parts[1])) is None:
            continue
        n = night.isoformat()
        if len(parts) == 3 and f.path == layout.validation_page(n):
            out.append((f.path, DATASETS, night, None, "file"))
        elif len(parts) == 4 and parts[3].endswith(".json"):
            dataset = parts[3].removesuffix(".json")
            if dataset in DATASETS and f.path == layout.validation_results(n, parts[2], dataset):
                out.append((f.path, (dataset,), night, parts[2], "file"))
    return out


def report_datasets(sql_dir: str, report: str | None = None) -> tuple[str, ...]:
    """The datasets a report's SQL reads (``sql/reports/<report>.sql``); every report's when ``report`` is None.

    A report whose SQL is not found, or names no dataset, counts as reading them all, so it
    follows the shortest rule rather than outliving the data it was built from.
    """
    folder = Path(sql_dir) / "reports"
    files = [folder / f"{report}.sql"] if report is not None else sorted(folder.glob("*.sql"))
    found = {m for f in files if f.is_file() for m in _DATASET_WORD.findall(f.read_text(encoding="utf-8"))}
    return tuple(d for d in DATASETS if d in found) or DATASETS


def _report_candidates(zone: Zone, sql_dir: str) -> list[Candidate]:
    """Reports: each report's night follows the datasets its SQL reads; a night's page shows every report."""
    out: list[Candidate] = []
    seen: set[str] = set()
    every = report_datasets(sql_dir)
    for f in zone.list_files("", recursive=True):
        parts = f.path.split("/")
        if len(parts) == 3 and (night := _hive_night(parts[1])) is not None:
            folder = f"{parts[0]}/{parts[1]}"
            if folder not in seen and f.path == layout.report_file(parts[0], night.isoformat()):
                seen.add(folder)
                out.append((folder, report_datasets(sql_dir, parts[0]), night, None, "folder"))
        elif len(parts) == 2 and (night := _night(parts[1].removesuffix(".html"))) is not None:
            if f.path == layout.report_page(night.isoformat()):
                out.append((f.path, every, night, None, "file"))
    return out


def running_runs(ledger: Ledger) -> set[str]:
    """Staging folder names (run keys) of runs still running: a live night lease, or a begun publish.

    The publish step's sweep of dead runs' staging (``xforce.exchange.publish._sweep_staging``)
    keeps exactly these (and its own run's).
    """
    runs = ledger.live_lease_runs() | {str(p["run_id"]) for p in ledger.unfinished_publishes()}
    return {layout.run_key(r) for r in runs}


class _Where:
    """The zones of one plan or deletion, each opened once (reports: :func:`reports_location`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.zones = Zones(settings)
        self._reports: Zone | None = None

    def zone(self, name: str) -> Zone | None:
        """The zone, or None when it has no location (reports that cannot exist)."""
        if name == "reports":
            if self._reports is None and (uri := reports_location(self.settings)) is not None:
                self._reports = open_zone(uri)
            return self._reports
        if not getattr(self.settings, name, ""):
            raise ConfigError(f"zone {name!r} has no location in the settings")
        return self.zones.named(name)


def plan(settings: Settings, policy: Policy, today: date, ledger: Ledger | None = None) -> list[Expired]:
    """Everything expired, zone by zone (in ``policy.zones`` order), oldest night first.

    Staging folders of runs that are no longer running are listed too (``ledger``: the one to ask
    which runs are; by default this process's ledger for the settings).
    """
    where = _Where(settings)
    out: list[Expired] = []
    for zone_name in policy.zones:
        zone = where.zone(zone_name)
        if zone is None:
            continue
        if zone_name == "staging":
            running = running_runs(ledger or open_ledger(settings.ledger_url, settings.sql_dir))
            out.extend(
                Expired("staging", folder, None, None, None, None, RUN_ENDED)
                for folder in sorted(zone.list_dirs(""))
                if folder not in running
            )
            continue
        found = []
        for path, datasets, night, force, kind in _candidates(zone_name, zone, settings.sql_dir):
            rule = policy.shortest(datasets, today)
            cutoff = rule.cutoff(today)
            if night < cutoff:
                found.append(
                    Expired(
                        zone_name,
                        path,
                        rule.dataset,
                        night.isoformat(),
                        force,
                        cutoff.isoformat(),
                        rule.describe(),
                        kind,
                    )
                )
        out.extend(sorted(found, key=lambda e: (e.night or "", e.dataset or "", e.path)))
    return out


def apply(
    settings: Settings, ledger: Ledger, policy: Policy, today: date, *, dry_run: bool = False, run_id: str | None = None
) -> list[Expired]:
    """Delete what :func:`plan` lists (or only list it, when ``dry_run``); returns what was deleted."""
    expired = plan(settings, policy, today, ledger)
    if dry_run:
        return expired
    done = delete(settings, ledger, expired, run_id)
    mark_expired(ledger, policy, today)
    return done


def delete(settings: Settings, ledger: Ledger, expired: list[Expired], run_id: str | None = None) -> list[Expired]:
    """Delete each folder or file and log it (event ``retention_deleted``: zone, path, files, bytes, rule).

    A staging folder whose run is running again by now (its lease renewed since the plan) is kept.
    """
    where = _Where(settings)
    done: list[Expired] = []
    for e in expired:
        zone = where.zone(e.zone)
        if zone is None:
            continue
        if e.zone == "staging" and e.path in running_runs(ledger):
            continue
        if e.kind == "file":
            parent = e.path.rsplit("/", 1)[0] if "/" in e.path else ""
            files = [f for f in zone.list_files(parent) if f.path == e.path]
            zone.delete(e.path)
        else:
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
    lines = [f"retention: {verb} {len(entries)} folder(s) or file(s)"]
    for e in entries:
        why = f"night {e.night} < cutoff {e.cutoff}: {e.retention}" if e.night else e.retention
        lines.append(f"  {e.zone:<10}  {e.path}  ({why})")
    return "\n".join(lines)
