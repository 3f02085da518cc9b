"""What one extract's batches leave for the extract-level checks: counts and row ids, never values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xforce.schemas import TIME_COLUMN

if TYPE_CHECKING:
    from xforce.quality.validate import Verdict


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
