"""Cross-force reports: the SQL in ``sql/reports/*.sql``, run by DuckDB over the curated dataset, and
where the results go. The page itself is rendered by :mod:`xforce.reports.page`.

The curated dataset is opened as ``pyarrow`` datasets through the curated zone's filesystem
(:class:`xforce.store.zones.Zone`: a local folder or ``s3://``), so the same code reads both and DuckDB
never has to fetch an extension (its ``httpfs`` is not bundled, and there is no internet here).
Each dataset is registered in DuckDB as a view named after it (``incidents``, ``anpr_reads``,
``seizures``, partition columns ``date`` and ``force`` included; and ``completeness``, the night's
force x dataset statuses, partition column ``date``); filters on ``date`` are pushed down to the
Parquet scan.

Output, per night ``D`` (see README "Reports"):

* ``<reports>/<report>/date=<D>/part-0.parquet`` for every report in :data:`REPORTS`;
* ``<reports>/html/<D>.html``: one static page, charts as inline SVG, no script, nothing fetched;
* ``<reports>/index.html``: every night's page, with its coverage and headline numbers.

``<reports>`` is ``XFORCE_REPORTS_URI`` when set, else ``reports`` beside the curated zone
(``data/reports`` by default). Plates appear only as the tokens the curated dataset carries.
"""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from xforce.dictionary import COMPLETENESS_DATASET, PUBLISHED
from xforce.errors import ConfigError
from xforce.reports.page import night_headline, render_index, render_page
from xforce.schemas import DATASETS
from xforce.store import layout
from xforce.store.zones import PARQUET_OPTIONS, Zone

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import duckdb

    from xforce.settings import Settings
    from xforce.store.ledger import Ledger

#: The reports, in the order they appear on the page; each is ``sql/reports/<name>.sql``.
REPORTS = (
    "night_coverage",
    "crossing_vehicles",
    "hare_coursing_night",
    "incidents_by_year",
    "incidents_by_month",
    "seizures_by_item",
    "coverage_by_month",
)
_PARTITIONS = pa.schema([pa.field("date", pa.string()), pa.field("force", pa.string())])
#: The completeness table has one file per night: only ``date`` is in its path.
_NIGHT_PARTITION = pa.schema([pa.field("date", pa.string())])
#: The views registered in DuckDB: the three datasets and the completeness table.
VIEWS = (*DATASETS, COMPLETENESS_DATASET)
_NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ----------------------------------------------------------------------------------- where
def reports_uri(settings: Settings) -> str:
    """``XFORCE_REPORTS_URI``, else ``reports`` beside the curated zone (a path or ``s3://`` URI): the
    rule of :func:`xforce.privacy.retention.reports_location`, which retention and the policies share."""
    from xforce.privacy.retention import reports_location

    uri = reports_location(settings)
    if uri is None:  # the curated zone is a whole bucket: no sibling folder to use
        raise ConfigError(f"curated zone {settings.curated.rstrip('/')} is a bucket root: set XFORCE_REPORTS_URI")
    return uri


def sql_text(name: str, sql_dir: str | Path) -> str:
    if name not in REPORTS:
        raise ConfigError(f"unknown report {name!r} (expected one of {', '.join(REPORTS)})")
    return (Path(sql_dir) / "reports" / f"{name}.sql").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ read
def curated_dataset(curated: Zone, dataset: str) -> pads.Dataset:
    """The published ``dataset`` as a Hive-partitioned pyarrow dataset with the canonical schema.

    Files written before an additive schema change simply read the new columns as null.
    Names starting with ``_`` or ``.`` (manifests, temporary files) are never read. ``completeness``
    (one file per night) has only the ``date`` partition.
    """
    partitions = _NIGHT_PARTITION if dataset == COMPLETENESS_DATASET else _PARTITIONS
    schema = pa.schema([*PUBLISHED[dataset], *partitions])
    base = layout.dataset_dir(dataset)
    if not curated.is_dir(base):
        return pads.dataset(schema.empty_table())
    return pads.dataset(
        curated.full(base),
        filesystem=curated.fs,
        format="parquet",
        partitioning=pads.partitioning(partitions, flavor="hive"),
        schema=schema,
        ignore_prefixes=[".", "_"],
    )


def connect(curated: Zone) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the three datasets and completeness as views; offline (no extension fetched)."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")  # times stay UTC; the SQL converts to Europe/London itself
    for dataset in VIEWS:
        con.register(dataset, curated_dataset(curated, dataset))
    return con


def _params(sql: str, night: str) -> dict[str, str]:
    d = date.fromisoformat(night)
    values = {
        "night": night,
        "day_before": (d - timedelta(days=1)).isoformat(),
        "day_after": (d + timedelta(days=1)).isoformat(),
    }
    return {k: v for k, v in values.items() if f"${k}" in sql}


def run_report(con: duckdb.DuckDBPyConnection, name: str, night: str, sql_dir: str | Path) -> pa.Table:
    sql = sql_text(name, sql_dir)
    table = con.sql(sql, params=_params(sql, night)).to_arrow_table()
    return table.replace_schema_metadata(None)


def run_reports(curated_uri: str, night: str, sql_dir: str | Path) -> dict[str, pa.Table]:
    """Every report for ``night`` over the curated dataset at ``curated_uri``."""
    if not _NIGHT.match(night):
        raise ConfigError(f"not a night (YYYY-MM-DD): {night!r}")
    con = connect(Zone(curated_uri))
    try:
        return {name: run_report(con, name, night, sql_dir) for name in REPORTS}
    finally:
        con.close()


# ----------------------------------------------------------------------------------- write
def write_reports(zone: Zone, night: str, tables: Mapping[str, pa.Table], page: str) -> dict[str, str]:
    """Write each table (one Parquet file per report and night, replaced whole) and the page."""
    written: dict[str, str] = {}
    for name, table in tables.items():
        buf = io.BytesIO()
        pq.write_table(table, buf, **PARQUET_OPTIONS)
        zone.write_bytes(layout.report_file(name, night), buf.getvalue())
        written[name] = zone.uri_of(layout.report_file(name, night))
    zone.write_bytes(layout.report_page(night), page.encode("utf-8"))
    written["html"] = zone.uri_of(layout.report_page(night))
    nights = sorted((f.path.rsplit("/", 1)[-1][: -len(".html")] for f in zone.list_files("html")), reverse=True)
    nights = [n for n in nights if _NIGHT.match(n)]
    headlines = {n: night_headline(_night_tables(zone, n)) for n in nights}
    zone.write_bytes("index.html", render_index(nights, headlines).encode("utf-8"))
    return written


#: What the index shows per night: its coverage and the headline numbers.
_HEADLINE_REPORTS = ("night_coverage", "crossing_vehicles", "hare_coursing_night", "seizures_by_item")


def _night_tables(zone: Zone, night: str) -> dict[str, pa.Table]:
    """The night's report tables the index needs (those written: an older night may lack some)."""
    out = {}
    for name in _HEADLINE_REPORTS:
        rel = layout.report_file(name, night)
        if zone.exists(rel):
            out[name] = zone.read_parquet(rel)
    return out


def build_reports(settings: Settings, night: str, forces: Iterable[str] | None = None) -> dict[str, Any]:
    """Run, write and render every report for ``night``; returns where they went and row counts."""
    tables = run_reports(settings.curated, night, settings.sql_dir)
    zone = Zone(reports_uri(settings))
    if forces is None:
        from xforce.intake.contracts import load_registry

        forces = list(load_registry(settings.config_dir).forces)
    page = render_page(night, tables, list(forces))
    written = write_reports(zone, night, tables, page)
    return {"night": night, "files": written, "rows": {k: t.num_rows for k, t in tables.items()}}


# ------------------------------------------------------------------ which nights to report
def source_run_ids(triggering_asset_events: Mapping[Any, Iterable[Any]] | None) -> list[str]:
    """The runs that produced the asset events a report run was triggered by."""
    ids = {
        str(e.source_run_id)
        for events in (triggering_asset_events or {}).values()
        for e in events
        if getattr(e, "source_run_id", None)
    }
    return sorted(ids)


def nights_to_report(ledger: Ledger, run_ids: Iterable[str] = (), night: str | None = None) -> list[str]:
    """The nights published by ``run_ids`` (from the ledger), plus ``night``, plus the latest night.

    The latest published night is always included: its page covers the whole history, so a
    re-published older night (a backfill, a correction, a late extract) changes it too.
    """
    nights = {night} if night else set()
    ids = sorted(set(run_ids))
    if ids:
        nights |= ledger.published_nights(ids)
    latest = ledger.latest_published_night()
    if latest:
        nights.add(latest)
    return sorted(n for n in nights if _NIGHT.match(n))
