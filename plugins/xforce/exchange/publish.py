"""Publish: put every extract a run staged into curated/quarantine, then write the manifests.

The last stage of the nightly exchange (``publish_night``), and the night's table for people.

A night's publish is journalled so that a crash at any instant leaves nothing a reader could
mistake for a whole night:

1. the plan (per dataset and force: publish this run's staged files, keep what is published,
   refuse, or mark missing or failed) is written to the ledger's journal (``begun``);
2. each dataset's manifest is replaced by one that says ``publishing`` (a reader that follows
   the manifest waits; one that lists files sees one file per partition, old or new);
3. the staged files are copied into place, one partition at a time, each replaced in one step;
   the staged copies stay until the commit;
4. the manifests are written last, with each file's row counts and SHA-256;
5. the journal is committed, the ledger records each extract's final state, staging is removed.

A publish that was begun and never committed is completed, from its journal and its staged
files, by the next run of the night or by ``xforce repair`` (:func:`repair_night`), before
anything else happens to the night.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as pads

from xforce.exchange.completeness import completeness_table, write_completeness
from xforce.exchange.lease import hold_night
from xforce.quality.config import load_config
from xforce.quality.docs_site import render_night
from xforce.schemas import DATASETS, SCHEMA_VERSION
from xforce.store import layout
from xforce.store.connections import open_zone
from xforce.store.ledger import utcnow

if TYPE_CHECKING:
    from xforce.context import Context

_MANIFEST_KEYS = (
    "rows_in",
    "rows_published",
    "rows_quarantined",
    "sha256",
    "received_at",
    "error",
    "warning",
    "reasons",
)


def publish_night(ctx: Context, night: str, run_id: str) -> dict[str, Any]:
    """Publish what this run validated, keep what an earlier run published where nothing better came.

    What to publish is what the ledger records as validated by this run (the durable record of
    the steps that finished); where it was staged follows from the run id
    (:func:`xforce.store.layout.staged`). Re-running a night replaces its partitions, never
    duplicates them. Returns ``{dataset: {force: status}}``.
    """
    hold_night(ctx, night, run_id)
    repair_night(ctx, night)
    plan = _plan(ctx, night, run_id)
    ctx.ledger.begin_publish(night, run_id, plan)
    summary = _apply(ctx, night, run_id, plan)
    _sweep_staging(ctx, run_id)
    ctx.ledger.release_lease(night, run_id)
    return summary


def repair_night(ctx: Context, night: str) -> list[str]:
    """Complete every publish of ``night`` that was begun and never committed; returns their run ids."""
    done = []
    for pending in ctx.ledger.unfinished_publishes(night):
        _apply(ctx, night, pending["run_id"], pending["plan"])
        ctx.ledger.event("publish_completed", night=night, run_id=pending["run_id"], detail={"after": "crash"})
        done.append(str(pending["run_id"]))
    return done


# ------------------------------------------------------------------------------------- plan
def _plan(ctx: Context, night: str, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Per dataset and force: the action and the manifest entry, decided before anything moves."""
    curated = ctx.zones.curated
    recorded = {(r["force"], r["dataset"]): r for r in ctx.ledger.extracts(night)}
    plan: dict[str, dict[str, dict[str, Any]]] = {}
    for dataset in DATASETS:
        previous = read_manifest(ctx, dataset, night)
        plan[dataset] = {}
        for force in ctx.registry.forces:
            row = recorded.get((force, dataset)) or {"status": "missing"}
            entry: dict[str, Any] = {k: row.get(k) for k in _MANIFEST_KEYS}
            before = (previous.get("forces") or {}).get(force) or {}
            status = row["status"]
            action = "none"
            if status == "validated" and row.get("run_id") == run_id:
                action, status = "publish", "published"
            elif (
                status == "quarantined"
                and before.get("status") == "published"
                and curated.exists(layout.part_file(dataset, night, force))
            ):
                # a re-delivery refused whole never takes away what was published
                action, status = "keep", "published"
                entry = {k: before.get(k) for k in _MANIFEST_KEYS}
                entry["redelivery_rejected"] = {"error": row.get("error"), "sha256": row.get("sha256")}
            elif status == "quarantined":
                action = "refuse"
                entry["files"] = row.get("files")
            elif status in ("validated", "landed"):
                action, status = "fail", "failed"  # staged by another run, or processing never finished
                entry["error"] = row.get("error") or "processing did not finish in this run"
            entry["status"] = status
            entry["action"] = action
            plan[dataset][force] = entry
    return plan


def read_manifest(ctx: Context, dataset: str, night: str) -> dict[str, Any]:
    """The night's manifest of ``dataset`` in curated (empty when there is none)."""
    rel = layout.manifest(dataset, night)
    if not ctx.zones.curated.exists(rel):
        return {}
    doc: dict[str, Any] = ctx.zones.curated.read_json(rel)
    return doc


# ------------------------------------------------------------------------------------ apply
def _apply(ctx: Context, night: str, run_id: str, plan: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Carry out a journalled plan; idempotent, so a crash anywhere is completed by doing it again."""
    curated, quarantine, staging = ctx.zones.curated, ctx.zones.quarantine, ctx.zones.staging
    for dataset in plan:  # 2. readers that follow the manifest wait
        curated.write_json(
            layout.manifest(dataset, night),
            {"dataset": dataset, "night": night, "state": "publishing", "run_id": run_id, "since": utcnow()},
        )
    for dataset, forces in plan.items():  # 3. every partition replaced in one step, staged copies kept
        for force, entry in forces.items():
            part, error = layout.part_file(dataset, night, force), layout.extract_error(dataset, night, force)
            if entry["action"] == "publish":
                published, quarantined = (layout.staged(run_id, k, dataset, night, force) for k in layout.STAGED_KINDS)
                if staging.exists(published):
                    curated.copy_from(staging, published, part)
                if staging.exists(quarantined):
                    quarantine.copy_from(staging, quarantined, part)
                quarantine.delete(error)
            elif entry["action"] == "refuse":
                curated.delete(part)
                quarantine.delete(part)
                quarantine.write_json(
                    error, {"error": entry.get("error"), "files": entry.get("files"), "run_id": run_id}
                )
    summary: dict[str, Any] = {}
    entries_by_dataset: dict[str, dict[str, Any]] = {}
    for dataset, forces in plan.items():  # 4. the manifests, last, matching the files they list
        entries: dict[str, Any] = {}
        for force, entry in forces.items():
            out = {k: v for k, v in entry.items() if k not in ("action", "files")}
            part = layout.part_file(dataset, night, force)
            if out["status"] == "published" and curated.exists(part):
                out["file"] = part
                out["file_sha256"] = curated.sha256(part)
            entries[force] = out
        curated.write_json(
            layout.manifest(dataset, night),
            {
                "dataset": dataset,
                "night": night,
                "state": "published",
                "schema_version": SCHEMA_VERSION,
                "run_id": run_id,
                "published_at": utcnow(),
                "forces": entries,
                "totals": {
                    k: sum(int(v.get(k) or 0) for v in entries.values())
                    for k in ("rows_in", "rows_published", "rows_quarantined")
                },
            },
        )
        summary[dataset] = {f: v["status"] for f, v in entries.items()}
        entries_by_dataset[dataset] = entries
    # the night's completeness beside the data, from the same entries (xforce.exchange.completeness)
    quality = load_config(ctx.settings.config_dir)
    write_completeness(curated, night, completeness_table(night, entries_by_dataset, ctx.registry, quality, run_id))
    ctx.ledger.commit_publish(night, run_id)  # 5. committed: record, then remove what was staged
    for dataset, forces in plan.items():
        for force, entry in forces.items():
            _record(ctx, night, run_id, dataset, force, entry)
    staging.delete_dir(layout.run_key(run_id))
    ctx.ledger.event("night_published", night=night, run_id=run_id, detail=summary)
    render_night(ctx, night)  # the night's Data Docs page (xforce.quality.docs_site)
    return summary


def _record(ctx: Context, night: str, run_id: str, dataset: str, force: str, entry: dict[str, Any]) -> None:
    action = entry["action"]
    if action == "publish":
        ctx.ledger.record(night, force, dataset, status="published", staged=None)
        detail = {"rows": entry.get("rows_published")}
        ctx.ledger.event("published", night=night, force=force, dataset=dataset, run_id=run_id, detail=detail)
    elif action == "keep":
        refused = entry["redelivery_rejected"]
        ctx.ledger.record(
            night,
            force,
            dataset,
            status="published",
            rows_in=entry.get("rows_in"),
            rows_published=entry.get("rows_published"),
            rows_quarantined=entry.get("rows_quarantined"),
            reasons=entry.get("reasons"),
            sha256=entry.get("sha256"),
            received_at=entry.get("received_at"),
            error=None,
            warning=f"re-delivery refused, the published extract kept: {refused.get('error')}",
        )
        ctx.ledger.event(
            "redelivery_rejected", night=night, force=force, dataset=dataset, run_id=run_id, detail=refused
        )
    elif action == "fail":
        ctx.ledger.record(night, force, dataset, status="failed", error=entry.get("error"))


def _sweep_staging(ctx: Context, run_id: str) -> None:
    """Remove what runs that died left in staging (runs holding a live lease, or with a publish to
    complete, keep theirs)."""
    from xforce.privacy.retention import running_runs

    keep = running_runs(ctx.ledger) | {layout.run_key(run_id)}
    for folder in ctx.zones.staging.list_dirs(""):
        if folder not in keep:
            ctx.zones.staging.delete_dir(folder)
            ctx.ledger.event("staging_swept", detail={"folder": folder}, run_id=run_id)


# -------------------------------------------------------------------------------------- read
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
