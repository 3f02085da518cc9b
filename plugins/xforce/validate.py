"""Great Expectations validation of a normalised table, turned into per-row verdicts.

The suites are JSON in ``expectations/``; each expectation's ``meta.reason`` is the quarantine
reason and ``meta.severity`` whether a failing row is quarantined (critical) or published with
a warning. Results keep counts and row positions only: GX puts the failing *values* in
``unexpected_index_list`` too, and those (plates) are dropped here before anything is stored.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from xforce.contracts import DatasetContract

ROW = "_row"
#: Columns GX sees: never the clear plate outside this process, never stored.
DERIVED = ("_first_occurrence", "_incident_known")


@dataclass
class ExpectationOutcome:
    type: str
    column: str | None
    reason: str
    severity: str
    success: bool
    unexpected: int
    element_count: int


@dataclass
class Verdict:
    """Per row: the first critical reason (or None) and the warnings."""

    reasons: list[str | None]
    details: list[str | None]
    warned: np.ndarray
    outcomes: list[ExpectationOutcome] = field(default_factory=list)


@functools.lru_cache(maxsize=8)
def load_suite(expectations_dir: str, dataset: str) -> dict[str, Any]:
    path = Path(expectations_dir) / f"{dataset}.json"
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


@functools.lru_cache(maxsize=1)
def _batch_definition() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("xforce").add_dataframe_asset("extract")
    return asset.add_batch_definition_whole_dataframe("whole")


def validate(
    table: pa.Table, dataset: str, contract: DatasetContract, params: dict[str, Any], expectations_dir: str
) -> Verdict:
    """Validate ``table`` (normalised columns plus derived flags) with the dataset's suite."""
    from great_expectations.core.expectation_suite import ExpectationSuite

    n = table.num_rows
    reasons: list[str | None] = [None] * n
    details: list[str | None] = [None] * n
    warned = np.zeros(n, dtype=bool)
    if n == 0:
        return Verdict(reasons, details, warned)
    doc = load_suite(expectations_dir, dataset)
    expectations = [
        e
        for e in doc["expectations"]
        if e.get("meta", {}).get("field") not in contract.optional and e["kwargs"].get("column") in table.column_names
    ]
    suite = ExpectationSuite(name=doc["name"], expectations=expectations, meta=doc.get("meta"))
    frame = table.append_column(ROW, pa.array(np.arange(n, dtype=np.int64))).to_pandas()
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(
        suite,
        expectation_parameters=params,
        result_format={
            "result_format": "COMPLETE",
            "unexpected_index_column_names": [ROW],
            "return_unexpected_index_query": False,
            "partial_unexpected_count": 0,
        },
    )
    outcomes = []
    # Results come back in suite order, which is the order of precedence for the reason.
    for res in result.results:
        cfg = res.expectation_config
        meta = cfg.meta or {}
        reason, severity = str(meta.get("reason", cfg.type)), str(meta.get("severity", "critical"))
        if res.exception_info and res.exception_info.get("raised_exception"):
            raise RuntimeError(
                f"expectation {cfg.type} on {cfg.kwargs.get('column')} raised: "
                f"{res.exception_info.get('exception_message')}"
            )
        rows = [int(item[ROW]) for item in (res.result.get("unexpected_index_list") or [])]
        outcomes.append(
            ExpectationOutcome(
                cfg.type,
                cfg.kwargs.get("column"),
                reason,
                severity,
                bool(res.success),
                len(rows),
                int(res.result.get("element_count") or n),
            )
        )
        label = f"{cfg.type}({cfg.kwargs.get('column')})"
        for r in rows:
            if severity == "critical":
                if reasons[r] is None:
                    reasons[r] = reason
                    details[r] = label
                else:
                    details[r] = f"{details[r]}; {label}"
            else:
                warned[r] = True
    return Verdict(reasons, details, warned, outcomes)
