"""Cross-dataset order: a published seizure timed before its incident is a row-level *warning*
(checked after the split, on the staged published seizures)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xforce.errors import ConfigError
from xforce.quality.tally import ROW_IDS

if TYPE_CHECKING:
    from xforce.context import Context
    from xforce.intake.contracts import DatasetContract
    from xforce.quality.config import QualityConfig
    from xforce.store.incidents import IncidentIndex


#: The derived column of the seizure/incident order check (minutes from the incident to the seizure).
LAG_COLUMN = "_minutes_after_incident"


LAG_PARAM = "seizure_lag_min_minutes"


def check_seizure_order(
    ctx: Context,
    staged_published: str,
    contract: DatasetContract,
    cfg: QualityConfig,
    incidents: IncidentIndex,
) -> dict[str, Any] | None:
    """The suite's ``_minutes_after_incident`` expectation on the staged published seizures.

    A warning by design: it runs after the split, so it flags rows and never moves them.
    """
    from xforce.quality.validate import load_suite, validate

    staging = ctx.zones.staging
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
    times = incidents.occurred_at(t.column("incident_record_id").drop_null().to_pylist())
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
