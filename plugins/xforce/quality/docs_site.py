"""The night's validation results and their Data Docs: static HTML, one page per night.

Layout in the docs zone (``XFORCE_DOCS_URI``, default ``data/docs``)::

    validation/date=<night>/<force>/<dataset>.json   # results of one extract: counts, expectation names, row ids
    validation/date=<night>/index.html                # that night's Data Docs page
    validation/index.html                             # every night: its coverage and counts, linking to its page

Results hold counts, expectation names, reasons and row ids (``record_id``) only: never row
contents, never plates. Publishing a night renders that night's page and the list of nights; no
other night is read or rendered again, so the cost of a night does not grow with the history kept
(the index's per-night coverage and counts come from the run ledger in one query).
(Great Expectations' own Data Docs builder re-renders every stored validation on each build,
which is why the pages are rendered here.)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from xforce.html import document, status_colour
from xforce.html import escape as e
from xforce.schemas import DATASETS
from xforce.store import layout

if TYPE_CHECKING:
    from xforce.context import Context
    from xforce.store.zones import Zone

ROOT = layout.VALIDATION
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2rem;color:#1d2630;font-size:14px}
h1{font-size:1.35rem}h2{font-size:1.1rem;margin-top:1.6rem}h3{font-size:1rem}
table{border-collapse:collapse;margin:.4rem 0 1rem}td,th{border:1px solid #c9d1d9;padding:.25rem .5rem;text-align:left}
th{background:#f3f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#1a7f37}.bad{color:#b42318;font-weight:600}.warn{color:#9a6700;font-weight:600}
.muted{color:#6b7785}code{font-size:.92em}a{color:#0b5cad}
"""


def write_results(docs: Zone, doc: dict[str, Any]) -> str:
    """Store one extract's results for its night (replacing a re-run's)."""
    rel = layout.validation_results(doc["night"], doc["force"], doc["dataset"])
    docs.write_bytes(rel, json.dumps(doc, indent=1, sort_keys=True, default=str).encode("utf-8"))
    return rel


def read_results(docs: Zone, night: str, force: str, dataset: str) -> dict[str, Any] | None:
    rel = layout.validation_results(night, force, dataset)
    if not docs.exists(rel):
        return None
    doc: dict[str, Any] = docs.read_json(rel)
    return doc


def render_night(ctx: Context, night: str) -> str:
    """Render the night's Data Docs page and the list of nights; returns the page's path in the docs zone."""
    docs = ctx.zones.docs
    rows = {(r["force"], r["dataset"]): r for r in ctx.ledger.extracts(night)}
    results = {(f, d): read_results(docs, night, f, d) for f in ctx.registry.forces for d in DATASETS}
    page = _night_html(night, list(ctx.registry.forces), rows, results)
    rel = layout.validation_page(night)
    docs.write_bytes(rel, page.encode("utf-8"))
    nights = sorted((n for d in docs.list_dirs(ROOT) if (n := layout.night_of(d))), reverse=True)
    ledger_rows = ctx.ledger.extract_rows(nights[-1], nights[0]) if nights else []
    summaries = night_summaries(ledger_rows, len(ctx.registry.forces) * len(DATASETS))
    docs.write_bytes(layout.VALIDATION_INDEX, _index_html(nights, summaries).encode("utf-8"))
    return rel


PRESENT = frozenset({"published"})


def night_summaries(rows: list[dict[str, Any]], expected: int) -> dict[str, dict[str, Any]]:
    """Per night, from the ledger's extract rows: extracts published of ``expected``, rows, what is absent."""
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: (r["night"], DATASETS.index(r["dataset"]) if r["dataset"] in DATASETS else 9)):
        s = out.setdefault(
            r["night"],
            {
                "expected": expected,
                "published": 0,
                "warnings": 0,
                "rows_published": 0,
                "rows_quarantined": 0,
                "absent": [],
            },
        )
        s["rows_published"] += int(r.get("rows_published") or 0)
        s["rows_quarantined"] += int(r.get("rows_quarantined") or 0)
        if r["status"] in PRESENT:
            s["published"] += 1
            s["warnings"] += 1 if r.get("warning") else 0
        else:
            s["absent"].append(f"{r['force']} {r['dataset']} {r['status']}")
    for s in out.values():  # extracts the ledger has no row for were never looked for: missing
        s["missing_unrecorded"] = max(0, s["expected"] - s["published"] - len(s["absent"]))
    return out


# ------------------------------------------------------------------------------- rendering
def _index_html(nights: list[str], summaries: dict[str, dict[str, Any]] | None = None) -> str:
    """The nights, newest first, each with its coverage (extracts published of those expected) and counts."""
    summaries = summaries or {}
    rows = []
    for n in nights:
        s = summaries.get(n)
        if s is None:
            rows.append(
                f'<tr data-night="{e(n)}"><td><a href="date={e(n)}/index.html">{e(n)}</a></td>'
                "<td colspan=4 class=muted>not in the run ledger</td></tr>"
            )
            continue
        complete = s["published"] == s["expected"]
        absent = ", ".join(s["absent"]) + (f" (+{s['missing_unrecorded']} missing)" if s["missing_unrecorded"] else "")
        warned = f" · {s['warnings']} with a warning" if s["warnings"] else ""
        rows.append(
            f'<tr data-night="{e(n)}"><td><a href="date={e(n)}/index.html">{e(n)}</a></td>'
            f'<td class="num {"ok" if complete else "bad"}">{s["published"]} of {s["expected"]}</td>'
            f"<td class=num>{s['rows_published']:,}</td><td class=num>{s['rows_quarantined']:,}</td>"
            f"<td>{e(absent or 'none')}{e(warned)}</td></tr>"
        )
    body = (
        "<h1>xforce Data Docs: validation results by night</h1>"
        "<p class=muted>Newest first. Per night: extracts published of those expected, rows published and "
        "quarantined, and the extracts absent (missing, quarantined, failed).</p>"
        "<table id=nights><tr><th>night</th><th>extracts published</th><th>rows published</th>"
        "<th>rows quarantined</th><th>absent</th></tr>" + "".join(rows) + "</table>"
    )
    return document("xforce Data Docs", body, CSS)


def _night_html(
    night: str,
    forces: list[str],
    rows: dict[tuple[str, str], dict[str, Any]],
    results: dict[tuple[str, str], dict[str, Any] | None],
) -> str:
    parts = [
        f"<h1>Data Docs: night of {e(night)}</h1>",
        '<p class=muted><a href="../index.html">all nights</a> · counts, expectation names and row ids only; '
        "rows themselves are in the quarantine zone</p>",
        "<table><tr><th>force</th>" + "".join(f"<th>{e(d)}</th>" for d in DATASETS) + "</tr>",
    ]
    for f in forces:
        parts.append(f"<tr><th>{e(f)}</th>")
        for d in DATASETS:
            r = rows.get((f, d)) or {"status": "missing"}
            colour = status_colour(r["status"], r.get("warning"))
            counts = f"{r.get('rows_published') or 0:,} / {r.get('rows_quarantined') or 0:,}"
            flag = " ⚠" if r.get("warning") else ""
            parts.append(
                f'<td style="background:{colour}"><a href="#{e(f)}-{e(d)}">{e(r["status"])}{flag}</a>'
                f"<br><span class=muted>{counts}</span></td>"
            )
        parts.append("</tr>")
    parts.append("</table><p class=muted>cells: status, rows published / quarantined; ⚠ published with a warning</p>")
    for f in forces:
        for d in DATASETS:
            parts.append(extract_html(f, d, rows.get((f, d)), results.get((f, d))))
    return document(f"xforce Data Docs {night}", "".join(parts), CSS)


def _tick(ok: bool, severity: str = "critical") -> str:
    if ok:
        return "<span class=ok>✓</span>"
    return "<span class=warn>⚠ warning</span>" if severity == "warning" else "<span class=bad>✗ critical</span>"


def extract_html(force: str, dataset: str, row: dict[str, Any] | None, res: dict[str, Any] | None) -> str:
    row = row or {"status": "missing"}
    out = [f'<h2 id="{e(force)}-{e(dataset)}">{e(force)} · {e(dataset)}: {e(row["status"])}</h2>']
    out.append(
        f"<p>rows in {row.get('rows_in') or 0:,}, published {row.get('rows_published') or 0:,}, "
        f"quarantined {row.get('rows_quarantined') or 0:,}</p>"
    )
    if row.get("error"):
        out.append(f"<p class=bad>error: {e(row['error'])}</p>")
    if row.get("warning"):
        out.append(f"<p class=warn>warning: {e(row['warning'])}</p>")
    if row.get("reasons"):
        out.append(
            "<h3>Quarantine reasons</h3><table><tr><th>reason</th><th>rows</th><th>row ids (first)</th></tr>"
            + "".join(
                f"<tr><td>{e(k)}</td><td class=num>{v:,}</td>"
                f"<td><code>{e(', '.join((res or {}).get('row_ids', {}).get(k, [])))}</code></td></tr>"
                for k, v in sorted(row["reasons"].items())
            )
            + "</table>"
        )
    if res is None:
        out.append("<p class=muted>no validation results for this extract (not delivered, or not read)</p>")
        return "".join(out)
    if res.get("run_id") != row.get("run_id") and row.get("run_id"):
        out.append(f"<p class=muted>results of run {e(res.get('run_id'))}</p>")
    if res.get("table_level"):
        out.append(
            "<h3>Table-level expectations</h3><table><tr><th>expectation</th><th>metric</th><th>observed</th>"
            "<th>bounds</th><th>reason</th><th>severity</th><th>result</th></tr>"
        )
        for t in res["table_level"]:
            result = "tolerated" if t["severity"] == "tolerated" else _tick(t["success"], t["severity"])
            bounds = ", ".join(f"{k} {v}" for k, v in (t.get("bounds") or {}).items())
            out.append(
                f"<tr><td>{e(t['expectation'])}</td><td>{e(t['metric'])}</td><td class=num>{e(t['observed'])}</td>"
                f"<td>{e(bounds)}</td><td>{e(t['reason'])}</td><td>{e(t['severity'])}</td><td>{result}</td></tr>"
            )
        out.append("</table>")
    lines = (res.get("drift") or {}).get("lines") or []
    if lines:
        out.append("<h3>Schema drift</h3><ul>" + "".join(f"<li>{e(x)}</li>" for x in lines) + "</ul>")
    checks = list(res.get("row_level") or []) + list(res.get("cross_dataset") or [])
    if checks:
        out.append(
            "<h3>Row-level expectations</h3><table><tr><th>expectation</th><th>column</th><th>reason</th>"
            "<th>severity</th><th>rows evaluated</th><th>rows failing</th><th>result</th></tr>"
        )
        for c in checks:
            out.append(
                f"<tr><td>{e(c['expectation'])}</td><td>{e(c['column'])}</td><td>{e(c['reason'])}</td>"
                f"<td>{e(c['severity'])}</td><td class=num>{c['evaluated']:,}</td>"
                f"<td class=num>{c['unexpected']:,}</td><td>{_tick(c['success'], c['severity'])}</td></tr>"
            )
        out.append("</table>")
        flagged = [c for c in res.get("cross_dataset") or [] if c.get("row_ids")]
        for c in flagged:
            out.append(f"<p class=warn>{e(c['reason'])}: <code>{e(', '.join(c['row_ids']))}</code></p>")
    return "".join(out)
