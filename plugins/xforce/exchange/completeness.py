"""Completeness as data: which forces and datasets a night holds, published beside the datasets.

One small table per night, ``curated/dataset=completeness/date=<night>/part-0.parquet``, one row per
force x dataset: status (``published``, ``published_with_warnings``, ``late``, ``missing``,
``quarantined``, ``failed``), when the extract was received, its cut-off and how far after it, rows in,
published and quarantined, the quarantine reasons' counts and the error or warning. It is built from
the manifest entries ``publish_night`` decides (the same truth the manifests and the ledger hold), so
analysts read it with the same readers as the data; its schema is
:data:`xforce.dictionary.COMPLETENESS`.

``publish_night`` calls, once per night after the three manifests are written::

    write_completeness(curated, night, completeness_table(night, forces_by_dataset, registry, quality, run_id))

:func:`completeness_from_manifests` rebuilds the table of a night from its ``_manifest.json`` files
(nights published before the table existed, tests).
"""

from __future__ import annotations

import io
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from xforce.dictionary import COMPLETENESS, COMPLETENESS_DATASET, with_file_metadata
from xforce.schemas import DATASETS
from xforce.store import layout
from xforce.store.zones import PARQUET_OPTIONS

if TYPE_CHECKING:
    from collections.abc import Mapping

    from xforce.intake.contracts import Registry
    from xforce.quality.config import QualityConfig
    from xforce.store.zones import Zone

#: Statuses that leave the force's records of the dataset in the night (the others leave none).
PRESENT = frozenset({"published", "published_with_warnings", "late"})


def completeness_file(night: str) -> str:
    """``dataset=completeness/date=<night>/part-0.parquet`` in the curated zone."""
    return f"{layout.night_dir(COMPLETENESS_DATASET, night)}/{layout.PART_FILE}"


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def extract_status(entry: Mapping[str, Any], late: bool) -> str:
    """The completeness status of one manifest entry (its ``status`` refined by lateness and warnings)."""
    status = str(entry.get("status") or "missing")
    if status == "published":
        if late:
            return "late"
        if entry.get("warning"):
            return "published_with_warnings"
        return "published"
    if status in ("missing", "quarantined"):
        return status
    return "failed"  # failed, or anything a publish left unfinished (validated/landed by another run)


def completeness_table(
    night: str,
    forces_by_dataset: Mapping[str, Mapping[str, Mapping[str, Any]]],
    registry: Registry,
    quality: QualityConfig,
    run_id: str | None = None,
) -> pa.Table:
    """One row per force of ``registry`` x dataset, from the manifest entries of the night.

    ``forces_by_dataset`` is ``{dataset: {force: manifest entry}}`` as ``publish_night`` builds it
    (``rows_in``, ``rows_published``, ``rows_quarantined``, ``received_at``, ``error``, ``warning``,
    ``reasons``, ``sha256``, ``status``); a force or dataset without an entry is ``missing``.
    """
    rows = []
    for force, info in registry.forces.items():
        for dataset in DATASETS:
            entry = (forces_by_dataset.get(dataset) or {}).get(force) or {"status": "missing"}
            cutoff = quality.cutoff_at(night, force, dataset)
            received = _when(entry.get("received_at"))
            if entry.get("status") == "missing":
                received = None
            late = received is not None and received > cutoff
            reasons = entry.get("reasons") or {}
            rows.append(
                {
                    "night": night,
                    "force": force,
                    "force_name": info.name,
                    "dataset_name": dataset,
                    "status": extract_status(entry, late),
                    "received_at": received,
                    "cutoff_at": cutoff,
                    "late": late,
                    "minutes_after_cutoff": None
                    if received is None
                    else int((received - cutoff).total_seconds() // 60),
                    "rows_in": int(entry.get("rows_in") or 0),
                    "rows_published": int(entry.get("rows_published") or 0),
                    "rows_quarantined": int(entry.get("rows_quarantined") or 0),
                    "reasons": [{"reason": str(k), "rows": int(v)} for k, v in sorted(reasons.items())],
                    "error": entry.get("error") or None,
                    "warning": entry.get("warning") or None,
                    "sha256": entry.get("sha256") or None,
                    "run_id": run_id,
                }
            )
    return with_file_metadata(
        pa.Table.from_pylist(rows, schema=COMPLETENESS), COMPLETENESS_DATASET, night, None, run_id
    )


def write_completeness(curated: Zone, night: str, table: pa.Table) -> str:
    """Write the night's completeness table (one file, replaced whole in one step); returns its path."""
    buf = io.BytesIO()
    pq.write_table(table, buf, **PARQUET_OPTIONS)
    rel = completeness_file(night)
    curated.write_bytes(rel, buf.getvalue())
    return rel


def completeness_from_manifests(curated: Zone, night: str, registry: Registry, quality: QualityConfig) -> pa.Table:
    """The night's table rebuilt from its three ``_manifest.json`` (a dataset without one: all missing)."""
    forces: dict[str, Mapping[str, Any]] = {}
    run_id = None
    for dataset in DATASETS:
        rel = layout.manifest(dataset, night)
        if curated.exists(rel):
            doc = curated.read_json(rel)
            forces[dataset] = doc.get("forces") or {}
            run_id = run_id or doc.get("run_id")
    return completeness_table(night, forces, registry, quality, run_id)
