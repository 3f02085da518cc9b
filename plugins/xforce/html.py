"""HTML building blocks shared by the report pages and the Data Docs: escaping, the page shell, the
colour of an extract's status and a plain table.

Everything here returns ``str``; nothing reads or writes files, and nothing here imports the rest of
``xforce``. Each page brings its own stylesheet: :func:`document` takes it as an argument.
"""

from __future__ import annotations

import html
from typing import Any

#: Cell colours of an extract's status (Data Docs and the "Data exchange" view).
STATUS_COLOURS = {
    "published": "#cdeccd",
    "validated": "#d6e6f5",
    "landed": "#d6e6f5",
    "missing": "#e4e4e4",
    "quarantined": "#f6c6c6",
    "failed": "#e89a9a",
    "expired": "#eeeeee",
}
#: The colour of an extract published with a warning.
WARNING_COLOUR = "#fbe7b0"
#: Allows the page's own inline styles and nothing else: no script, nothing fetched.
CSP = "default-src 'none'; style-src 'unsafe-inline'"


def escape(value: Any) -> str:
    """``value`` as text safe in element content and quoted attributes (``None`` is empty)."""
    return html.escape("" if value is None else str(value), quote=True)


def document(title: str, body: str, css: str) -> str:
    """A complete static page: ``body`` (HTML) under ``title`` (text), styled by ``css`` only."""
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv=Content-Security-Policy content="{CSP}">'
        f"<title>{escape(title)}</title><style>{css}</style></head><body>{body}</body></html>\n"
    )


def status_colour(status: str, warning: Any = None) -> str:
    """The cell colour of an extract with ``status`` (published with a ``warning`` has its own)."""
    if status == "published" and warning:
        return WARNING_COLOUR
    return STATUS_COLOURS.get(status, "#ffffff")


def table(
    headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None, empty: str = "nothing to show"
) -> str:
    """A table of text cells (every cell is escaped); columns in ``numeric`` get ``class=n``.

    With no rows, a ``<p class="empty">`` saying ``empty`` instead.
    """
    numeric = numeric or set()
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{escape(c)}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
