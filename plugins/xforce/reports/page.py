"""The report page: one static HTML page per night (charts as inline SVG, tables, no script, nothing
fetched) and the index of nights, rendered from the tables :mod:`xforce.reports.queries` produces.

Every page says what it stands on: a one-line summary of the night's coverage (from the
``night_coverage`` report, i.e. the night's completeness table) opens it, the crossing-vehicles count
names the forces whose reads are absent, and the history sections name the months and forces with
absent nights (``coverage_by_month``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from xforce.html import STATUS_COLOURS, WARNING_COLOUR, document, table
from xforce.html import escape as e
from xforce.schemas import SCHEMA_VERSION

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pyarrow as pa

LONDON = ZoneInfo("Europe/London")
#: The ``force`` of the rows that sum every force (as ``sql/reports/*.sql`` name them).
ALL_FORCES = "all forces"
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
code.token{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:11px;user-select:all;
white-space:nowrap;background:#f6f8fa;padding:1px 3px}
p.summary{font-size:15px;margin:8px 0;padding:8px 10px;border-left:4px solid #2c6fbb;background:#f3f7fc}
p.summary.gaps{border-left-color:#c0392b;background:#fdf3f2} p.gap{color:#8a1f11;font-size:13px;margin:4px 0}
dl.head{display:flex;flex-wrap:wrap;align-items:baseline;font-size:13px;margin:6px 0 8px}
dl.head dt{color:#555;margin:0 4px 0 0} dl.head dd{margin:0 18px 0 0;font-weight:600} table.coverage td{font-size:11px}
ol.nights{padding-left:0;list-style:none} ol.nights li{margin:6px 0;padding:6px 8px;border:1px solid #ddd}
ol.nights a{font-weight:bold;font-size:15px} ol.nights .note{margin:2px 0 0}
"""
#: How the page names a dataset in sentences.
DATASET_LABELS = {"incidents": "incidents", "anpr_reads": "ANPR", "seizures": "seizures"}
#: Completeness statuses that leave the extract's records in the night.
PRESENT = frozenset({"published", "published_with_warnings", "late"})


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


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{e(label)}" '
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


def timeline_svg(
    night: str, hare: pa.Table, crossing: pa.Table, forces: list[str], absent: list[str] | None = None
) -> str:
    """Hare-coursing incidents (red diamonds, ±2 h band) and flagged vehicles' reads, per force.

    ``absent``: the forces whose ANPR reads are absent that night, named beside the count.
    """
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
        body.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{e(f)}</text>')
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
            f'fill="{HARE_RED}"><title>hare coursing, {e(f)}, {_local(ts)}</title></path>'
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
                f"<title>{e(token)} {e(s['force'])} {_local(s['read_at'])} {e(s['camera_id'])}</title>"
                "</circle>"
            )
    body.append(
        f'<text x="{left + plot_w}" y="{top - 12}" text-anchor="end" font-weight="bold">'
        f"hare-coursing incidents: {hare.num_rows}; vehicles flagged: {crossing.num_rows}"
        + (f" (no ANPR reads from {e(', '.join(absent))})" if absent else "")
        + "</text>"
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
            f"<title>{e(lbl)}: {v:,}</title></rect>"
        )
        body.append(f'<text x="{bx + bw / 2:.1f}" y="{by - 5:.1f}" text-anchor="middle">{v:,} {e(note)}</text>')
        body.append(f'<text x="{bx + bw / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{e(lbl)}</text>')
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
                f"<title>{e(name)} {e(cat)}: {values[i]:,}</title></rect>"
            )
        if i % every == 0:
            body.append(f'<text x="{bx + bw / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle">{e(cat)}</text>')
    lx = left
    for name in series:
        body.append(f'<rect x="{lx}" y="8" width="12" height="12" fill="{colours[name]}"/>')
        body.append(f'<text x="{lx + 16}" y="18">{e(name)}</text>')
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
        body.append(f'<text x="{left - 8}" y="{y + n * bar_h / 2 + 4:.1f}" text-anchor="end">{e(g)}</text>')
        for name, values in series.items():
            w = plot_w * values[gi] / top_v
            body.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" fill="{colours[name]}">'
                f"<title>{e(g)} {e(name)}: {values[gi]:,}</title></rect>"
            )
            body.append(f'<text x="{left + w + 4:.1f}" y="{y + bar_h - 1}" font-size="9">{values[gi]:,}</text>')
            y += bar_h
        y += gap
    lx = left
    for name in series:
        body.append(f'<rect x="{lx}" y="8" width="12" height="12" fill="{colours[name]}"/>')
        body.append(f'<text x="{lx + 16}" y="18">{e(name)}</text>')
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


def _force_label(row: Mapping[str, Any]) -> str:
    return str(row["force"]).replace("_", " ").title()


#: What an analyst needs to know of a refused extract, found in its error (first match wins).
ERROR_KINDS = (
    "wrong header",
    "empty file",
    "corrupt gzip",
    "corrupt compressed data",
    "unreadable CSV",
    "wrong encoding",
    "over the intake limit",
    "schema drift",
)


def reason_of(error: Any) -> str:
    """A refused extract's reason in a few words ("wrong header"), else the error's first clause."""
    text = str(error or "")
    kind = next((k for k in ERROR_KINDS if k in text), None)
    return kind or _short(text)


def _short(text: Any, limit: int = 70) -> str:
    """The first clause of an error or warning, short enough for a summary line."""
    first = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    first = first.split(";")[0].strip()
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


def coverage_rows(tables: Mapping[str, pa.Table]) -> list[dict[str, Any]]:
    """The night's completeness rows (``night_coverage``); empty when the night has no completeness table."""
    t = tables.get("night_coverage")
    return t.to_pylist() if t is not None else []


def absent_forces(rows: list[dict[str, Any]], dataset: str) -> list[str]:
    """Forces whose ``dataset`` extract left no records in the night (missing, quarantined, failed)."""
    return sorted(r["force"] for r in rows if r["dataset_name"] == dataset and r["status"] not in PRESENT)


def night_summary(rows: list[dict[str, Any]]) -> str:
    """One line: "19 of 21 extracts published; Suffolk ANPR missing; Kent seizures quarantined: wrong header"."""
    if not rows:
        return "Coverage unknown: this night has no completeness table (published before it existed)."
    present = [r for r in rows if r["status"] in PRESENT]
    parts = [f"{len(present)} of {len(rows)} extracts published"]
    for r in rows:
        what = f"{_force_label(r)} {DATASET_LABELS.get(r['dataset_name'], r['dataset_name'])}"
        if r["status"] == "missing":
            parts.append(f"{what} missing")
        elif r["status"] in ("quarantined", "failed"):
            why = reason_of(r.get("error"))
            parts.append(f"{what} {r['status']}" + (f": {why}" if why else ""))
    late = [r for r in rows if r["status"] == "late"]
    if len(late) <= 3:
        for r in late:
            mins = r.get("minutes_after_cutoff")
            parts.append(
                f"{_force_label(r)} {DATASET_LABELS.get(r['dataset_name'], r['dataset_name'])} late"
                + (f" ({int(mins)} min after the cut-off)" if mins is not None else "")
            )
    else:
        parts.append(f"{len(late)} received after the cut-off")
    warned = sum(
        1 for r in rows if r["status"] == "published_with_warnings" or (r["status"] == "late" and r["warning"])
    )
    if warned:
        parts.append(f"{warned} published with warnings")
    return "; ".join(parts)


def night_headline(tables: Mapping[str, pa.Table]) -> dict[str, Any]:
    """What the index shows for a night: the summary line and the headline numbers."""
    rows = coverage_rows(tables)
    out: dict[str, Any] = {
        "summary": night_summary(rows),
        "complete": bool(rows) and all(r["status"] in PRESENT for r in rows),
        "known": bool(rows),
        "published": sum(1 for r in rows if r["status"] in PRESENT),
        "expected": len(rows),
    }
    if "crossing_vehicles" in tables:
        out["vehicles_flagged"] = tables["crossing_vehicles"].num_rows
    if "hare_coursing_night" in tables:
        out["hare_coursing"] = tables["hare_coursing_night"].num_rows
    if "seizures_by_item" in tables:
        out["seizures"] = sum(
            int(r["seizures_night"] or 0) for r in tables["seizures_by_item"].to_pylist() if r["force"] == ALL_FORCES
        )
    out["absent_anpr"] = absent_forces(rows, "anpr_reads")
    return out


def _gaps(tables: Mapping[str, pa.Table], dataset: str, months: set[str] | None = None) -> list[dict[str, Any]]:
    t = tables.get("coverage_by_month")
    rows = t.to_pylist() if t is not None else []
    return [r for r in rows if r["dataset_name"] == dataset and (months is None or r["month"] in months)]


def gaps_html(tables: Mapping[str, pa.Table], dataset: str, months: set[str] | None = None) -> str:
    """A note naming the months and forces with absent nights of ``dataset`` (empty: none known)."""
    gaps = _gaps(tables, dataset, months)
    if not gaps:
        return ""
    items = "; ".join(
        f"{r['month']}: {r['force']} ({r['nights_absent']} night{'s' if r['nights_absent'] != 1 else ''}: "
        f"{', '.join(r['absent_nights'])})"
        for r in gaps
    )
    label = DATASET_LABELS.get(dataset, dataset)
    return (
        f'<p class="gap" data-gaps="{e(dataset)}">Months and forces with nights whose {e(label)} extract is '
        f"absent (the counts there are low): {e(items)}.</p>"
    )


def _coverage_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    head = "".join(
        f"<th>{h}</th>" for h in ("force", "dataset", "status", "received", "published", "quarantined", "why")
    )
    body = []
    for r in rows:
        colour = (
            WARNING_COLOUR
            if r["status"] in ("published_with_warnings", "late")
            else STATUS_COLOURS.get(r["status"], "#fff")
        )
        body.append(
            f'<tr data-force="{e(r["force"])}" data-dataset="{e(r["dataset_name"])}">'
            f"<td>{e(r['force'])}</td><td>{e(r['dataset_name'])}</td>"
            f'<td style="background:{colour}">{e(str(r["status"]).replace("_", " "))}</td>'
            f"<td>{e(_local(r['received_at']))}</td><td class=n>{_fmt_int(r['rows_published'])}</td>"
            f"<td class=n>{_fmt_int(r['rows_quarantined'])}</td>"
            f"<td>{e(_short(r['error'] or r['warning'], 90))}</td></tr>"
        )
    return f'<table class="coverage"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _crossing_table(crossing: pa.Table) -> str:
    """The flagged vehicles, each token whole (monospace, selected with one click to copy)."""
    if crossing.num_rows == 0:
        return '<p class="empty">no vehicle was read in two or more forces near hare coursing on this night</p>'
    head = "".join(f"<th>{h}</th>" for h in ("plate token", "forces", "reads", "first read", "last read", "incidents"))
    body = "".join(
        f'<tr><td><code class="token">{e(r["plate_token"])}</code></td><td>{e(", ".join(r["forces"]))}</td>'
        f"<td class=n>{e(r['n_reads'])}</td><td>{e(_local(r['first_read_at']))}</td>"
        f"<td>{e(_local(r['last_read_at']))}</td><td>{e(', '.join(r['incident_record_ids']))}</td></tr>"
        for r in crossing.to_pylist()
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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
        f"read, for the night of {e(night)} (reads published with the nights either side count too). "
        "Red diamonds: hare-coursing incidents (shaded: ±2 h); coloured lines: flagged vehicles. "
        "Vehicles are plate tokens, never plates.</p>"
    )
    coverage = coverage_rows(tables)
    absent_anpr = absent_forces(coverage, "anpr_reads")
    absent_incidents = absent_forces(coverage, "incidents")
    gap = []
    if absent_anpr:
        gap.append(f"no ANPR reads from {', '.join(absent_anpr)}")
    if absent_incidents:
        gap.append(f"no incidents from {', '.join(absent_incidents)}")
    parts.append(
        f'<p class="note" id="crossing-count"><b>Vehicles flagged: {crossing.num_rows}</b>'
        + (
            f' <span class="gap" data-absent="{e(",".join(absent_anpr))}">({e("; ".join(gap))} on this night: a '
            "vehicle seen there is not counted, so a vehicle may have crossed more forces than shown)</span>"
            if gap
            else (
                " (coverage unknown for this night)" if not coverage else " (every force's reads and incidents are in)"
            )
        )
        + "</p>"
    )
    parts.append(timeline_svg(night, hare, crossing, forces, absent_anpr))
    parts.append(_crossing_table(crossing))

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
    parts.append("<ul>" + "".join(f"<li>{e(s)}</li>" for s in lines) + "</ul>" if lines else "")
    parts.append(gaps_html(tables, "incidents"))
    parts.append(
        table(
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
    gap_months = {r["month"] for r in _gaps(tables, "incidents", set(months))}
    parts.append(
        stacked_svg(
            [f"{m}*" if m in gap_months else m for m in months],
            {f: [counts.get((f, m), 0) for m in months] for f in per_force},
            {f: FORCE_COLOURS[i % len(FORCE_COLOURS)] for i, f in enumerate(per_force)},
            "incidents per month and force",
        )
    )
    if gap_months:
        parts.append('<p class="note">* a month with nights whose incidents extract is absent for a force.</p>')
    parts.append(gaps_html(tables, "incidents", set(months)))

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
    parts.append(gaps_html(tables, "seizures"))
    parts.append(
        table(
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
    summary = night_summary(coverage)
    complete = bool(coverage) and all(r["status"] in PRESENT for r in coverage)
    published = sum(1 for r in coverage if r["status"] in PRESENT)
    head = (
        f"<h1>Cross-force rural crime report: night of {e(night)}</h1>"
        f'<p class="summary{"" if complete else " gaps"}" id="summary">{e(summary)}</p>'
        '<dl class="head">'
        f"<dt>Night</dt><dd>{e(night)} (Europe/London)</dd>"
        f"<dt>Built at</dt><dd>{e(generated)}</dd>"
        f"<dt>Schema version</dt><dd>{e(SCHEMA_VERSION)}</dd>"
        "<dt>Coverage</dt><dd>"
        + (f"{published} of {len(coverage)} extracts published" if coverage else "unknown (no completeness table)")
        + "</dd>"
        f"<dt>In this report</dt><dd>{crossing.num_rows} vehicle{'' if crossing.num_rows == 1 else 's'} flagged, "
        f"{hare.num_rows} hare-coursing incidents, "
        f"{sum(int(r['seizures_night'] or 0) for r in seizures if r['force'] == ALL_FORCES)} seizures on the night</dd>"
        "<dt>Tables</dt><dd><code>reports/&lt;report&gt;/date=&lt;night&gt;/part-0.parquet</code></dd>"
        "</dl>"
        + (
            "<details><summary>Every force and dataset of the night</summary>"
            + _coverage_table(coverage)
            + "</details>"
            if coverage
            else ""
        )
    )
    return document(f"xforce reports {night}", head + "".join(parts), _CSS)


def render_index(nights: list[str], headlines: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The nights, newest first as given, each linking to its page with its coverage and headline numbers."""
    headlines = headlines or {}
    items = []
    for n in nights:
        h = headlines.get(n) or {}
        numbers = [
            f"{h[k]:,} {label}"
            for k, label in (
                ("vehicles_flagged", "vehicle(s) flagged"),
                ("hare_coursing", "hare-coursing incidents"),
                ("seizures", "seizures"),
            )
            if h.get(k) is not None
        ]
        cls = "" if h.get("complete") else ' class="gaps"'
        items.append(
            f'<li data-night="{e(n)}"{cls}><a href="html/{e(n)}.html">{e(n)}</a>'
            + (f' <span class="note">{e(" · ".join(numbers))}</span>' if numbers else "")
            + (f'<p class="note">{e(h["summary"])}</p>' if h.get("summary") else "")
            + "</li>"
        )
    body = (
        "<h1>xforce reports</h1>"
        '<p class="note">One page per night, newest first: what the night holds (extracts published of those '
        "expected) and its headline numbers. A night with absent extracts is marked in red.</p>"
        f'<ol class="nights">{"".join(items)}</ol>'
    )
    css = _CSS + "ol.nights li.gaps{border-left:4px solid #c0392b}"
    return document("xforce reports", body, css)
