"""The report page: one static HTML page per night (charts as inline SVG, tables, no script, nothing
fetched) and the index of nights, rendered from the tables :mod:`xforce.reports.queries` produces."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from xforce.html import document, table
from xforce.html import escape as e

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
"""


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
                f"<title>{e(token[:16])}… {e(s['force'])} {_local(s['read_at'])} {e(s['camera_id'])}</title>"
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
    parts.append(timeline_svg(night, hare, crossing, forces))
    parts.append(
        table(
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
    parts.append("<ul>" + "".join(f"<li>{e(s)}</li>" for s in lines) + "</ul>" if lines else "")
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
    rows = {name: t.num_rows for name, t in tables.items()}
    head = (
        f"<h1>Cross-force rural crime report: night of {e(night)}</h1>"
        f'<p class="note">Built {e(generated)} from the published dataset (schema v1). '
        f"Report rows: <code>{e(json.dumps(rows))}</code>. Tables: "
        "<code>reports/&lt;report&gt;/date=&lt;night&gt;/part-0.parquet</code>.</p>"
    )
    return document(f"xforce reports {night}", head + "".join(parts), _CSS)


def render_index(nights: list[str]) -> str:
    """The list of nights, newest first as given, each linking to its page."""
    items = "".join(f'<li><a href="html/{e(n)}.html">{e(n)}</a></li>' for n in nights)
    return document("xforce reports", f"<h1>xforce reports</h1><ul>{items}</ul>", _CSS)
