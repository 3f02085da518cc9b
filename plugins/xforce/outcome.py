"""What a step concluded about one extract: its status, counts, reasons, errors and warnings.

Processing returns an :class:`Outcome`; quality checks refine it; the ledger records it once
(:meth:`xforce.store.ledger.Ledger.record_outcome`); its :meth:`Outcome.ref` is what goes
through XCom (ids, status and counts, never content).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Final states of an extract in the ledger and the manifest.
STATUSES = ("missing", "landed", "validated", "published", "quarantined", "failed")


@dataclass
class Outcome:
    night: str
    force: str
    dataset: str
    status: str
    rows_in: int = 0
    rows_published: int = 0
    rows_quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: where the run staged the two halves of the split (``published``, ``quarantine``), while validated
    staged: dict[str, str] | None = None
    #: the GX suites' expectations met: ``row`` and ``table`` -> (successful, evaluated)
    suite: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def error(self) -> str | None:
        return "; ".join(e for e in self.errors if e) or None

    @property
    def warning(self) -> str | None:
        return "; ".join(w for w in self.warnings if w) or None

    def quarantine_whole(self, reason: str, error: str) -> None:
        """Nothing of the extract publishes: every row is quarantined for ``reason``."""
        self.status = "quarantined"
        self.rows_published, self.rows_quarantined = 0, self.rows_in
        self.reasons = {reason: self.rows_in}
        self.errors.insert(0, error)
        self.staged = None

    def summary(self) -> list[str]:
        """What an operator reads in the task log: counts, reasons with counts, expectations met,
        errors and warnings (texts the hub wrote: positions, lengths and hashes, never a value)."""
        label = f"{self.force}/{self.dataset} {self.night}"
        lines = [
            f"{label}: {self.status}; received {self.rows_in}, published {self.rows_published}, "
            f"quarantined {self.rows_quarantined}"
        ]
        if self.reasons:
            lines.append("quarantined by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(self.reasons.items())))
        for level, (met, evaluated) in sorted(self.suite.items()):
            lines.append(f"Great Expectations, {level}-level suite: {met} of {evaluated} expectations met")
        if self.error:
            lines.append(f"error: {self.error}")
        if self.warning:
            lines.append(f"warnings: {self.warning}")
        return lines

    def ref(self) -> dict[str, Any]:
        """The small reference passed on through XCom."""
        return {
            "night": self.night,
            "force": self.force,
            "dataset": self.dataset,
            "status": self.status,
            "rows_in": self.rows_in,
            "rows_published": self.rows_published,
            "rows_quarantined": self.rows_quarantined,
        }
