"""Schema drift: a file's own columns (CSV header, or the key paths of the first JSON Lines records)
against the force's contract: added, dropped, renamed (a dropped and an added column that look
alike) and retyped columns (a column whose present values mostly fail to parse as the contract
says). Reported by name, never by value: a file's own column that is not a column of the contract
is named only when it is a safe identifier (``xforce.redaction.is_safe_name``), otherwise by its
position, length and hash (``column 3 <len 7, sha-256 …>``)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xforce.redaction import describe_name, is_safe_name

if TYPE_CHECKING:
    from xforce.intake.contracts import DatasetContract
    from xforce.quality.config import QualityConfig
    from xforce.quality.tally import ExtractTally


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
            lines.append((kind, f"renamed {d['column']!r} -> {_shown(d['to'])} (field {d['field']}, {_req(d)} column)"))
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
            lines.append(("extra_column", "new column(s) " + ", ".join(_shown(a) for a in self.added)))
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


def _keep(name: str, position: int) -> str:
    """A file's own column as the drift report keeps it: the name when it is safe to show, else
    its position, length and hash."""
    return name if is_safe_name(name) else describe_name(name, position=position)


def _shown(name: str) -> str:
    """A name as ``detect_drift`` kept it: quoted when it is the name itself, else its description."""
    return repr(name) if is_safe_name(name) else name


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
    drift = Drift()
    required = set(contract.required)  # fields whose values are required (REQUIRED_FIELDS less optional)
    if columns is not None:
        drift.checked = True
        seen = list(dict.fromkeys(columns))
        position = {c: i for i, c in enumerate(seen, 1)}
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
                drift.renamed.append({**d, "to": _keep(best, position[best])})
            else:
                drift.dropped.append(d)
        drift.added = [_keep(a, position[a]) for a in added]
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


def _merge(into: Drift, d: Drift) -> None:
    into.checked = into.checked or d.checked
    into.added += [a for a in d.added if a not in into.added]
    for name in ("dropped", "renamed", "retyped"):
        have = getattr(into, name)
        have += [x for x in getattr(d, name) if x not in have]
    into.withheld += d.withheld
