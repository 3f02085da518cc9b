"""The table-level suite (``expectations/<dataset>.table.json``): Great Expectations on a one-row
frame of extract metrics (rows in, volume against the force's own recent published nights, the
quarantined share, drift counts). A failed *critical* expectation quarantines the force's extract
for the night; a failed *warning* publishes it flagged."""

from __future__ import annotations

import statistics
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from xforce.errors import ConfigError, ValidatorError
from xforce.quality.config import SEVERITY_OF, QualityConfig

if TYPE_CHECKING:
    from collections.abc import Mapping

    from xforce.context import Context
    from xforce.quality.drift import Drift


def usual_volume(ctx: Context, night: str, force: str, dataset: str, cfg: QualityConfig) -> tuple[float | None, int]:
    """Median rows of the force's published nights in the window before ``night`` (None: too little history).

    One bounded query on the ledger's key: the cost does not grow with the nights stored.
    """
    lo = (date.fromisoformat(night) - timedelta(days=cfg.history_nights)).isoformat()
    counts = ctx.ledger.published_volumes(force, dataset, lo, night)
    if len(counts) < cfg.min_history_nights:
        return None, len(counts)
    return float(statistics.median(counts)), len(counts)


def table_suite(expectations_dir: str, dataset: str) -> dict[str, Any]:
    from xforce.quality.validate import load_suite

    return load_suite(expectations_dir, f"{dataset}.table")


def run_table_suite(
    expectations_dir: str, dataset: str, metrics: Mapping[str, Any], cfg: QualityConfig
) -> list[dict[str, Any]]:
    """The dataset's table-level suite on a one-row frame of ``metrics`` (Great Expectations).

    An expectation with ``meta.policy`` takes its severity from ``config/quality.yaml``
    (quarantine -> critical, warn -> warning); a tolerated one is not evaluated and says so.
    """
    from xforce.quality.gxworker import run_suite

    doc = table_suite(expectations_dir, dataset)
    out: list[dict[str, Any] | None] = []  # suite order; None: evaluated by GX below
    chosen = []
    for e in doc["expectations"]:
        meta = dict(e.get("meta") or {})
        column = e["kwargs"]["column"]
        if column not in metrics:
            raise ConfigError(f"{dataset}.table.json: no metric {column!r} (known: {', '.join(metrics)})")
        if meta.get("policy"):
            action = cfg.drift[meta["policy"]]
            if action == "tolerate":
                out.append(_table_outcome(e, meta, "tolerated", True, metrics[column]))
                continue
            meta["severity"] = SEVERITY_OF[action]
        out.append(None)
        chosen.append({**e, "meta": meta})
    evaluated: list[dict[str, Any]] = []
    if chosen:
        columns = sorted({e["kwargs"]["column"] for e in chosen})
        frame = pa.table({c: pa.array([metrics[c]], pa.float64()) for c in columns})
        suite = {"name": doc["name"], "expectations": chosen, "meta": doc.get("meta")}
        results = run_suite(frame, suite, {}, {"result_format": "SUMMARY", "partial_unexpected_count": 0})
        for res in results:  # in suite order
            if res.exception is not None:
                raise ValidatorError(f"table expectation {res.type} raised: {res.exception}")
            severity = str(res.meta.get("severity", "critical"))
            e = {"type": res.type, "kwargs": res.kwargs}
            evaluated.append(_table_outcome(e, res.meta, severity, res.success, metrics[res.kwargs["column"]]))
    it = iter(evaluated)
    return [o if o is not None else next(it) for o in out]


def _table_outcome(
    e: dict[str, Any], meta: dict[str, Any], severity: str, success: bool, observed: Any
) -> dict[str, Any]:
    column = e["kwargs"]["column"]
    bounds = {k: e["kwargs"][k] for k in ("min_value", "max_value") if e["kwargs"].get(k) is not None}
    return {
        "expectation": e["type"],
        "metric": column,
        "bounds": bounds,
        "reason": str(meta.get("reason", e["type"])),
        "severity": severity,
        "policy": meta.get("policy"),
        "success": success,
        "observed": None if observed is None else round(float(observed), 4),
    }


def _table_message(t: dict[str, Any], drift: Drift) -> str:
    if t["policy"]:
        names = "; ".join(drift.describe(t["policy"]))
        return f"schema drift: {names} [{t['severity']}]"
    bounds = ", ".join(f"{k.split('_')[0]} {_g(v)}" for k, v in t["bounds"].items())
    return f"{t['reason']}: {t['metric']} = {_g(t['observed'])} ({bounds}) [{t['severity']}]"


def _g(value: Any) -> str:
    return "null" if value is None else f"{float(value):g}"
