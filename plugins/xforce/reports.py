"""Cross-force reports: the SQL in ``sql/reports/*.sql``, run by DuckDB over the curated dataset.

The curated dataset is opened as ``pyarrow`` datasets through the curated zone's filesystem
(:class:`xforce.storage.Zone`: a local folder or ``s3://``), so the same code reads both and DuckDB
never has to fetch an extension (its ``httpfs`` is not bundled, and there is no internet here).
Each dataset is registered in DuckDB as a view named after it (``incidents``, ``anpr_reads``,
``seizures``, partition columns ``date`` and ``force`` included); filters on ``date`` are pushed
down to the Parquet scan.

Output, per night ``D`` (see README "Reports"):

* ``<reports>/<report>/date=<D>/part-0.parquet`` for every report in :data:`REPORTS`;
* ``<reports>/html/<D>.html``: one static page, charts as inline SVG, no script, nothing fetched;
* ``<reports>/index.html``: links to every night's page.

``<reports>`` is ``XFORCE_REPORTS_URI`` when set, else ``reports`` beside the curated zone
(``data/reports`` by default). Plates appear only as the tokens the curated dataset carries.
"""

from __future__ import annotations

import html
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from xforce.errors import ConfigError
from xforce.schemas import CANONICAL, DATASETS
from xforce.storage import PARQUET_OPTIONS, Zone

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import duckdb

    from xforce.ledger import Ledger
    from xforce.settings import Settings

#: The reports, in the order they appear on the page; each is ``sql/reports/<name>.sql``.
REPORTS = (
    "crossing_vehicles",
    "hare_coursing_night",
    "incidents_by_year",
    "incidents_by_month",
    "seizures_by_item",
)
LONDON = ZoneInfo("Europe/London")
ALL_FORCES = "all forces"
_PARTITIONS = pa.schema([pa.field("date", pa.string()), pa.field("force", pa.string())])
_NIGHT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ----------------------------------------------------------------------------------- where
def reports_uri(settings: Settings) -> str:
    """``XFORCE_REPORTS_URI``, else ``reports`` beside the curated zone (a path or ``s3://`` URI)."""
    import os

    value = os.environ.get("XFORCE_REPORTS_URI", "").strip()
    if value:
        return value if value.startswith("s3://") else str(Path(value).resolve())
    curated = settings.curated.rstrip("/")
    if curated.startswith("s3://"):
        head = curated.rsplit("/", 1)[0]
        if head == "s3:/":  # the curated zone is a whole bucket: no sibling folder to use
            raise ConfigError(f"curated zone {curated} is a bucket root: set XFORCE_REPORTS_URI")
        return f"{head}/reports"
    return str(Path(curated).parent / "reports")


def sql_text(name: str, sql_dir: str | Path) -> str:
    if name not in REPORTS:
        raise ConfigError(f"unknown report {name!r} (expected one of {', '.join(REPORTS)})")
    return (Path(sql_dir) / "reports" / f"{name}.sql").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------ read
def curated_dataset(curated: Zone, dataset: str) -> pads.Dataset:
    """The published ``dataset`` as a Hive-partitioned pyarrow dataset with the canonical schema.

    Files written before an additive schema change simply read the new columns as null.
    Names starting with ``_`` or ``.`` (manifests, temporary files) are never read.
    """
    schema = pa.schema([*CANONICAL[dataset], *_PARTITIONS])
    base = f"dataset={dataset}"
    if not curated.is_dir(base):
        return pads.dataset(schema.empty_table())
    return pads.dataset(
        curated.full(base),
        filesystem=curated.fs,
        format="parquet",
        partitioning=pads.partitioning(_PARTITIONS, flavor="hive"),
        schema=schema,
        ignore_prefixes=[".", "_"],
    )


def connect(curated: Zone) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the three datasets as views; offline (no extension is fetched)."""
    import duckdb

    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute("SET TimeZone = 'UTC'")  # times stay UTC; the SQL converts to Europe/London itself
    for dataset in DATASETS:
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
def report_path(name: str, night: str) -> str:
    return f"{name}/date={night}/part-0.parquet"


def page_path(night: str) -> str:
    return f"html/{night}.html"


def write_reports(zone: Zone, night: str, tables: Mapping[str, pa.Table], page: str) -> dict[str, str]:
    """Write each table (one Parquet file per report and night, replaced whole) and the page."""
    written: dict[str, str] = {}
    for name, table in tables.items():
        buf = io.BytesIO()
        pq.write_table(table, buf, **PARQUET_OPTIONS)
        zone.write_bytes(report_path(name, night), buf.getvalue())
        written[name] = zone.uri_of(report_path(name, night))
    zone.write_bytes(page_path(night), page.encode("utf-8"))
    written["html"] = zone.uri_of(page_path(night))
    nights = sorted((f.path.rsplit("/", 1)[-1][: -len(".html")] for f in zone.list_files("html")), reverse=True)
    zone.write_bytes("index.html", render_index([n for n in nights if _NIGHT.match(n)]).encode("utf-8"))
    return written


def build_reports(settings: Settings, night: str, forces: Iterable[str] | None = None) -> dict[str, Any]:
    """Run, write and render every report for ``night``; returns where they went and row counts."""
    tables = run_reports(settings.curated, night, settings.sql_dir)
    zone = Zone(reports_uri(settings))
    if forces is None:
        from xforce.contracts import load_registry

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
    import sqlalchemy as sa

    nights = {night} if night else set()
    ids = sorted(set(run_ids))
    with ledger.engine.connect() as conn:
        if ids:
            rows = conn.execute(
                sa.text(
                    "SELECT DISTINCT night FROM xforce_events WHERE event = 'night_published' AND run_id IN :ids"
                ).bindparams(sa.bindparam("ids", expanding=True)),
                {"ids": ids},
            )
            nights.update(r[0] for r in rows if r[0])
        latest = conn.execute(sa.text("SELECT max(night) FROM xforce_events WHERE event = 'night_published'")).scalar()
    if latest:
        nights.add(str(latest))
    return sorted(n for n in nights if _NIGHT.match(n))


# ------------------------------------------------------------------------------- rendering
FORCE_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
ITEM_COLOURS = {"dog": "#8c510a", "vehicle": "#2166ac", "equipment": "#5aae61"}
HARE_RED = "#c0392b"
BAR_BLUE = "#2c6fbb"
VEHICLE_COLOURS = ("#6a3d9a", "#ff7f00", "#1f78b4", "#33a02c", "#b15928", "#fb9a99")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd}
p.note{color:#555;font-size:13px;margin:4px 0 10px} table{border-collapse:collapse;font-size:12px;margin:6px 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left} td.n{text-align:right} th{background:#f3f3f3}
code{font-size:12px} svg{display:block;margin:6px 0} .empty{color:#777;font-style:italic}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _local(ts: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if ts is None:
        return ""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(LONDON).strftime(fmt)


def _fmt_int(v: Any) -> str:
    return "" if v is None else f"{int(v):,}"


def _fmt_pct(v: Any) -> str:
    if v is None:
        return ""
    return f"{'+' if v > 0 else '−' if v < 0 else '±'}{abs(float(v)):.0f}%"


def _table(
    headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None, empty: str = "nothing to show"
) -> str:
    numeric = numeric or set()
    if not rows:
        return f'<p class="empty">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{_e(c)}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(label)}" '
        f'font-family="system-ui,sans-serif" font-size="11">' + "".join(body) + "</svg>"
    )


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    mag = 10 ** (len(str(int(v))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * mag:
            return float(step * mag)
    return float(10 * mag)


def _y_axis(x0: int, y0: int, h: int, w: int, top: float) -> list[str]:
    out = []
    for i in range(5):
        v = top * i / 4
        y = y0 + h - h * i / 4
        out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + w}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{v:,.0f}</text>')
    return out


def timeline_svg(night: str, hare: pa.Table, crossing: pa.Table, forces: list[str]) -> str:
    """Hare-coursing incidents (red diamonds, ±2 h band) and flagged vehicles' reads, per force."""
    rows = list(dict.fromkeys([*forces, *hare.column("force").to_pylist()]))
    left, top, row_h, width = 120, 28, 34, 1080
    plot_w = width - left - 20
    height = top + row_h * max(1, len(rows)) + 34
    start = datetime.combine(date.fromisoformat(night), datetime.min.time(), LONDON) - timedelta(hours=2)
    span = timedelta(hours=28).total_seconds()

    def x(ts: datetime) -> float:
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return left + plot_w * min(max((ts - start).total_seconds() / span, 0.0), 1.0)

    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    for h in range(0, 29, 2):
        xx = left + plot_w * h / 28
        t = start + timedelta(hours=h)
        body.append(f'<line x1="{xx:.1f}" y1="{top - 6}" x2="{xx:.1f}" y2="{height - 28}" stroke="#eee"/>')
        lbl = t.astimezone(LONDON).strftime("%H:%M")
        body.append(f'<text x="{xx:.1f}" y="{height - 14}" text-anchor="middle" fill="#555">{lbl}</text>')
    y_of = {f: top + row_h * i + row_h / 2 for i, f in enumerate(rows)}
    for f, y in y_of.items():
        body.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(f)}</text>')
        body.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ccc"/>')
    for f, ts in zip(hare.column("force").to_pylist(), hare.column("occurred_at").to_pylist(), strict=True):
        y = y_of[f]
        x1, x2 = x(ts - timedelta(hours=2)), x(ts + timedelta(hours=2))
        body.append(
            f'<rect x="{x1:.1f}" y="{y - 11:.1f}" width="{x2 - x1:.1f}" height="22" fill="{HARE_RED}" '
            'fill-opacity="0.12"/>'
        )
        cx = x(ts)
        body.append(
            f'<path d="M{cx:.1f} {y - 8:.1f} L{cx + 7:.1f} {y:.1f} L{cx:.1f} {y + 8:.1f} L{cx - 7:.1f} {y:.1f} Z" '
            f'fill="{HARE_RED}"><title>hare coursing, {_e(f)}, {_local(ts)}</title></path>'
        )
    for i, (token, sightings) in enumerate(
        zip(crossing.column("plate_token").to_pylist(), crossing.column("sightings").to_pylist(), strict=True)
    ):
        colour = VEHICLE_COLOURS[i % len(VEHICLE_COLOURS)]
        pts = [(x(s["read_at"]), y_of.get(s["force"], top)) for s in sightings]
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        for (px, py), s in zip(pts, sightings, strict=True):
            body.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="6" fill="{colour}" stroke="#fff" stroke-width="1.5">'
                f"<title>{_e(token[:16])}… {_e(s['force'])} {_local(s['read_at'])} {_e(s['camera_id'])}</title>"
                "</circle>"
            )
    body.append(
        f'<text x="{left + plot_w}" y="{top - 12}" text-anchor="end" font-weight="bold">'
        f"hare-coursing incidents: {hare.num_rows}; vehicles flagged: {crossing.num_rows}</text>"
    )
    return _svg(width, height, body, f"hare-coursing incidents and flagged vehicles on {night}")


def bars_svg(labels: list[str], values: list[int], notes: list[str], label: str, colour: str = BAR_BLUE) -> str:
    """Vertical bars with a value (and a note such as a year-on-year change) above each."""
    width, height, left, top, bottom = 760, 300, 60, 24, 40
    plot_w, plot_h = width - left - 20, height - top - bottom
    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    if not values:
        body.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#777">no data</text>')
        return _svg(width, height, body, label)
    top_v = _nice_max(max(values) * 1.15)
    body += _y_axis(left, top, plot_h, plot_w, top_v)
    slot = plot_w / len(values)
    bw = min(80.0, slot * 0.6)
    for i, (lbl, v, note) in enumerate(zip(labels, values, notes, strict=True)):
        h = plot_h * v / top_v
        bx = left + slot * i + (slot - bw) / 2
        by = top + plot_h - h
        body.append(
            f'<rect x="{bx:.1f}" y="{by:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{_e(lbl)}: {v:,}</title></rect>"
        )
        body.append(f'<text x="{bx + bw / 2:.1f}" y="{by - 5:.1f}" text-anchor="middle">{v:,} {_e(note)}</text>')
        body.append(f'<text x="{bx + bw / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_e(lbl)}</text>')
    return _svg(width, height, body, label)


def stacked_svg(
    categories: list[str], series: dict[str, list[int]], colours: dict[str, str], label: str, width: int = 1080
) -> str:
    """Stacked vertical bars: one bar per category, one colour per series, with a legend."""
    height, left, top, bottom = 320, 60, 34, 44
    plot_w, plot_h = width - left - 20, height - top - bottom
    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    if not categories:
        body.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#777">no data</text>')
        return _svg(width, height, body, label)
    totals = [sum(s[i] for s in series.values()) for i in range(len(categories))]
    top_v = _nice_max(max(totals) * 1.05)
    body += _y_axis(left, top, plot_h, plot_w, top_v)
    slot = plot_w / len(categories)
    bw = min(48.0, max(2.0, slot * 0.7))
    every = max(1, len(categories) // 12)
    for i, cat in enumerate(categories):
        y: float = top + plot_h
        bx = left + slot * i + (slot - bw) / 2
        for name, values in series.items():
            h = plot_h * values[i] / top_v
            if h <= 0:
                continue
            y -= h
            body.append(
                f'<rect x="{bx:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{h:.1f}" fill="{colours[name]}">'
                f"<title>{_e(name)} {_e(cat)}: {values[i]:,}</title></rect>"
            )
        if i % every == 0:
            body.append(f'<text x="{bx + bw / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_e(cat)}</text>')
    lx = left
    for name in series:
        body.append(f'<rect x="{lx}" y="8" width="12" height="12" fill="{colours[name]}"/>')
        body.append(f'<text x="{lx + 16}" y="18">{_e(name)}</text>')
        lx += 22 + 7 * len(name)
    return _svg(width, height, body, label)


def grouped_hbars_svg(
    groups: list[str], series: dict[str, list[int]], colours: dict[str, str], label: str, width: int = 760
) -> str:
    """Horizontal bars grouped per row (e.g. per force), one bar per series (e.g. item type)."""
    n = max(1, len(series))
    bar_h, gap, left, top = 9, 10, 120, 30
    height = top + len(groups) * (n * bar_h + gap) + 20
    plot_w = width - left - 70
    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>']
    if not groups:
        body.append(f'<text x="{width / 2}" y="{height / 2 + 10}" text-anchor="middle" fill="#777">no data</text>')
        return _svg(width, max(height, 80), body, label)
    top_v = _nice_max(max((v for s in series.values() for v in s), default=1))
    y = top
    for gi, g in enumerate(groups):
        body.append(f'<text x="{left - 8}" y="{y + n * bar_h / 2 + 4:.1f}" text-anchor="end">{_e(g)}</text>')
        for name, values in series.items():
            w = plot_w * values[gi] / top_v
            body.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" fill="{colours[name]}">'
                f"<title>{_e(g)} {_e(name)}: {values[gi]:,}</title></rect>"
            )
            body.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 1}" font-size="9">{values[gi]:,}</text>')
            y += bar_h
        y += gap
    lx = left
    for name in series:
        body.append(f'<rect x="{lx}" y="8" width="12" height="12" fill="{colours[name]}"/>')
        body.append(f'<text x="{lx + 16}" y="18">{_e(name)}</text>')
        lx += 26 + 7 * len(name)
    return _svg(width, height, body, label)


def _months_up_to(night: str, n: int) -> list[str]:
    d = date.fromisoformat(night)
    y, m = d.year, d.month
    out = []
    for _ in range(n):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return out[::-1]


def render_page(night: str, tables: Mapping[str, pa.Table], forces: list[str]) -> str:
    """The night's static page: charts as inline SVG, tables, no script, nothing loaded from anywhere."""
    crossing = tables["crossing_vehicles"]
    hare = tables["hare_coursing_night"]
    by_year = tables["incidents_by_year"].to_pylist()
    by_month = tables["incidents_by_month"].to_pylist()
    seizures = tables["seizures_by_item"].to_pylist()
    generated = datetime.now(UTC).astimezone(LONDON).strftime("%Y-%m-%d %H:%M %Z")
    parts: list[str] = []

    # 1. vehicles crossing force boundaries near hare coursing
    parts.append("<h2>Vehicles seen in two or more forces near hare coursing</h2>")
    parts.append(
        '<p class="note">ANPR reads within ±2 hours of a hare-coursing incident in the force that made the '
        f"read, for the night of {_e(night)} (reads published with the nights either side count too). "
        "Red diamonds: hare-coursing incidents (shaded: ±2 h); coloured lines: flagged vehicles. "
        "Vehicles are plate tokens, never plates.</p>"
    )
    parts.append(timeline_svg(night, hare, crossing, forces))
    parts.append(
        _table(
            ["plate token", "forces", "reads", "first read", "last read", "incidents"],
            [
                [
                    r["plate_token"][:16] + "…",
                    ", ".join(r["forces"]),
                    r["n_reads"],
                    _local(r["first_read_at"]),
                    _local(r["last_read_at"]),
                    ", ".join(r["incident_record_ids"]),
                ]
                for r in crossing.to_pylist()
            ],
            {2},
            "no vehicle was read in two or more forces near hare coursing on this night",
        )
    )

    # 2. incidents per financial year, all forces, with year-on-year change
    parts.append("<h2>Incidents per financial year (April to March), all forces</h2>")
    totals = [r for r in by_year if r["force"] == ALL_FORCES]
    parts.append(
        bars_svg(
            [r["financial_year"] for r in totals],
            [int(r["incidents"]) for r in totals],
            [_fmt_pct(r["change_pct"]) for r in totals],
            "incidents per financial year",
        )
    )
    lines = [
        f"{r['financial_year']}: {_fmt_int(r['incidents'])} incidents"
        + (
            f", {_fmt_pct(r['change_pct'])} on {_fmt_int(r['previous_incidents'])} the year before"
            if r["previous_incidents"]
            else ""
        )
        + ("" if r["months_with_data"] == 12 else f" ({r['months_with_data']} of 12 months with data)")
        for r in totals
    ]
    parts.append("<ul>" + "".join(f"<li>{_e(s)}</li>" for s in lines) + "</ul>" if lines else "")
    parts.append(
        _table(
            ["force", "financial year", "incidents", "year before", "change", "hare coursing", "hare coursing change"],
            [
                [
                    r["force"],
                    r["financial_year"],
                    _fmt_int(r["incidents"]),
                    _fmt_int(r["previous_incidents"]),
                    _fmt_pct(r["change_pct"]),
                    _fmt_int(r["hare_coursing"]),
                    _fmt_pct(r["hare_coursing_change_pct"]),
                ]
                for r in by_year
            ],
            {2, 3, 4, 5, 6},
        )
    )

    # 3. incidents per month and force (last 24 months up to the night)
    parts.append("<h2>Incidents per month and force (24 months to the night)</h2>")
    months = _months_up_to(night, 24)
    have = {m for m in (r["month"] for r in by_month) if m in months}
    months = [m for m in months if m >= min(have)] if have else []
    per_force = [f for f in forces if any(r["force"] == f for r in by_month)]
    per_force += sorted({r["force"] for r in by_month} - set(per_force) - {ALL_FORCES})
    counts = {(r["force"], r["month"]): int(r["incidents"]) for r in by_month}
    parts.append(
        stacked_svg(
            months,
            {f: [counts.get((f, m), 0) for m in months] for f in per_force},
            {f: FORCE_COLOURS[i % len(FORCE_COLOURS)] for i, f in enumerate(per_force)},
            "incidents per month and force",
        )
    )

    # 4. seizures per force and item type (financial year to date)
    parts.append("<h2>Seizures per force and item type</h2>")
    parts.append(
        '<p class="note">Items seized in the financial year to date (dogs are counted one by one); the table '
        "also gives the night.</p>"
    )
    items = [i for i in ITEM_COLOURS if any(r["item_type"] == i for r in seizures)]
    items += sorted({r["item_type"] for r in seizures} - set(items))
    groups = [f for f in forces if any(r["force"] == f for r in seizures)]
    groups += sorted({r["force"] for r in seizures} - set(groups) - {ALL_FORCES})
    ytd = {(r["force"], r["item_type"]): int(r["items_year_to_date"]) for r in seizures}
    parts.append(
        grouped_hbars_svg(
            groups,
            {i: [ytd.get((g, i), 0) for g in groups] for i in items},
            {i: ITEM_COLOURS.get(i, "#999999") for i in items},
            "seizures per force and item type",
        )
    )
    parts.append(
        _table(
            ["force", "item", "seizures (night)", "items (night)", "seizures (year to date)", "items (year to date)"],
            [
                [
                    r["force"],
                    r["item_type"],
                    _fmt_int(r["seizures_night"]),
                    _fmt_int(r["items_night"]),
                    _fmt_int(r["seizures_year_to_date"]),
                    _fmt_int(r["items_year_to_date"]),
                ]
                for r in seizures
            ],
            {2, 3, 4, 5},
        )
    )
    rows = {name: t.num_rows for name, t in tables.items()}
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>xforce reports {_e(night)}</title><style>{_CSS}</style></head><body>"
        f"<h1>Cross-force rural crime report: night of {_e(night)}</h1>"
        f'<p class="note">Built {_e(generated)} from the published dataset (schema v1). '
        f"Report rows: <code>{_e(json.dumps(rows))}</code>. Tables: "
        "<code>reports/&lt;report&gt;/date=&lt;night&gt;/part-0.parquet</code>.</p>"
        + "".join(parts)
        + "</body></html>\n"
    )


def render_index(nights: list[str]) -> str:
    items = "".join(f'<li><a href="html/{_e(n)}.html">{_e(n)}</a></li>' for n in nights)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>xforce reports</title><style>{_CSS}</style></head><body><h1>xforce reports</h1>"
        f"<ul>{items}</ul></body></html>\n"
    )
