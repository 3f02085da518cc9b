"""Publish: move every extract a run staged into curated/quarantine, then write the manifests.

The last stage of the nightly exchange (``publish_night``), and the night's table for people."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as pads

from xforce.quality.docs_site import render_night
from xforce.schemas import DATASETS, SCHEMA_VERSION
from xforce.store import layout
from xforce.store.connections import open_zone
from xforce.store.ledger import utcnow

if TYPE_CHECKING:
    from xforce.context import Context


def publish_night(ctx: Context, night: str, run_id: str) -> dict[str, Any]:
    """Move every extract staged by this run into curated/quarantine, then write the manifests.

    Each partition is one Parquet file replaced in a single step, so a reader sees the old
    night or the new one, never half of it; re-running a night replaces, never duplicates.
    What to move is what the ledger records as validated by this run (the durable record of the
    steps that finished, so a retry after a crash sees what the first attempt saw); where it was
    staged follows from the run id (:func:`xforce.store.layout.staged`).
    """
    curated, quarantine, staging = ctx.zones.curated, ctx.zones.quarantine, ctx.zones.staging
    recorded = {(r["force"], r["dataset"]): r for r in ctx.ledger.extracts(night)}
    summary: dict[str, Any] = {}
    for dataset in DATASETS:
        forces: dict[str, Any] = {}
        for force in ctx.registry.forces:
            row = recorded.get((force, dataset)) or {"status": "missing"}
            part = layout.part_file(dataset, night, force)
            status = row["status"]
            if status == "validated" and row.get("run_id") == run_id:
                published, quarantined = (layout.staged(run_id, k, dataset, night, force) for k in layout.STAGED_KINDS)
                # A retry of a publish that died after moving a file finds it already in place.
                if staging.exists(published) or not curated.exists(part):
                    curated.move_from(staging, published, part)
                if staging.exists(quarantined) or not quarantine.exists(part):
                    quarantine.move_from(staging, quarantined, part)
                quarantine.delete(layout.extract_error(dataset, night, force))
                status = "published"
                ctx.ledger.record(night, force, dataset, status=status, staged=None)
                ctx.ledger.event(
                    "published",
                    night=night,
                    force=force,
                    dataset=dataset,
                    run_id=run_id,
                    detail={"rows": row.get("rows_published")},
                )
            elif status == "quarantined":
                curated.delete(part)
                quarantine.delete(part)
                quarantine.write_json(
                    layout.extract_error(dataset, night, force),
                    {"error": row.get("error"), "files": row.get("files"), "run_id": run_id},
                )
            elif status in ("validated", "landed"):
                status = "failed"  # staged by another run, or processing never finished
                ctx.ledger.record(
                    night,
                    force,
                    dataset,
                    status=status,
                    error=row.get("error") or "processing did not finish in this run",
                )
            forces[force] = {
                k: row.get(k)
                for k in (
                    "rows_in",
                    "rows_published",
                    "rows_quarantined",
                    "sha256",
                    "received_at",
                    "error",
                    "warning",
                    "reasons",
                )
            }
            forces[force]["status"] = status
            if status == "published":
                forces[force]["file"] = part
        manifest = {
            "dataset": dataset,
            "night": night,
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "published_at": utcnow(),
            "forces": forces,
            "totals": {
                k: sum(int(v.get(k) or 0) for v in forces.values())
                for k in ("rows_in", "rows_published", "rows_quarantined")
            },
        }
        curated.write_json(layout.manifest(dataset, night), manifest)
        summary[dataset] = {f: v["status"] for f, v in forces.items()}
    staging.delete_dir(layout.run_key(run_id))
    ctx.ledger.event("night_published", night=night, run_id=run_id, detail=summary)
    render_night(ctx, night)  # the night's Data Docs page (xforce.quality.docs_site)
    return summary


def night_table(ctx: Context, night: str) -> list[dict[str, Any]]:
    """One row per force x dataset for people: received, published, quarantined, status."""
    rows = {(r["force"], r["dataset"]): r for r in ctx.ledger.extracts(night)}
    out = []
    for force in ctx.registry.forces:
        for dataset in DATASETS:
            r = rows.get((force, dataset), {})
            out.append(
                {
                    "force": force,
                    "dataset": dataset,
                    "received": r.get("rows_in") or 0,
                    "published": r.get("rows_published") or 0,
                    "quarantined": r.get("rows_quarantined") or 0,
                    "status": r.get("status", "missing"),
                    "error": r.get("error") or r.get("warning") or "",
                }
            )
    return out


def read_curated(curated_uri: str, dataset: str) -> pa.Table:
    """The published dataset, Hive-partitioned, as one table (for tests and small reads)."""
    zone = open_zone(curated_uri)
    return pads.dataset(
        zone.full(layout.dataset_dir(dataset)), filesystem=zone.fs, format="parquet", partitioning="hive"
    ).to_table()


def format_table(rows: list[dict[str, Any]]) -> str:
    """:func:`night_table` as fixed-width text (the end of ``publish_night``'s log and of ``xforce run``)."""
    cols = ("force", "dataset", "received", "published", "quarantined", "status")
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    for r in rows:
        line = "  ".join(
            str(r[c]).rjust(widths[c]) if isinstance(r[c], int) else str(r[c]).ljust(widths[c]) for c in cols
        )
        if r.get("error"):
            line += f"  {r['error'][:100]}"
        lines.append(line)
    return "\n".join(lines)
