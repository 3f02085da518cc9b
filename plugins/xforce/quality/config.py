"""Data-quality settings (``config/quality.yaml``): the schema-drift policy, volume history, the
rejection floor, seizure/incident tolerance and the cut-offs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from xforce.errors import ConfigError
from xforce.intake.contracts import read_yaml

ACTIONS = ("quarantine", "warn", "tolerate")


DRIFT_POLICIES = ("extra_column", "missing_required", "missing_optional", "retyped_required", "retyped_optional")


SEVERITY_OF = {"quarantine": "critical", "warn": "warning"}


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
