"""Great Expectations validation of a normalised table, turned into per-row verdicts.

The suites are JSON in ``expectations/``; each expectation's ``meta.reason`` is the quarantine
reason and ``meta.severity`` whether a failing row is quarantined (critical) or published with
a warning. GX runs in its worker process (``xforce.quality.gxworker``), which sends back counts and row
positions only: GX is asked not to list the failing *values* (``exclude_unexpected_values``), and
an expectation's exception message comes back described (length and hash), never as text.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xforce.errors import ValidatorError
from xforce.quality.gxworker import SuiteResult, run_suite
from xforce.schemas import ROW_UNIQUE

if TYPE_CHECKING:
    from xforce.intake.contracts import DatasetContract

RESULT_FORMAT = {
    # no unexpected_index_column_names: GX then lists plain frame positions (fast, and no values
    # beside them); the frame's RangeIndex is the slot number.
    "result_format": "COMPLETE",
    "return_unexpected_index_query": False,
    "partial_unexpected_count": 0,
    # no unexpected_list, partial_unexpected_list or partial_unexpected_counts in GX's results: the
    # failing values (plates among them) are not even put into a result inside the worker
    "exclude_unexpected_values": True,
}


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
    """Per row: the first critical reason (None when the row passes), the failing expectations, warnings."""

    reasons: np.ndarray  # object: str | None
    details: np.ndarray  # object: str | None
    warned: np.ndarray  # bool
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def failed(self) -> np.ndarray:
        return np.not_equal(self.reasons, None)  # type: ignore[call-overload]


@dataclass
class _Distinct:
    """One column reduced to its distinct values; ``codes`` maps every row to its value."""

    values: pa.Array  # distinct values, the null (if any) last; for ROW_UNIQUE columns the column itself
    codes: np.ndarray  # per row: index into values


def _distinct(column: pa.ChunkedArray | pa.Array, null_only: bool, unique: bool = False) -> _Distinct:
    """``column`` reduced to its distinct values; a ``unique`` column (``schemas.ROW_UNIQUE``: a value of
    its own on every row) is judged as it stands, since reducing it would cost a hash table of every row."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if unique and not null_only:
        return _Distinct(col, np.arange(len(col), dtype=np.int64))
    isnull = col.is_null().to_numpy(zero_copy_only=False)
    if null_only:  # only nullness is judged: one non-null representative stands for all
        first = int(np.argmin(isnull)) if not isnull.all() else None
        values = [] if first is None else [col[first]]
        codes = np.zeros(len(col), dtype=np.int64)
        dictionary = pa.array([v.as_py() for v in values], col.type)
    else:
        enc = pc.dictionary_encode(col)
        dictionary = enc.dictionary
        codes = enc.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if isnull.any():
        codes = np.where(isnull, len(dictionary), codes)
        dictionary = pa.concat_arrays([dictionary, pa.nulls(1, col.type)])
    return _Distinct(dictionary, codes)


def _pad(values: pa.Array, length: int) -> pa.Array:
    """Repeat the first value up to ``length``: a padded slot is judged exactly like that value."""
    if len(values) == length:
        return values
    return pa.concat_arrays([values, pc.take(values, pa.array(np.zeros(length - len(values), dtype=np.int64)))])


@functools.lru_cache(maxsize=8)
def load_suite(expectations_dir: str, dataset: str) -> dict[str, Any]:
    path = Path(expectations_dir) / f"{dataset}.json"
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


#: A column with fewer than 1/SPLIT_RATIO of the longest column's distinct values is judged in a
#: shorter frame of its own (padding it to the longest would make every expectation on it cost
#: the number of reads again) ...
SPLIT_RATIO = 4
#: ... unless the frame would be shorter than this: below it one more GX call costs more than it saves.
SPLIT_MIN_ROWS = 50_000


def _frame_groups(lengths: dict[str, int]) -> list[list[str]]:
    """Columns grouped into frames of similar length, longest first.

    An ANPR batch has one distinct ``source_id`` a read but a few hundred thousand plates and
    times and forty cameras: one frame padded to the ids would make GX judge every expectation
    once a read.
    """
    groups: list[tuple[list[str], int]] = []
    for column in sorted(lengths, key=lambda c: -lengths[c]):
        n = lengths[column]
        if groups and (n * SPLIT_RATIO >= groups[-1][1] or groups[-1][1] < SPLIT_MIN_ROWS):
            groups[-1][0].append(column)
        else:
            groups.append(([column], n))
    return [g for g, _ in groups]


def validate(
    table: pa.Table, dataset: str, contract: DatasetContract, params: dict[str, Any], expectations_dir: str
) -> Verdict:
    """Validate ``table`` (normalised columns plus derived flags) with the dataset's suite.

    The suite's expectations are all column-map expectations: a row's verdict is a function of its
    value in that column. So Great Expectations is given each column's *distinct* values once
    (padded into frames of columns of similar length, ``_frame_groups``) and every row takes the
    verdict of its value: exact, and it costs the number of distinct plates, times and places
    instead of the number of reads for every expectation.
    """
    n = table.num_rows
    reasons = np.full(n, None, dtype=object)
    details = np.full(n, None, dtype=object)
    warned = np.zeros(n, dtype=bool)
    if n == 0:
        return Verdict(reasons, details, warned)
    doc = load_suite(expectations_dir, dataset)
    expectations = [
        e
        for e in doc["expectations"]
        if e.get("meta", {}).get("field") not in contract.optional and e["kwargs"].get("column") in table.column_names
    ]
    columns: dict[str, set[str]] = {}
    for e in expectations:
        columns.setdefault(e["kwargs"]["column"], set()).add(e["type"])
    distinct = {
        c: _distinct(table.column(c), types == {"expect_column_values_to_not_be_null"}, c in ROW_UNIQUE)
        for c, types in columns.items()
    }
    suite_meta = doc.get("meta")
    results: list[Any] = []
    for group in _frame_groups({c: len(d.values) for c, d in distinct.items()}):
        length = max(max(len(distinct[c].values) for c in group), 1)
        frame = pa.table({c: _pad(distinct[c].values, length) for c in group if len(distinct[c].values)})
        if frame.num_columns == 0:  # every column of the group is empty: nothing to judge
            continue
        suite = {
            "name": doc["name"],
            "expectations": [e for e in expectations if e["kwargs"]["column"] in frame.column_names],
            "meta": suite_meta,
        }
        results.extend(run_suite(frame, suite, params, RESULT_FORMAT))
    outcomes = []
    # The suite's order is the order of precedence for the reason; GX returns results grouped by
    # column, so put them back in suite order first.
    rank = {
        (e["type"], e["kwargs"].get("column"), e.get("meta", {}).get("reason")): i for i, e in enumerate(expectations)
    }

    def suite_position(res: SuiteResult) -> int:
        return rank.get((res.type, res.kwargs.get("column"), res.meta.get("reason")), len(rank))

    for res in sorted(results, key=suite_position):
        column = str(res.kwargs.get("column"))
        reason, severity = str(res.meta.get("reason", res.type)), str(res.meta.get("severity", "critical"))
        if res.exception is not None:
            raise ValidatorError(f"expectation {res.type} on {column} raised: {res.exception}")
        d = distinct[column]
        bad_value = np.zeros(max(len(d.values), 1), dtype=bool)
        slots = res.unexpected_index  # positions only: the worker drops the failing values themselves
        bad_value[np.where(slots < len(d.values), slots, 0)] = True
        rows = bad_value[d.codes]
        outcomes.append(ExpectationOutcome(res.type, column, reason, severity, not rows.any(), int(rows.sum()), n))
        label = f"{res.type}({column})"
        if severity == "critical":
            first = rows & np.equal(reasons, None)  # type: ignore[call-overload]
            more = rows & ~first
            reasons[first] = reason
            details[first] = label
            if more.any():
                details[more] = details[more] + f"; {label}"
        else:
            warned |= rows
    return Verdict(reasons, details, warned, outcomes)
