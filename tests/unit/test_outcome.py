"""What an operator reads in a validate task's log: the outcome's summary (counts, reasons, expectations)."""

from __future__ import annotations

import pytest

from xforce.outcome import Outcome

pytestmark = pytest.mark.unit


def test_the_summary_gives_counts_reasons_expectations_and_problems() -> None:
    o = Outcome("2026-11-27", "kent", "anpr_reads", "validated", rows_in=10, rows_published=7, rows_quarantined=3)
    o.reasons = {"duplicate_id": 1, "bad_plate": 2}
    o.suite = {"row": (9, 11), "table": (5, 5)}
    o.warnings = ["", "anpr_reads.csv: 2 row(s) late_read (warning)"]
    lines = o.summary()
    assert lines[0] == "kent/anpr_reads 2026-11-27: validated; received 10, published 7, quarantined 3"
    assert "quarantined by reason: bad_plate 2, duplicate_id 1" in lines
    assert "Great Expectations, row-level suite: 9 of 11 expectations met" in lines
    assert "Great Expectations, table-level suite: 5 of 5 expectations met" in lines
    assert lines[-1] == "warnings: anpr_reads.csv: 2 row(s) late_read (warning)"
    assert not any(line.startswith("error") for line in lines)


def test_a_quarantined_extract_says_why_in_its_summary() -> None:
    o = Outcome("2026-11-27", "kent", "anpr_reads", "validated", rows_in=4, rows_published=4)
    o.quarantine_whole("intake_limit", "anpr_reads.csv: over the intake limit")
    assert o.summary()[0].endswith("quarantined; received 4, published 0, quarantined 4")
    assert "error: anpr_reads.csv: over the intake limit" in o.summary()
