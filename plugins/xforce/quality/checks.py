"""The extract-level checks, run once per extract after the batch loop (:func:`judge_extract`).

Row-level expectations (``expectations/<dataset>.json``) run batch by batch in
:mod:`xforce.quality.validate`; what needs the whole extract is judged here: schema drift
(:mod:`~xforce.quality.drift`), the table-level suite (:mod:`~xforce.quality.table_suite`) and
cross-dataset order (:mod:`~xforce.quality.order`). The results (counts, expectation names and row
ids, never values) go to the night's Data Docs (:mod:`xforce.quality.docs_site`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from xforce.quality import docs_site
from xforce.quality.config import DRIFT_POLICIES, load_config
from xforce.quality.drift import Drift, _merge, detect_drift
from xforce.quality.order import check_seizure_order
from xforce.quality.table_suite import _table_message, run_table_suite, usual_volume
from xforce.quality.tally import ExtractTally
from xforce.store.incidents import IncidentIndex

if TYPE_CHECKING:
    from xforce.context import Context
    from xforce.outcome import Outcome

log = logging.getLogger("xforce.quality")


def judge_extract(
    ctx: Context, run_id: str, tally: ExtractTally, outcome: Outcome, incidents: IncidentIndex | None = None
) -> Outcome:
    """Extract-level checks after the batch loop: schema drift, the table-level suite, seizure order.

    Refines ``outcome`` in place (a failed critical check quarantines the whole extract and deletes
    what was staged; warnings are added), records the drift event and writes the extract's Data Docs
    results. Called by :func:`xforce.exchange.process.process_extract`, which records the outcome.
    """
    night, force, dataset, status = outcome.night, outcome.force, outcome.dataset, outcome.status
    if status not in ("validated", "quarantined"):
        return outcome
    cfg = load_config(ctx.settings.config_dir)
    contract = tally.reports[-1].contract if tally.reports else ctx.registry.contract(force, dataset)
    drift = Drift()
    for report in tally.reports:  # columns file by file; retyped values over the whole extract
        _merge(drift, detect_drift(report.contract, getattr(report, "columns", None), ExtractTally(), cfg))
    _merge(drift, detect_drift(contract, None, tally, cfg))
    rows_in = outcome.rows_in
    usual, history = usual_volume(ctx, night, force, dataset, cfg)
    judged = usual is not None and usual >= cfg.min_usual_rows
    metrics: dict[str, Any] = {
        "rows_in": rows_in,
        "usual_rows": usual,
        "volume_ratio": rows_in / usual if judged and usual else None,
        "quarantined_share": (outcome.rows_quarantined / rows_in) if rows_in >= cfg.rejection_min_rows else None,
        **drift.metrics(),
    }
    table = run_table_suite(ctx.settings.expectations_dir, dataset, metrics, cfg)
    failed = [t for t in table if not t["success"]]
    critical = [t for t in failed if t["severity"] == "critical"]
    warnings = [_table_message(t, drift) for t in failed if t["severity"] == "warning"]
    order = None
    if dataset == "seizures" and status == "validated" and not critical and outcome.staged:
        if incidents is None:
            incidents = IncidentIndex(ctx.zones.staging, ctx.zones.curated, run_id, force, night)
        order = check_seizure_order(ctx, outcome.staged["published"], contract, cfg, incidents)
        if order and order["unexpected"]:
            warnings.append(f"{order['unexpected']} row(s) {order['reason']} (warning)")
    for (etype, column, reason, severity), (bad, _) in sorted(tally.outcomes.items()):
        if severity == "warning" and bad:
            warnings.append(f"{bad} row(s) {reason}: {etype}({column}) (warning)")
    error = None
    if critical:
        error = "; ".join(_table_message(t, drift) for t in critical)
        if status == "validated":
            for rel in (outcome.staged or {}).values():  # nothing of it may publish, nor vouch for seizures
                ctx.zones.staging.delete(rel)
            outcome.quarantine_whole(critical[0]["reason"], error)
            ctx.ledger.event(
                "quarantined",
                night=night,
                force=force,
                dataset=dataset,
                run_id=run_id,
                detail={"table_level": [t["reason"] for t in critical], "rows_in": rows_in},
            )
        elif drift.metrics()["drift_missing_required"] or drift.metrics()["drift_retyped_required"]:
            # unreadable already: say which columns drifted, before the reader's own message
            outcome.errors.insert(0, "; ".join(_table_message(t, drift) for t in critical if t["policy"]))
    outcome.warnings += warnings
    row_level = tally.outcomes.values()
    outcome.suite = {
        "row": (sum(1 for bad, _ in row_level if not bad), len(row_level)),
        "table": (len(table) - len(failed), len(table)),
    }
    if any(drift.metrics().values()):
        ctx.ledger.event(
            "schema_drift",
            night=night,
            force=force,
            dataset=dataset,
            run_id=run_id,
            detail={**drift.to_json(), "policy": {k: cfg.drift[k] for k in DRIFT_POLICIES}},
        )
    docs_site.write_results(
        ctx.zones.docs,
        {
            "night": night,
            "force": force,
            "dataset": dataset,
            "run_id": run_id,
            "status": outcome.status,
            "rows": {
                "in": outcome.rows_in,
                "published": outcome.rows_published,
                "quarantined": outcome.rows_quarantined,
            },
            "reasons": dict(sorted(outcome.reasons.items())),
            "error": outcome.error,
            "warning": outcome.warning,
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
    return outcome
