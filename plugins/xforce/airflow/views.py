"""Grid, scorecard and extract pages of the "Data exchange" view, from the run ledger.

Every link is relative to the view's mount point (``/xforce`` on the api-server), so the pages
work wherever Airflow is served from.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from xforce.html import STATUS_COLOURS, WARNING_COLOUR, document, status_colour
from xforce.html import escape as e
from xforce.intake.contracts import Registry, load_registry
from xforce.quality.config import QualityConfig, load_config
from xforce.quality.docs_site import CSS, extract_html, read_results
from xforce.schemas import DATASETS
from xforce.settings import Settings
from xforce.store import layout
from xforce.store.connections import open_zone
from xforce.store.ledger import Ledger, open_ledger

if TYPE_CHECKING:
    from xforce.store.zones import Zone

SCORECARD_NIGHTS = 30
DEFAULT_NIGHTS = 7
MAX_NIGHTS = 62


@dataclass
class Sources:
    """What the view reads: the ledger, the force registry, the quality config and the docs zone."""

    settings: Settings
    registry: Registry
    ledger: Ledger
    quality: QualityConfig

    @functools.cached_property
    def docs(self) -> Zone:
        return open_zone(self.settings.docs)


@functools.lru_cache(maxsize=1)
def sources_from_env() -> Sources:
    s = Settings.from_env()
    return Sources(s, load_registry(s.config_dir), open_ledger(s.ledger_url, s.sql_dir), load_config(s.config_dir))


# ------------------------------------------------------------------------------------ data
def latest_night(ledger: Ledger) -> str | None:
    return ledger.latest_night()


def nights_until(until: str, n: int) -> list[str]:
    """``n`` calendar nights ending with ``until``, newest first."""
    end = date.fromisoformat(until)
    return [(end - timedelta(days=i)).isoformat() for i in range(n)]


def _rows(ledger: Ledger, first: str, last: str) -> list[dict[str, Any]]:
    return ledger.extract_rows(first, last)


def grid(src: Sources, nights: list[str]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """``(night, force, dataset) -> ledger row`` for the nights shown."""
    if not nights:
        return {}
    return {(r["night"], r["force"], r["dataset"]): r for r in _rows(src.ledger, min(nights), max(nights))}


def scorecard(src: Sources, until: str, nights: int = SCORECARD_NIGHTS) -> list[dict[str, Any]]:
    """Per force over the ``nights`` ending with ``until``: on time, completeness, rejection rate.

    * expected: the force's extracts the exchange looked for (a ledger row per night and dataset it ran)
    * completeness: of those, the share delivered (landed at all, whatever happened next)
    * on time: the share delivered by the cut-off of ``config/quality.yaml`` (``received_at``)
    * rejection rate: rows quarantined / rows received, over delivered extracts; plus extracts
      quarantined whole, extracts published with a warning and missing-extract alerts
    """
    window = nights_until(until, nights)
    rows = _rows(src.ledger, window[-1], window[0])
    alert_count = src.ledger.alert_counts(window[-1], window[0])
    out = []
    for force in src.registry.forces:
        mine = [r for r in rows if r["force"] == force]
        delivered = [r for r in mine if r["received_at"] and r["status"] != "missing"]
        on_time = [
            r
            for r in delivered
            if datetime.fromisoformat(r["received_at"]) <= src.quality.cutoff_at(r["night"], force, r["dataset"])
        ]
        rows_in = sum(int(r["rows_in"] or 0) for r in delivered)
        rows_q = sum(int(r["rows_quarantined"] or 0) for r in delivered)
        out.append(
            {
                "force": force,
                "name": src.registry.forces[force].name,
                "nights": len({r["night"] for r in mine}),
                "expected": len(mine),
                "delivered": len(delivered),
                "on_time": len(on_time),
                "completeness": len(delivered) / len(mine) if mine else None,
                "on_time_rate": len(on_time) / len(mine) if mine else None,
                "rows_in": rows_in,
                "rows_quarantined": rows_q,
                "rejection_rate": rows_q / rows_in if rows_in else None,
                "quarantined_whole": sum(1 for r in mine if r["status"] == "quarantined"),
                "warnings": sum(1 for r in mine if r["warning"]),
                "alerts": alert_count.get(force, 0),
            }
        )
    return out


# ------------------------------------------------------------------------------------ HTML
def _page(title: str, body: str) -> str:
    extra = (
        ".grid td{min-width:7.5rem;font-size:.85rem}.grid th.force{background:#eef1f4}"
        ".legend span{padding:.1rem .5rem;margin-right:.3rem;border:1px solid #c9d1d9}"
    )
    return document(title, body, CSS + extra)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def grid_html(src: Sources, n: int = DEFAULT_NIGHTS, until: str | None = None) -> str:
    """The forces x datasets grid for the last ``n`` nights and the 30-night supplier scorecard."""
    n = max(1, min(int(n), MAX_NIGHTS))
    until = until or latest_night(src.ledger)
    parts = ["<h1>Data exchange</h1>"]
    if until is None:
        parts.append("<p>No night has been run yet: the run ledger is empty.</p>")
        return _page("Data exchange", "".join(parts))
    nights = nights_until(until, n)
    cells = grid(src, nights)
    parts.append(
        f"<p class=muted>Last {n} nights to {e(until)}, from the run ledger. Each cell: status, rows published / "
        "quarantined; the status links to the night's Data Docs, <i>reasons</i> to the quarantine reasons. "
        'Show <a href="grid?nights=7">7</a> · <a href="grid?nights=14">14</a> · '
        '<a href="grid?nights=30">30</a> nights · '
        '<a href="docs/index.html">all Data Docs</a></p>'
    )
    legend = "".join(
        f'<span style="background:{c}">{e(s)}</span>' for s, c in STATUS_COLOURS.items() if s not in ("landed",)
    )
    parts.append(f'<p class=legend>{legend}<span style="background:{WARNING_COLOUR}">published ⚠ warning</span></p>')
    parts.append("<table class=grid id=grid><tr><th>force</th><th>dataset</th>")
    parts.extend(f"<th>{e(night)}</th>" for night in nights)
    parts.append("</tr>")
    for force in src.registry.forces:
        for i, dataset in enumerate(DATASETS):
            parts.append("<tr>")
            if i == 0:
                parts.append(f"<th class=force rowspan={len(DATASETS)}>{e(force)}</th>")
            parts.append(f"<th>{e(dataset)}</th>")
            for night in nights:
                r = cells.get((night, force, dataset))
                parts.append(_cell(night, force, dataset, r))
            parts.append("</tr>")
    parts.append("</table>")
    parts.append(scorecard_html(src, until))
    return _page("Data exchange", "".join(parts))


def _cell(night: str, force: str, dataset: str, r: dict[str, Any] | None) -> str:
    key = f"{night}/{force}/{dataset}"
    if r is None:
        return f'<td data-cell="{e(key)}" data-status="none" class=muted>–</td>'
    status = str(r["status"])
    flag = " ⚠" if r.get("warning") else ""
    docs = f"docs/{layout.validation_page(night).split('/', 1)[1]}#{quote(force)}-{quote(dataset)}"
    reasons = f"extract/{quote(night)}/{quote(force)}/{quote(dataset)}"
    title = e(r.get("error") or r.get("warning") or "")
    colour = status_colour(status, r.get("warning"))
    return (
        f'<td data-cell="{e(key)}" data-status="{e(status)}" style="background:{colour}"'
        f' title="{title}"><a href="{docs}"><b>{e(status)}</b>{flag}</a><br>'
        f"{int(r.get('rows_published') or 0):,} / {int(r.get('rows_quarantined') or 0):,}"
        f' · <a href="{reasons}">reasons</a></td>'
    )


def scorecard_html(src: Sources, until: str, nights: int = SCORECARD_NIGHTS) -> str:
    rows = scorecard(src, until, nights)
    q = src.quality
    overrides = "; ".join(
        f"{force}: " + (", ".join(f"{d} {t}" for d, t in per.items()) if isinstance(per, dict) else str(per))
        for force, per in sorted(q.cutoffs.items())
    )
    out = [
        f"<h2 id=scorecard>Supplier scorecard: {nights} nights to {e(until)}</h2>",
        f"<p class=muted id=cutoff>The cut-off: an extract is <b>on time</b> when it lands by {e(q.cutoff)} "
        f"{e(q.timezone)} on the morning after its night (so the night of 26 November is due by {e(q.cutoff)} on "
        "27 November)"
        + (f"; per force: {e(overrides)}" if overrides else "")
        + ". A later extract is still published, by the late-extracts DAG, and counts as late; a missing one "
        "raises an alert at the cut-off. Set in <code>config/quality.yaml</code> (<code>deadlines</code>).</p>",
        "<table id=scorecard-table><tr><th>force</th><th>nights run</th><th>on time</th><th>completeness</th>"
        "<th>rejection rate</th><th>rows received</th><th>extracts quarantined whole</th>"
        "<th>published with warning</th><th>missing-extract alerts</th></tr>",
    ]
    for r in rows:
        out.append(
            f'<tr data-force="{e(r["force"])}"><th>{e(r["name"])}</th><td class=num>{r["nights"]}</td>'
            f"<td class=num>{_pct(r['on_time_rate'])} ({r['on_time']}/{r['expected']})</td>"
            f"<td class=num>{_pct(r['completeness'])} ({r['delivered']}/{r['expected']})</td>"
            f"<td class=num>{_pct(r['rejection_rate'])}</td><td class=num>{r['rows_in']:,}</td>"
            f"<td class=num>{r['quarantined_whole']}</td><td class=num>{r['warnings']}</td>"
            f"<td class=num>{r['alerts']}</td></tr>"
        )
    out.append(
        "</table><p class=muted>On time: delivered by the cut-off in <code>config/quality.yaml</code> "
        "(<code>received_at</code> in the ledger). Completeness: delivered at all. Rejection rate: rows "
        "quarantined over rows received.</p>"
    )
    return "".join(out)


def extract_page(src: Sources, night: str, force: str, dataset: str) -> str | None:
    """One extract: status, counts, error and warning, quarantine reasons with row ids, drift, alerts."""
    if force not in src.registry.forces or dataset not in DATASETS:
        return None
    date.fromisoformat(night)
    row = src.ledger.get(night, force, dataset)
    res = read_results(src.docs, night, force, dataset)
    alerts = [
        ev
        for ev in src.ledger.events(night)
        if ev["event"] in ("alert", "schema_drift") and ev["force"] == force and ev["dataset"] == dataset
    ]
    body = [
        '<p class=muted><a href="../../../grid">Data exchange</a> · '
        f'<a href="../../../docs/{layout.validation_page(night).split("/", 1)[1]}#{quote(force)}-{quote(dataset)}">'
        "the night's Data Docs</a></p>",
        extract_html(force, dataset, row, res),
    ]
    if alerts:
        body.append("<h3>Events</h3><ul>")
        body.extend(f"<li>{e(a['at'])} {e(a['event'])}: {e(a['detail'])}</li>" for a in alerts)
        body.append("</ul>")
    return _page(f"{force} {dataset} {night}", "".join(body))
