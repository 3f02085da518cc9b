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
