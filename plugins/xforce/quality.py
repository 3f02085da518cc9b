"""Data quality around the row-level suites: table-level suites, schema drift, cross-dataset order, alerts.

Row-level expectations (``expectations/<dataset>.json``) run batch by batch in
:mod:`xforce.validate`. Everything that needs the whole extract runs once per extract, after the
batch loop, in :func:`after_extract`:

* **schema drift**: the file's own columns (CSV header, or the key paths of the first JSON Lines
  records, recorded by the reader) against the force's contract: added, dropped, renamed
  (a dropped and an added column that look alike) and retyped columns (a column whose present values
  mostly fail to parse as the contract says). Reported by name; the policy is ``config/quality.yaml``.
* **the table-level suite** (``expectations/<dataset>.table.json``): Great Expectations on a one-row
  frame of extract metrics (rows in, volume against the force's own recent published nights, the
  quarantined share, drift counts). A failed *critical* expectation quarantines the force's extract
  for the night; a failed *warning* publishes it flagged in the ledger's ``warning`` (and so in the
  manifest).
* **cross-dataset order**: a published seizure timed before its incident is a row-level *warning*.
* **results**: counts, expectation names and row ids (never values) for the night's Data Docs,
  stored per night in the docs zone (:mod:`xforce.docs_site`).

And the deadline alert: an extract not landed by its configured cut-off (:func:`alert_missing_extract`,
wired to the validate tasks' ``on_skipped_callback``).
"""

from __future__ import annotations

import difflib
import functools
import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from xforce.contracts import read_yaml
from xforce.errors import ConfigError, ValidatorError
from xforce.schemas import TIME_COLUMN

if TYPE_CHECKING:
    from collections.abc import Mapping

    from xforce.contracts import DatasetContract
    from xforce.pipeline import Context
    from xforce.validate import Verdict

log = logging.getLogger("xforce.quality")
alerts_log = logging.getLogger("xforce.alerts")

ACTIONS = ("quarantine", "warn", "tolerate")
DRIFT_POLICIES = ("extra_column", "missing_required", "missing_optional", "retyped_required", "retyped_optional")
SEVERITY_OF = {"quarantine": "critical", "warn": "warning"}
#: The derived column of the seizure/incident order check (minutes from the incident to the seizure).
LAG_COLUMN = "_minutes_after_incident"
LAG_PARAM = "seizure_lag_min_minutes"
#: Row ids kept per reason in a night's results (the rows themselves are in the quarantine zone).
ROW_IDS = 20
#: Source field -> the canonical column its parsed value lands in (``timestamp`` is per dataset).
_PARSED = {
    "lat": "latitude",
    "y": "latitude",
    "lon": "longitude",
    "x": "longitude",
    "quantity": "quantity",
    "offence": "offence",
    "outcome": "outcome",
    "item_type": "item_type",
}


# ------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class QualityConfig:
    drift: dict[str, str]
    retyped_min_share: float
    retyped_min_values: int
    rename_similarity: float
    history_nights: int
    min_history_nights: int
    min_usual_rows: int
    rejection_min_rows: int
    seizure_tolerance_minutes: float
    timezone: str
    cutoff: str
    cutoffs: dict[str, Any]

    def cutoff_at(self, night: str, force: str, dataset: str) -> datetime:
        """When the extract of ``night`` is due: local time on the morning after, as UTC."""
        per = self.cutoffs.get(force, self.cutoff)
        hhmm = str(per.get(dataset, per.get("*", self.cutoff)) if isinstance(per, dict) else per)
        local = datetime.combine(date.fromisoformat(night) + timedelta(days=1), _hhmm(hhmm), ZoneInfo(self.timezone))
        return local.astimezone(UTC)


def _hhmm(text: str) -> time:
    try:
        hours, minutes = (int(p) for p in text.split(":"))
        return time(hours, minutes)
    except ValueError as exc:
        raise ConfigError(f"quality.yaml: cut-off {text!r} is not HH:MM") from exc


@functools.lru_cache(maxsize=4)
def load_config(config_dir: str) -> QualityConfig:
    """Read and check ``config/quality.yaml``."""
    path = Path(config_dir) / "quality.yaml"
    doc = read_yaml(path)
    drift_doc = doc.get("schema_drift") or {}
    drift = {k: str(drift_doc.get(k, "quarantine" if k.endswith("required") else "warn")) for k in DRIFT_POLICIES}
    for k, v in drift.items():
        if v not in ACTIONS:
            raise ConfigError(f"quality.yaml: schema_drift.{k} must be one of {ACTIONS}, not {v!r}")
    if drift["missing_required"] != "quarantine":
        raise ConfigError("quality.yaml: schema_drift.missing_required can only be quarantine (no row can be read)")
    vol, dl = doc.get("volume") or {}, doc.get("deadlines") or {}
    cfg = QualityConfig(
        drift=drift,
        retyped_min_share=float(drift_doc.get("retyped_min_share", 0.9)),
        retyped_min_values=int(drift_doc.get("retyped_min_values", 10)),
        rename_similarity=float(drift_doc.get("rename_similarity", 0.6)),
        history_nights=int(vol.get("history_nights", 28)),
        min_history_nights=int(vol.get("min_history_nights", 5)),
        min_usual_rows=int(vol.get("min_usual_rows", 50)),
        rejection_min_rows=int((doc.get("rejection") or {}).get("min_rows", 50)),
        seizure_tolerance_minutes=float(
            (doc.get("ordering") or {}).get("seizure_before_incident_tolerance_minutes", 0)
        ),
        timezone=str(dl.get("timezone", "Europe/London")),
        cutoff=str(dl.get("cutoff", "02:00")),
        cutoffs=dict(dl.get("forces") or {}),
    )
    _hhmm(cfg.cutoff)
    for force, per in cfg.cutoffs.items():
        for hhmm in per.values() if isinstance(per, dict) else [per]:
            _hhmm(str(hhmm))
        if not isinstance(per, (dict, str)):
            raise ConfigError(f"quality.yaml: deadlines.forces.{force} must be HH:MM or {{dataset: HH:MM}}")
    return cfg


# -------------------------------------------------------------------- per-extract tally
@dataclass
class ExtractTally:
    """What one extract's batches leave for the extract-level checks: counts and row ids, never values."""

    reports: list[Any] = field(default_factory=list)  # the readers' ReadReports, one per file
    #: (expectation type, column, reason, severity) -> [rows failing, rows evaluated]
    outcomes: dict[tuple[str, str, str, str], list[int]] = field(default_factory=dict)
    present: Counter[str] = field(default_factory=Counter)  # source field -> values present
    unparsed: Counter[str] = field(default_factory=Counter)  # ... of which did not parse
    rows: int = 0
    warned: int = 0
    row_ids: dict[str, list[str]] = field(default_factory=dict)  # reason -> first record ids
    sample: int = ROW_IDS

    def track(self, report: Any) -> Any:
        """Keep a file's ReadReport (its columns are compared with the contract after the loop)."""
        self.reports.append(report)
        return report

    def add_batch(self, source: pa.Table, table: pa.Table, verdict: Verdict) -> None:
        """One batch: ``source`` as read, ``table`` normalised, ``verdict`` on its rows without ``_error``."""
        self.rows += table.num_rows
        dataset_time = next((c for c in TIME_COLUMN.values() if c in table.column_names), None)
        reader_ok = pc.is_null(source.column("_error")) if "_error" in source.column_names else None
        for name in source.column_names:
            parsed = dataset_time if name == "timestamp" else _PARSED.get(name)
            if parsed is None or parsed not in table.column_names:
                continue
            present = pc.is_valid(source.column(name))
            if reader_ok is not None:
                present = pc.and_(present, reader_ok)
            failed = pc.and_(present, pc.is_null(table.column(parsed)))
            self.present[name] += int(pc.sum(present).as_py() or 0)
            self.unparsed[name] += int(pc.sum(failed).as_py() or 0)
        for o in verdict.outcomes:
            acc = self.outcomes.setdefault((o.type, str(o.column), o.reason, o.severity), [0, 0])
            acc[0] += o.unexpected
            acc[1] += o.element_count
        if table.num_rows == 0:
            return
        ids = table.column("record_id").combine_chunks()
        err = table.column("_error").combine_chunks()
        bad = pc.is_valid(err).to_numpy(zero_copy_only=False)
        if bad.any():
            positions = np.flatnonzero(bad)
            self._sample(np.asarray(err.take(pa.array(positions)).to_pylist(), dtype=object), positions, ids)
        good = np.flatnonzero(~bad)
        reasons = np.asarray(verdict.reasons, dtype=object)
        if len(reasons):
            failed = np.not_equal(reasons, None)  # type: ignore[call-overload]
            self._sample(reasons[failed], good[failed], ids)
            warned = np.asarray(verdict.warned, dtype=bool) & ~failed
            self.warned += int(warned.sum())
            self._sample(np.full(int(warned.sum()), "warning", dtype=object), good[warned], ids)

    def _sample(self, reasons: np.ndarray, positions: np.ndarray, ids: pa.Array) -> None:
        for reason in {str(r) for r in reasons}:
            have = self.row_ids.setdefault(reason, [])
            need = self.sample - len(have)
            if need > 0:
                take = positions[np.equal(reasons, reason)][:need]
                have.extend(str(v) for v in ids.take(pa.array(take)).to_pylist())


# --------------------------------------------------------------------------------- drift
@dataclass
class Drift:
    """A file's columns against its contract, by name."""

    checked: bool = False
    added: list[str] = field(default_factory=list)
    dropped: list[dict[str, Any]] = field(default_factory=list)  # {field, column, required}
    renamed: list[dict[str, Any]] = field(default_factory=list)  # {field, column, to, required}
    retyped: list[dict[str, Any]] = field(default_factory=list)  # {field, column, required, unparsed, present}
    withheld: int = 0  # new "columns" not named: the file seems to have no header line (they would be data)

    def metrics(self) -> dict[str, int]:
        missing = self.dropped + self.renamed
        return {
            "drift_missing_required": sum(1 for d in missing if d["required"]),
            "drift_missing_optional": sum(1 for d in missing if not d["required"]),
            "drift_extra": len(self.added) + self.withheld,
            "drift_retyped_required": sum(1 for d in self.retyped if d["required"]),
            "drift_retyped_optional": sum(1 for d in self.retyped if not d["required"]),
        }

    def describe(self, policy: str | None = None) -> list[str]:
        """One line per drifted column, for the ledger (``policy``: only that kind of drift)."""
        lines: list[tuple[str, str]] = []
        for d in self.dropped:
            kind = "missing_required" if d["required"] else "missing_optional"
            lines.append((kind, f"missing column {d['column']!r} (field {d['field']}, {_req(d)} column)"))
        for d in self.renamed:
            kind = "missing_required" if d["required"] else "missing_optional"
            lines.append((kind, f"renamed {d['column']!r} -> {d['to']!r} (field {d['field']}, {_req(d)} column)"))
        for d in self.retyped:
            kind = "retyped_required" if d["required"] else "retyped_optional"
            lines.append(
                (
                    kind,
                    f"retyped {d['column']!r} (field {d['field']}, {_req(d)} values): "
                    f"{d['unparsed']} of {d['present']} values do not parse as {d['expected']}",
                )
            )
        if self.added:
            lines.append(("extra_column", "new column(s) " + ", ".join(repr(a) for a in self.added)))
        if self.withheld:
            lines.append(("extra_column", f"{self.withheld} unknown column(s), names withheld (no header line?)"))
        return [text for kind, text in lines if policy is None or kind == policy]

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "added": self.added,
            "dropped": self.dropped,
            "renamed": self.renamed,
            "retyped": self.retyped,
            "withheld": self.withheld,
        }


def _req(d: dict[str, Any]) -> str:
    return "required" if d["required"] else "optional"


def column_required(contract: DatasetContract, field_name: str) -> bool:
    """Whether a file must have the field's column (key).

    CSV: every column the contract maps, unless listed under ``optional`` (the reader refuses a
    header without one). JSON Lines: the keys of fields whose values are required; a writer may
    omit a member that is null, so another missing key is an optional column.
    """
    if contract.format == "csv":
        return field_name not in contract.optional
    return field_name in contract.required


def _expected_type(contract: DatasetContract, name: str) -> str:
    if name == "timestamp":
        return f"time format {contract.timestamp_format!r}"
    if name in contract.codes or name in ("offence", "outcome", "item_type"):
        return f"the contract's {name} codes"
    return "an integer" if name == "quantity" else "a number"


def detect_drift(
    contract: DatasetContract, columns: list[str] | None, tally: ExtractTally, cfg: QualityConfig
) -> Drift:
    """Compare the columns a file has with those its contract maps (and, for typed fields, the values)."""
    from xforce.privacy import redact_text

    drift = Drift()
    required = set(contract.required)  # fields whose values are required (REQUIRED_FIELDS less optional)
    if columns is not None:
        drift.checked = True
        seen = list(dict.fromkeys(columns))
        known = set(contract.fields.values()) | set(contract.header or ())

        def present(path: str) -> bool:  # a JSON parent present as a leaf (null) counts: its keys may be omitted
            parts = path.split(".")
            return any(".".join(parts[:i]) in seen for i in range(1, len(parts) + 1))

        dropped: list[dict[str, Any]] = [
            {"field": f, "column": c, "required": column_required(contract, f)}
            for f, c in contract.fields.items()
            if not present(c)
        ]
        added = [c for c in seen if c not in known and not any(k.startswith(c + ".") for k in known)]
        if contract.format == "csv" and seen and not set(seen) & known:
            drift.withheld, added = len(added), []  # nothing matches: the "header" is probably a record
        for d in sorted(dropped, key=lambda d: not d["required"]):
            best, score = None, cfg.rename_similarity
            for a in added:
                r = difflib.SequenceMatcher(None, str(d["column"]).lower(), a.lower()).ratio()
                if r >= score:
                    best, score = a, r
            if best is not None:
                added.remove(best)
                drift.renamed.append({**d, "to": redact_text(best)})
            else:
                drift.dropped.append(d)
        drift.added = [str(redact_text(a)) for a in added]
    for name, n_present in sorted(tally.present.items()):
        bad = tally.unparsed[name]
        if n_present >= cfg.retyped_min_values and bad >= cfg.retyped_min_share * n_present:
            drift.retyped.append(
                {
                    "field": name,
                    "column": contract.fields.get(name, name),
                    "required": name in required,
                    "unparsed": bad,
                    "present": n_present,
                    "expected": _expected_type(contract, name),
                }
            )
    return drift


# ------------------------------------------------------------------------- volume history
def usual_volume(ctx: Context, night: str, force: str, dataset: str, cfg: QualityConfig) -> tuple[float | None, int]:
    """Median rows of the force's published nights in the window before ``night`` (None: too little history).

    One bounded query on the ledger's key: the cost does not grow with the nights stored.
    """
    lo = (date.fromisoformat(night) - timedelta(days=cfg.history_nights)).isoformat()
    with ctx.ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT rows_in FROM xforce_extracts WHERE night >= :lo AND night < :n AND force = :f "
                "AND dataset = :d AND status = 'published' AND rows_in IS NOT NULL"
            ),
            {"lo": lo, "n": night, "f": force, "d": dataset},
        ).all()
    counts = [int(r[0]) for r in rows]
    if len(counts) < cfg.min_history_nights:
        return None, len(counts)
    return float(statistics.median(counts)), len(counts)


# ------------------------------------------------------------------------ table-level suite
def table_suite(expectations_dir: str, dataset: str) -> dict[str, Any]:
    from xforce.validate import load_suite

    return load_suite(expectations_dir, f"{dataset}.table")


def run_table_suite(
    expectations_dir: str, dataset: str, metrics: Mapping[str, Any], cfg: QualityConfig
) -> list[dict[str, Any]]:
    """The dataset's table-level suite on a one-row frame of ``metrics`` (Great Expectations).

    An expectation with ``meta.policy`` takes its severity from ``config/quality.yaml``
    (quarantine -> critical, warn -> warning); a tolerated one is not evaluated and says so.
    """
    from xforce.gxworker import run_suite

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


# ---------------------------------------------------------------------- seizure / incident order
def incident_times(ctx: Context, force: str, night: str, run_id: str, wanted: set[str]) -> dict[str, Any]:
    """``record_id -> occurred_at`` of the wanted incidents: staged by this run, else published on or
    before ``night`` (newest first, stopping as soon as all are found)."""
    from xforce.pipeline import partition, run_key

    curated, staging = ctx.zone("curated"), ctx.zone("staging")
    sources = [(staging, f"{run_key(run_id)}/published/{partition('incidents', night, force)}/part-0.parquet")]
    days = sorted((d for d in curated.list_dirs("dataset=incidents") if d <= f"date={night}"), reverse=True)
    sources += [(curated, f"dataset=incidents/{d}/force={force}/part-0.parquet") for d in days]
    found: dict[str, Any] = {}
    for zone, rel in sources:
        todo = wanted - found.keys()
        if not todo:
            break
        if not zone.exists(rel):
            continue
        t = zone.read_parquet(rel).select(["record_id", "occurred_at"])
        t = t.filter(pc.is_in(t.column("record_id"), value_set=pa.array(sorted(todo), pa.string())))
        for rid, at in zip(t.column("record_id").to_pylist(), t.column("occurred_at").to_pylist(), strict=True):
            found.setdefault(rid, at)
    return found


def check_seizure_order(
    ctx: Context,
    night: str,
    force: str,
    run_id: str,
    staged_published: str,
    contract: DatasetContract,
    cfg: QualityConfig,
) -> dict[str, Any] | None:
    """The suite's ``_minutes_after_incident`` expectation on the staged published seizures.

    A warning by design: it runs after the split, so it flags rows and never moves them.
    """
    from xforce.validate import load_suite, validate

    staging = ctx.zone("staging")
    if not staging.exists(staged_published):
        return None
    t = staging.read_parquet(staged_published).select(["record_id", "incident_record_id", "seized_at"])
    if t.num_rows == 0:
        return None
    suite = load_suite(ctx.settings.expectations_dir, "seizures")
    order = [e for e in suite["expectations"] if e["kwargs"].get("column") == LAG_COLUMN]
    if not order:
        return None
    if any(e.get("meta", {}).get("severity") != "warning" for e in order):
        raise ConfigError(f"seizures.json: {LAG_COLUMN} can only be a warning (it is checked after the split)")
    times = incident_times(ctx, force, night, run_id, set(t.column("incident_record_id").drop_null().to_pylist()))
    occurred = pa.array(
        [times.get(r) for r in t.column("incident_record_id").to_pylist()], t.schema.field("seized_at").type
    )
    lag_us = pc.subtract(t.column("seized_at").combine_chunks().cast(pa.int64()), occurred.cast(pa.int64()))
    lag = pc.divide(lag_us.cast(pa.float64()), 60e6)
    verdict = validate(
        pa.table({LAG_COLUMN: lag}),
        "seizures",
        contract,
        {LAG_PARAM: -cfg.seizure_tolerance_minutes},
        ctx.settings.expectations_dir,
    )
    ids = t.column("record_id").combine_chunks()
    flagged = np.flatnonzero(verdict.warned)
    o = verdict.outcomes[0]
    return {
        "expectation": o.type,
        "column": o.column,
        "reason": o.reason,
        "severity": o.severity,
        "success": o.success,
        "unexpected": o.unexpected,
        "evaluated": o.element_count,
        "row_ids": [str(v) for v in ids.take(pa.array(flagged[:ROW_IDS])).to_pylist()],
    }


# ---------------------------------------------------------------------------- the hook
def after_extract(ctx: Context, run_id: str, tally: ExtractTally, result: dict[str, Any]) -> dict[str, Any]:
    """Extract-level checks after the batch loop; updates the ledger and returns ``result`` (maybe quarantined).

    Called by :func:`xforce.pipeline.process_extract` once the extract is staged and recorded.
    """
    from xforce import docs_site

    night, force, dataset, status = result["night"], result["force"], result["dataset"], result["status"]
    if status not in ("validated", "quarantined"):
        return result
    cfg = load_config(ctx.settings.config_dir)
    contract = tally.reports[-1].contract if tally.reports else ctx.registry.contract(force, dataset)
    row = ctx.ledger.get(night, force, dataset) or {}
    drift = Drift()
    for report in tally.reports:  # columns file by file; retyped values over the whole extract
        _merge(drift, detect_drift(report.contract, getattr(report, "columns", None), ExtractTally(), cfg))
    _merge(drift, detect_drift(contract, None, tally, cfg))
    rows_in = int(result.get("rows_in") or 0)
    usual, history = usual_volume(ctx, night, force, dataset, cfg)
    judged = usual is not None and usual >= cfg.min_usual_rows
    metrics: dict[str, Any] = {
        "rows_in": rows_in,
        "usual_rows": usual,
        "volume_ratio": rows_in / usual if judged and usual else None,
        "quarantined_share": (int(result.get("rows_quarantined") or 0) / rows_in)
        if rows_in >= cfg.rejection_min_rows
        else None,
        **drift.metrics(),
    }
    table = run_table_suite(ctx.settings.expectations_dir, dataset, metrics, cfg)
    failed = [t for t in table if not t["success"]]
    critical = [t for t in failed if t["severity"] == "critical"]
    warnings = [_table_message(t, drift) for t in failed if t["severity"] == "warning"]
    order = None
    if dataset == "seizures" and status == "validated" and not critical and row.get("staged"):
        order = check_seizure_order(ctx, night, force, run_id, row["staged"]["published"], contract, cfg)
        if order and order["unexpected"]:
            warnings.append(f"{order['unexpected']} row(s) {order['reason']} (warning)")
    for (etype, column, reason, severity), (bad, _) in sorted(tally.outcomes.items()):
        if severity == "warning" and bad:
            warnings.append(f"{bad} row(s) {reason}: {etype}({column}) (warning)")
    error = None
    if critical:
        error = "; ".join(_table_message(t, drift) for t in critical)
        if status == "validated":
            staging = ctx.zone("staging")
            for rel in (row.get("staged") or {}).values():  # nothing of it may publish, nor vouch for seizures
                staging.delete(rel)
            reason = critical[0]["reason"]
            ctx.ledger.record(
                night,
                force,
                dataset,
                status="quarantined",
                rows_published=0,
                rows_quarantined=rows_in,
                reasons={reason: rows_in},
                error="; ".join(e for e in (error, row.get("error")) if e),
                staged=None,
            )
            ctx.ledger.event(
                "quarantined",
                night=night,
                force=force,
                dataset=dataset,
                run_id=run_id,
                detail={"table_level": [t["reason"] for t in critical], "rows_in": rows_in},
            )
            result.update(status="quarantined", rows_published=0, rows_quarantined=rows_in)
        elif drift.metrics()["drift_missing_required"] or drift.metrics()["drift_retyped_required"]:
            # unreadable already: say which columns drifted, before the reader's own message
            drift_error = "; ".join(_table_message(t, drift) for t in critical if t["policy"])
            ctx.ledger.record(night, force, dataset, error="; ".join(e for e in (drift_error, row.get("error")) if e))
    if warnings:
        old = (ctx.ledger.get(night, force, dataset) or {}).get("warning")
        ctx.ledger.record(night, force, dataset, warning="; ".join(w for w in [old, *warnings] if w))
    if any(drift.metrics().values()):
        ctx.ledger.event(
            "schema_drift",
            night=night,
            force=force,
            dataset=dataset,
            run_id=run_id,
            detail={**drift.to_json(), "policy": {k: cfg.drift[k] for k in DRIFT_POLICIES}},
        )
    final = ctx.ledger.get(night, force, dataset) or {}
    docs_site.write_results(
        ctx.zone("docs"),
        {
            "night": night,
            "force": force,
            "dataset": dataset,
            "run_id": run_id,
            "status": final.get("status", result["status"]),
            "rows": {k: final.get(f"rows_{k}") for k in ("in", "published", "quarantined")},
            "reasons": final.get("reasons") or {},
            "error": final.get("error"),
            "warning": final.get("warning"),
            "row_level": [
                {
                    "expectation": etype,
                    "column": column,
                    "reason": reason,
                    "severity": severity,
                    "success": bad == 0,
                    "unexpected": bad,
                    "evaluated": evaluated,
                }
                for (etype, column, reason, severity), (bad, evaluated) in tally.outcomes.items()
            ],
            "row_ids": tally.row_ids,
            "rows_warned": tally.warned,
            "cross_dataset": [order] if order else [],
            "table_level": table,
            "metrics": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()},
            "history_nights": history,
            "drift": {**drift.to_json(), "lines": drift.describe()},
        },
    )
    if error:
        log.warning("%s/%s %s: %s", force, dataset, night, error)
    return result


def _merge(into: Drift, d: Drift) -> None:
    into.checked = into.checked or d.checked
    into.added += [a for a in d.added if a not in into.added]
    for name in ("dropped", "renamed", "retyped"):
        have = getattr(into, name)
        have += [x for x in getattr(d, name) if x not in have]
    into.withheld += d.withheld


def _table_message(t: dict[str, Any], drift: Drift) -> str:
    if t["policy"]:
        names = "; ".join(drift.describe(t["policy"]))
        return f"schema drift: {names} [{t['severity']}]"
    bounds = ", ".join(f"{k.split('_')[0]} {_g(v)}" for k, v in t["bounds"].items())
    return f"{t['reason']}: {t['metric']} = {_g(t['observed'])} ({bounds}) [{t['severity']}]"


def _g(value: Any) -> str:
    return "null" if value is None else f"{float(value):g}"


# ------------------------------------------------------------------------------- deadlines
def alert_missing_extract(
    ctx: Context, night: str, force: str, dataset: str, run_id: str | None = None, now: datetime | None = None
) -> dict[str, Any] | None:
    """Alert (ledger event ``alert`` and a log line on ``xforce.alerts``) when an extract has not landed
    by its cut-off. Returns the alert, or None (landed after all, not due yet, or already alerted)."""
    cfg = load_config(ctx.settings.config_dir)
    due = cfg.cutoff_at(night, force, dataset)
    now = now or datetime.now(UTC)
    row = ctx.ledger.get(night, force, dataset)
    if row is not None and row.get("status") != "missing":
        return None
    if now < due:
        log.info("%s/%s for %s missing but not due until %s", force, dataset, night, due.isoformat())
        return None
    for e in ctx.ledger.events(night):
        if e["event"] == "alert" and e["force"] == force and e["dataset"] == dataset:
            return None
    local = due.astimezone(ZoneInfo(cfg.timezone))
    message = (
        f"ALERT: {force} has not delivered its {dataset} extract for the night of {night} "
        f"(cut-off {local:%Y-%m-%d %H:%M} {cfg.timezone}); the other extracts publish as usual"
    )
    alert = {"kind": "extract_missing", "cutoff": due.isoformat(), "message": message}
    ctx.ledger.event("alert", night=night, force=force, dataset=dataset, run_id=run_id, detail=alert)
    alerts_log.warning(message)
    return alert


def on_validate_skipped(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """``on_skipped_callback`` of the validate tasks: a skipped validate task means its extract is missing.

    Works from Airflow's context only through ``ti.xcom_pull`` (the land task's reference for the same
    map index) or the task's resolved ``op_kwargs``, so it is testable with a stand-in context.
    """
    ref = _skipped_ref(context)
    if not ref or ref.get("status") != "missing":
        return None
    from xforce.pipeline import Context

    return alert_missing_extract(
        Context.from_env(), ref["night"], ref["force"], ref["dataset"], run_id=str(context.get("run_id"))
    )


def _skipped_ref(context: Mapping[str, Any]) -> dict[str, Any] | None:
    task = context.get("task")
    kwargs = getattr(task, "op_kwargs", None) or {}
    ref = kwargs.get("ref")
    if isinstance(ref, dict) and "force" in ref:
        return ref
    ti = context.get("ti")
    if ti is None:
        return None
    upstream = [t for t in sorted(getattr(task, "upstream_task_ids", ()) or ()) if t.startswith("land")]
    if not upstream:
        return None
    pulled = ti.xcom_pull(task_ids=upstream[0], map_indexes=ti.map_index)
    return pulled if isinstance(pulled, dict) else None
