"""Land: copy a night's files from landing to the immutable raw zone, with their SHA-256.

The first stage of the nightly exchange (the ``land_<dataset>`` tasks of ``dags/xforce_nightly.py``), plus the
plan it works from. Nothing here reads a file's content."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from xforce.errors import UnsafePathError
from xforce.exchange.lease import hold_night
from xforce.schemas import DATASETS
from xforce.store import layout
from xforce.store.ledger import utcnow

if TYPE_CHECKING:
    from xforce.context import Context
    from xforce.intake.contracts import Registry
    from xforce.store.zones import FileInfo


def scan_landing(ctx: Context, night: str, run_id: str) -> list[str]:
    """Folders in landing that name no known force: recorded in the ledger, never read."""
    unknown = [name for name in ctx.zones.landing.list_dirs("") if name not in ctx.registry.forces]
    for name in unknown:
        ctx.ledger.event("unknown_force_folder", night=night, detail={"folder": name}, run_id=run_id)
    return unknown


def nothing_delivered(ctx: Context, night: str) -> bool:
    """Whether no force's landing holds a file for the night in any dataset (listings only; a force
    delivering through its database may have delivered: not nothing)."""
    from xforce.intake import sql_source
    from xforce.store.connections import landing_for

    for force in ctx.registry.forces:
        landing, base = landing_for(ctx.settings, force)
        for dataset in DATASETS:
            if sql_source.source_for(ctx.settings.config_dir, ctx.settings.sql_dir, force, dataset):
                return False
            try:
                if landing.list_files(layout.delivery_dir(base, dataset, night)):
                    return False
            except UnsafePathError:
                return False  # something is there, if unusable: land_extract says what
    return True


def plan_night(ctx: Context, night: str, datasets: tuple[str, ...] = DATASETS) -> list[dict[str, str]]:
    """Every force x dataset to look for."""
    return [{"night": night, "force": f, "dataset": d} for f in ctx.registry.forces for d in datasets]


# ------------------------------------------------------------------------------------ land
def land_extract(
    ctx: Context, night: str, force: str, dataset: str, run_id: str, *, settle: bool = True
) -> dict[str, Any]:
    """Copy the night's files from landing to the immutable raw zone, with their SHA-256.

    An identical re-delivery adds nothing to raw. When landing is empty but an earlier run
    kept a raw copy of this night, that copy is used again (a re-run never loses a night).
    """
    from xforce.intake import sql_source
    from xforce.store.connections import landing_for

    ctx.registry.force(force)
    hold_night(ctx, night, run_id)
    raw = ctx.zones.raw
    landing, base = landing_for(ctx.settings, force)  # the shared landing, or the force's own (own Connection)
    folder = layout.raw_dir(force, dataset, night)
    previous = ctx.ledger.get(night, force, dataset)
    files: list[dict[str, Any]] = []
    problems: list[str] = []
    delivered: float | None = None  # when the delivery's last file was written in landing
    source = "landing"
    sql = sql_source.source_for(ctx.settings.config_dir, ctx.settings.sql_dir, force, dataset)
    try:
        listing = [] if sql else landing.list_files(layout.delivery_dir(base, dataset, night))
    except UnsafePathError as exc:
        listing, problems = [], [str(exc)]
    if sql:  # delivered through the force's database: pulled by the night's window into raw
        pulled = sql_source.pull(sql, ctx.registry, ctx.settings.sql_dir, night, raw, folder)
        files, source = ([pulled] if pulled else []), "sql"
    if not sql and not problems:  # a night folder holds files: a folder inside it is refused, never read
        try:
            problems += [
                f"{name}/: subfolder refused" for name in landing.list_dirs(layout.delivery_dir(base, dataset, night))
            ]
        except UnsafePathError as exc:
            problems.append(str(exc))
    for info in listing:
        name = info.path.rsplit("/", 1)[-1]
        if info.is_symlink:
            problems.append(f"{name}: symbolic link refused")
            continue
        if not info.regular:  # checked before anything opens it: a FIFO would block the read for ever
            problems.append(f"{name!r}: not a regular file (FIFO, socket or device) refused")
            continue
        if name.startswith("."):  # editor and upload temporaries: not part of the delivery, said so
            problems.append(f"{name!r}: hidden (dot) file refused")
            continue
        if not layout.SAFE_FILE_NAME.match(name):
            problems.append(f"{name!r}: unsafe file name refused")
            continue
        if settle and not settled(info, settle_seconds(ctx.registry)):  # may still be uploading: not refused
            ctx.ledger.event("not_yet_stable", night=night, force=force, dataset=dataset, detail=name, run_id=run_id)
            continue
        if info.size > ctx.registry.intake.max_file_bytes:
            problems.append(f"{name}: {info.size} bytes, over the intake limit ({ctx.registry.intake.max_file_bytes})")
            continue
        sha = landing.sha256(info.path, etag=info.etag)  # S3: only the version listed is read and copied
        raw_rel = layout.raw_file(force, dataset, night, sha, name)
        if not raw.exists(raw_rel):
            raw.copy_from(landing, info.path, raw_rel, etag=info.etag, metadata={"sha256": sha})
        entry = {"name": name, "sha256": sha, "bytes": info.size, "raw": raw_rel}
        files.append({**entry, "mtime": _when(info.mtime)} if info.mtime is not None else entry)
        if info.mtime is not None:
            delivered = max(delivered or 0.0, info.mtime)
    for p in problems:
        ctx.ledger.event("refused_file", night=night, force=force, dataset=dataset, detail=p, run_id=run_id)
    if not files and previous and previous.get("files"):
        files, source = list(previous["files"]), "raw"
    if not files:
        error = "; ".join(problems) if problems else None
        status = "quarantined" if problems else "missing"
        ctx.ledger.record(
            night,
            force,
            dataset,
            replace=True,
            status=status,
            run_id=run_id,
            error=error,
            rows_in=0,
            rows_published=0,
            rows_quarantined=0,
        )
        ctx.ledger.event(status, night=night, force=force, dataset=dataset, detail=error, run_id=run_id)
        ref: dict[str, Any] = {"night": night, "force": force, "dataset": dataset, "status": status, "files": []}
        return {**ref, "error": error} if error else ref
    digest = (
        files[0]["sha256"]
        if len(files) == 1
        else hashlib.sha256("".join(f["sha256"] for f in files).encode()).hexdigest()
    )
    identical = bool(previous and previous.get("sha256") == digest)
    ctx.ledger.record(
        night,
        force,
        dataset,
        replace=True,
        status="landed",
        run_id=run_id,
        files=files,
        sha256=digest,
        bytes=sum(int(f["bytes"]) for f in files),
        # received: when the force's delivery was complete in landing (its files' last write), else now
        received_at=(previous or {}).get("received_at") if identical else _when(delivered) or utcnow(),
        warning="; ".join(problems) or None,
    )
    ctx.ledger.event(
        "redelivered_identical" if identical else "landed",
        night=night,
        force=force,
        dataset=dataset,
        detail={"sha256": digest, "from": source},
        run_id=run_id,
    )
    if previous and previous.get("sha256") and not identical:  # a changed re-delivery: the old raw copy stays
        ctx.ledger.event(
            "superseded",
            night=night,
            force=force,
            dataset=dataset,
            run_id=run_id,
            detail={
                "old_sha256": previous["sha256"],
                "new_sha256": digest,
                "old_received_at": previous.get("received_at"),
                "old_raw": [f.get("raw") for f in previous.get("files") or []],
            },
        )
    landed: dict[str, Any] = {"night": night, "force": force, "dataset": dataset, "status": "landed", "files": files}
    return {**landed, "warning": "; ".join(problems)} if problems else landed


def _when(epoch: float | None) -> str | None:
    """A landing file's write time as the ledger's UTC timestamp, never later than now."""
    if epoch is None:
        return None
    return min(datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds"), utcnow())


def settle_seconds(registry: Registry) -> int:
    """``intake.settle_seconds`` of forces.yaml, unless ``XFORCE_SETTLE_SECONDS`` says otherwise."""
    return int(os.environ.get("XFORCE_SETTLE_SECONDS", "").strip() or registry.intake.settle_seconds)


def settled(info: FileInfo, settle_seconds: int) -> bool:
    """Whether a landing file was last written at least ``settle_seconds`` ago (a write time in the
    future, a clock's skew, counts as settled; so does a file whose write time is unknown)."""
    if info.mtime is None or settle_seconds <= 0:
        return True
    age = time.time() - info.mtime
    return not 0 <= age < settle_seconds
