"""The nightly exchange as plain functions: land -> process (normalise, validate, split, stage) -> publish.

The DAG calls these; so do ``xforce ingest`` and the tests. Each takes small references and
returns small dicts (what goes through XCom); data stays in the zones.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import os
import re
import sys
import tempfile
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from xforce import gxworker
from xforce.contracts import DatasetContract, Registry, load_registry
from xforce.docs_site import render_night
from xforce.errors import ExtractError, UnsafePathError
from xforce.hashing import hash64, lookup_sorted, stable_order
from xforce.ledger import Ledger, utcnow
from xforce.normalise import normalise
from xforce.privacy import remember_tokens
from xforce.quality import ExtractTally, after_extract
from xforce.readers import ReadReport, prefetched, read_extract
from xforce.schemas import CANONICAL, DATASETS, ROW_UNIQUE, SCHEMA_VERSION, TOKEN_COLUMN, quarantine_schema
from xforce.settings import Settings, hmac_key
from xforce.storage import Zone, safe_relpath
from xforce.tokenise import PlateTokens
from xforce.validate import Verdict, validate

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


@dataclass
class Context:
    """Everything a step needs, built once per task from settings."""

    settings: Settings
    registry: Registry
    ledger: Ledger

    @classmethod
    def from_env(cls) -> Context:
        s = Settings.from_env()
        return cls(s, load_registry(s.config_dir), Ledger(s.ledger_url, s.sql_dir))

    def zone(self, name: str) -> Zone:
        return Zone(getattr(self.settings, name))


def partition(dataset: str, night: str, force: str) -> str:
    return f"dataset={dataset}/date={night}/force={force}"


def run_key(run_id: str) -> str:
    """A path-safe, stable folder name for a run id."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", run_id)[:60]
    return f"{slug}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------------------------ plan
def scan_landing(ctx: Context, night: str, run_id: str) -> list[str]:
    """Folders in landing that name no known force: recorded in the ledger, never read."""
    unknown = [name for name in ctx.zone("landing").list_dirs("") if name not in ctx.registry.forces]
    for name in unknown:
        ctx.ledger.event("unknown_force_folder", night=night, detail={"folder": name}, run_id=run_id)
    return unknown


def plan_night(ctx: Context, night: str, datasets: tuple[str, ...] = DATASETS) -> list[dict[str, str]]:
    """Every force x dataset to look for."""
    return [{"night": night, "force": f, "dataset": d} for f in ctx.registry.forces for d in datasets]


# ------------------------------------------------------------------------------------ land
def land_extract(ctx: Context, night: str, force: str, dataset: str, run_id: str) -> dict[str, Any]:
    """Copy the night's files from landing to the immutable raw zone, with their SHA-256.

    An identical re-delivery adds nothing to raw. When landing is empty but an earlier run
    kept a raw copy of this night, that copy is used again (a re-run never loses a night).
    """
    from xforce import sql_source
    from xforce.connections import landing_for

    ctx.registry.force(force)
    raw = ctx.zone("raw")
    landing, base = landing_for(ctx.settings, force)  # the shared landing, or the force's own (own Connection)
    folder = safe_relpath(force, dataset, night)
    previous = ctx.ledger.get(night, force, dataset)
    files: list[dict[str, Any]] = []
    problems: list[str] = []
    source = "landing"
    sql = sql_source.source_for(ctx.settings.config_dir, ctx.settings.sql_dir, force, dataset)
    try:
        listing = [] if sql else landing.list_files(safe_relpath(base, dataset, night))
    except UnsafePathError as exc:
        listing, problems = [], [str(exc)]
    if sql:  # delivered through the force's database: pulled by the night's window into raw
        pulled = sql_source.pull(sql, ctx.registry, ctx.settings.sql_dir, night, raw, folder)
        files, source = ([pulled] if pulled else []), "sql"
    for info in listing:
        name = info.path.rsplit("/", 1)[-1]
        if info.is_symlink:
            problems.append(f"{name}: symbolic link refused")
            continue
        if not _SAFE_NAME.match(name):
            if not name.startswith("."):  # dot files (editor/temp files) are ignored silently
                problems.append(f"{name!r}: unsafe file name refused")
            continue
        if info.size > ctx.registry.intake.max_file_bytes:
            problems.append(f"{name}: {info.size} bytes, over the intake limit ({ctx.registry.intake.max_file_bytes})")
            continue
        sha = landing.sha256(info.path, etag=info.etag)  # S3: only the version listed is read and copied
        raw_rel = safe_relpath(folder, sha, name)
        if not raw.exists(raw_rel):
            raw.copy_from(landing, info.path, raw_rel, etag=info.etag, metadata={"sha256": sha})
        files.append({"name": name, "sha256": sha, "bytes": info.size, "raw": raw_rel})
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
        return {"night": night, "force": force, "dataset": dataset, "status": status, "files": []}
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
        received_at=(previous or {}).get("received_at") if identical else utcnow(),
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
    return {"night": night, "force": force, "dataset": dataset, "status": "landed", "files": files}


# --------------------------------------------------------------------------------- process
def night_window(registry: Registry, contract: DatasetContract, night: str) -> tuple[datetime, datetime]:
    d = date.fromisoformat(night)
    tz = ZoneInfo(registry.timezone)
    tol = timedelta(hours=contract.night_tolerance_hours)
    if contract.time_precision == "month":
        start = datetime(d.year, d.month, 1, tzinfo=ZoneInfo("UTC"))
        end = datetime(d.year + d.month // 12, d.month % 12 + 1, 1, tzinfo=ZoneInfo("UTC"))
        return start, end - timedelta(microseconds=1)
    start = datetime.combine(d, time(0), tz)
    end = datetime.combine(d + timedelta(days=1), time(0), tz)
    return (start - tol).astimezone(ZoneInfo("UTC")), (end + tol).astimezone(ZoneInfo("UTC"))


def known_incidents(ctx: Context, force: str, night: str, run_id: str) -> set[str]:
    """Incident record ids a seizure may point at: published earlier, or staged this run."""
    ids: set[str] = set()
    curated, staging = ctx.zone("curated"), ctx.zone("staging")
    base = "dataset=incidents"
    for day in curated.list_dirs(base):
        if day <= f"date={night}":
            rel = f"{base}/{day}/force={force}/part-0.parquet"
            if curated.exists(rel):
                ids.update(curated.read_parquet(rel).column("record_id").to_pylist())
    staged = f"{run_key(run_id)}/published/{partition('incidents', night, force)}/part-0.parquet"
    if staging.exists(staged):
        ids.update(staging.read_parquet(staged).column("record_id").to_pylist())
    return ids


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


#: Batches handed to the writer thread and not yet written (bounds the memory it holds).
MAX_PENDING_WRITES = 1


class _Writers:
    """The staged published and quarantine Parquet files of one extract.

    Written by one background thread: Parquet encoding and compression run without the GIL, so
    they overlap the next batch's validation on the other core. ``close`` waits for every write
    and raises the first that failed.
    """

    def __init__(self, staging: Zone, key: str, dataset: str, night: str, force: str) -> None:
        self.staging, self.dataset = staging, dataset
        part = partition(dataset, night, force)
        self.paths = {
            "published": f"{key}/published/{part}/part-0.parquet",
            "quarantine": f"{key}/quarantine/{part}/part-0.parquet",
        }
        self.schemas = {"published": CANONICAL[dataset], "quarantine": quarantine_schema(dataset)}
        # no dictionary tried where values rarely repeat within a row group: ids, and plate tokens
        # (a batch of 128 Ki reads has some 70 k vehicles; the dictionary was dropped for plain anyway)
        plain = {*ROW_UNIQUE, *TOKEN_COLUMN.values()}
        self.writers = {
            k: staging.parquet_writer(
                p, self.schemas[k], use_dictionary=[f.name for f in self.schemas[k] if f.name not in plain]
            )
            for k, p in self.paths.items()
        }
        self.counts: Counter[str] = Counter()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xforce-writer")
        self._pending: deque[Future[None]] = deque()

    def write(self, kind: str, table: pa.Table) -> None:
        if table.num_rows:
            self.counts[kind] += table.num_rows
            self._pending.append(self._thread.submit(self._write, kind, table))
            while len(self._pending) > MAX_PENDING_WRITES:
                self._pending.popleft().result()

    def _write(self, kind: str, table: pa.Table) -> None:
        self.writers[kind].write_table(_conform(table, self.schemas[kind]))

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._thread.shutdown(wait=True)
            for w in self.writers.values():
                w.close()


@functools.lru_cache(maxsize=1)
def arrow_memory_pool() -> str:
    """Arrow allocates from jemalloc, unless ``ARROW_DEFAULT_MEMORY_POOL`` names a pool.

    It hands the memory of finished batches back sooner than Arrow's default (mimalloc): peak
    RSS of a 10 M-read ingest 772 MB instead of 888 MB, in the same time.
    """
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL") and "jemalloc" in pa.supported_memory_backends():
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    _malloc_hands_back()
    return pa.default_memory_pool().backend_name


def _malloc_hands_back() -> bool:
    """glibc's malloc (numpy's batch-sized arrays, Python) returns freed memory to the system at once.

    By default glibc raises its mmap threshold each time a large block is freed, after which
    batch-sized arrays come from the heap and stay there; a fixed 128 KiB threshold and trim
    threshold and one arena measured 0.68 GB instead of 0.72 GB peak for a 10 M-read ingest, in the
    same time. Not glibc (musl, macOS): left as it is (returns False).
    """
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or not name:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # <malloc.h>
    return all(
        libc.mallopt(opt, value) == 1
        for opt, value in ((m_mmap_threshold, 128 << 10), (m_trim_threshold, 128 << 10), (m_arena_max, 1))
    )


def process_extract(ctx: Context, ref: dict[str, Any], run_id: str) -> dict[str, Any]:
    """Normalise, validate (GX), tokenise and split one landed extract into staged files."""
    night, force, dataset = ref["night"], ref["force"], ref["dataset"]
    result = {"night": night, "force": force, "dataset": dataset, "status": ref["status"]}
    if ref["status"] != "landed":
        return result
    contract = ctx.registry.contract(force, dataset)
    arrow_memory_pool()
    gxworker.start()  # (already running, unless this is the process's first extract)
    raw, staging = ctx.zone("raw"), ctx.zone("staging")
    writers = _Writers(staging, run_key(run_id), dataset, night, force)
    state = _ExtractState(ctx, force, writers, *hmac_key())
    if dataset == "seizures":
        state.incidents = pa.array(sorted(known_incidents(ctx, force, night, run_id)), pa.string())
    reasons = state.reasons
    warnings: list[str] = []
    errors: list[str] = []
    rows_in = 0
    try:
        for f in ref["files"]:
            report = state.quality.track(ReadReport(contract))
            state.plates = PlateTokens(state.key)  # a file's token map is filed under its raw copy
            pending: _Batch | None = None  # one batch in validation while the next is prepared
            try:
                try:
                    batches = read_extract(functools.partial(raw.open, f["raw"]), contract, ctx.registry, report)
                    for batch in prefetched(batches):
                        rows_in += batch.table.num_rows + len(batch.rejects)
                        params = _params(ctx.registry, report.contract, night)
                        ready = _prepare_batch(state, batch.table, batch.rejects, report.contract, f, params)
                        if pending is not None:
                            _finish_batch(state, pending)
                        pending = ready
                except ExtractError as exc:  # the rows read before it still publish
                    errors.append(f"{f['name']}: {exc}")
                if pending is not None:
                    _finish_batch(state, pending)
            finally:
                _remember(state, f["raw"])  # every token written so far can be re-identified
            if report.warning:
                warnings.append(f"{f['name']}: {report.warning}")
    finally:
        state.validator.shutdown(wait=True, cancel_futures=True)
        state.seen.close()
        writers.close()
    published, quarantined = writers.counts["published"], writers.counts["quarantine"]
    if rows_in != published + quarantined:  # the accounting invariant: nothing silently lost
        raise AssertionError(f"accounting broken: {rows_in} in, {published} published, {quarantined} quarantined")
    status = "quarantined" if errors and not rows_in else "validated"
    ctx.ledger.record(
        night,
        force,
        dataset,
        status=status,
        rows_in=rows_in,
        rows_published=published,
        rows_quarantined=quarantined,
        reasons=dict(sorted(reasons.items())),
        error="; ".join(errors) or None,
        warning="; ".join(w for w in [*warnings, (ctx.ledger.get(night, force, dataset) or {}).get("warning")] if w)
        or None,
        staged=writers.paths if status == "validated" else None,
        run_id=run_id,
    )
    ctx.ledger.event(
        status,
        night=night,
        force=force,
        dataset=dataset,
        run_id=run_id,
        detail={
            "rows_in": rows_in,
            "published": published,
            "quarantined": quarantined,
            "reasons": dict(reasons),
            "errors": errors,
        },
    )
    result.update(status=status, rows_in=rows_in, rows_published=published, rows_quarantined=quarantined)
    return after_extract(ctx, run_id, state.quality, result)  # table-level suite, schema drift, results


def _params(registry: Registry, contract: DatasetContract, night: str) -> dict[str, Any]:
    """The suite's ``$PARAMETER`` values for a night (times as datetimes: ``gxworker.gx_params``)."""
    start, end = night_window(registry, contract, night)
    r = registry.region
    return {
        "night_start": start,
        "night_end": end,
        "lat_min": r.lat_min,
        "lat_max": r.lat_max,
        "lon_min": r.lon_min,
        "lon_max": r.lon_max,
    }


class SeenIds:
    """The ids an extract has used so far, in memory that does not grow with the extract.

    Each id is kept as a 64-bit hash (DuckDB hashes them straight from the Arrow buffers, no
    Python string per id), in 256 buckets by the hash's top byte. A bucket is a sorted file on
    local disk plus a small sorted array of recent hashes in memory (at most ``RECENT_MAX``),
    merged into the file when full: about 16 MB of memory and 8 bytes of disk a read, whatever
    the extract's size. A batch reads each bucket's file once (one bucket in memory at a time).

    A hash collision (about 1 in 10^5 for a 20 M-row extract) would quarantine one clean row as
    ``duplicate_id``: kept and explained, never lost.
    """

    BUCKETS = 256
    RECENT_MAX = 8192
    _EDGES = np.arange(1, BUCKETS, dtype=np.uint64) << np.uint64(56)

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="xforce-seen-")
        self.on_disk = np.zeros(self.BUCKETS, dtype=np.int64)
        self.recent = [np.empty(0, dtype=np.uint64)] * self.BUCKETS

    def __len__(self) -> int:
        return int(self.on_disk.sum()) + sum(len(a) for a in self.recent)

    def close(self) -> None:
        """Delete the bucket files."""
        self._dir.cleanup()

    def _file(self, bucket: int) -> str:
        return os.path.join(self._dir.name, f"{bucket:03d}.u64")

    def _stored(self, bucket: int) -> np.ndarray:
        if not self.on_disk[bucket]:
            return np.empty(0, dtype=np.uint64)
        return np.fromfile(self._file(bucket), dtype=np.uint64)

    def first_occurrences(self, ids: pa.Array) -> pa.Array:
        """True for the first time an id is seen in this extract (nulls are never duplicates)."""
        valid = ids.is_valid().to_numpy(zero_copy_only=False)
        out = np.ones(len(ids), dtype=bool)
        if not valid.any():
            return pa.array(out)
        h = hash64(ids.drop_null())
        order = stable_order(h)  # equal hashes keep row order: the first is the earliest
        hs = h[order]
        new = np.ones(len(hs), dtype=bool)
        new[1:] = hs[1:] != hs[:-1]  # first in this batch
        bounds = [0, *np.searchsorted(hs, self._EDGES).tolist(), len(hs)]
        for b in range(self.BUCKETS):
            lo, hi = bounds[b], bounds[b + 1]
            if lo == hi:
                continue
            q = hs[lo:hi]
            stored = self._stored(b)
            fresh = new[lo:hi] & (lookup_sorted(q, stored) < 0) & (lookup_sorted(q, self.recent[b]) < 0)
            new[lo:hi] = fresh
            if fresh.any():
                recent = np.sort(np.concatenate([self.recent[b], q[fresh]]), kind="stable")
                if len(recent) > self.RECENT_MAX:
                    np.sort(np.concatenate([stored, recent]), kind="stable").tofile(self._file(b))
                    self.on_disk[b] += len(recent)
                    recent = recent[:0]
                self.recent[b] = recent
        keep = np.empty(len(hs), dtype=bool)
        keep[order] = new
        out[np.flatnonzero(valid)] = keep
        return pa.array(out)


@dataclass
class _ExtractState:
    """What one extract's batches share: duplicate tracking, token cache, writers, counts."""

    ctx: Context
    force: str
    writers: _Writers
    key_version: str
    key: bytes
    seen: SeenIds = field(default_factory=SeenIds)
    #: GX runs here, one batch at a time, while the main thread prepares the next batch
    validator: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="xforce-gx")
    )
    plates: PlateTokens = field(init=False)
    incidents: pa.Array | None = None
    reasons: Counter[str] = field(default_factory=Counter)
    quality: ExtractTally = field(default_factory=ExtractTally)  # outcomes, columns, row ids (xforce.quality)


@dataclass
class _Batch:
    """A batch between its two halves: normalised, its ids seen and its plates tokenised, its
    Great Expectations validation running on the validator thread."""

    source: pa.Table
    rejects: list[Any]
    file: dict[str, Any]
    table: pa.Table | None = None  # normalised, with ``_first_occurrence`` (and the token columns)
    good: pa.Table | None = None  # the rows that parsed: what GX judges
    bad_early: pa.Table | None = None  # the rows that did not parse (``_error``)
    verdict: Future[Verdict] | None = None


def _prepare_batch(
    state: _ExtractState,
    source: pa.Table,
    rejects: list[Any],
    contract: DatasetContract,
    file: dict[str, Any],
    params: dict[str, Any],
) -> _Batch:
    """The first half of a batch: everything that carries state from batch to batch (ids seen,
    plate tokens) runs here in order; the GX validation is handed to ``state.validator``, so
    it runs while the next batch is read and normalised (``_finish_batch`` takes its verdict)."""
    dataset = contract.dataset
    if source.num_rows == 0:  # malformed rows only
        return _Batch(source, rejects, file)
    table = normalise(source, contract, state.force, file["name"], file["sha256"][:16])
    table = table.append_column(
        "_first_occurrence", state.seen.first_occurrences(table.column("source_id").combine_chunks())
    )
    if state.incidents is not None:
        table = table.append_column(
            "_incident_known", pc.is_in(table.column("incident_record_id"), value_set=state.incidents)
        )
    if "plate" in table.column_names:  # tokenised once for the batch, before the split
        table = _pseudonymise(state, dataset, file["raw"], table)
    parse_failed = pc.is_valid(table.column("_error"))
    if table.column("_error").null_count == table.num_rows:  # nothing failed to parse: no copies
        bad_early, good = table.slice(0, 0), table
    else:
        bad_early, good = table.filter(parse_failed), table.filter(pc.invert(parse_failed))
    verdict = state.validator.submit(
        validate, good.drop_columns(["_error"]), dataset, contract, params, state.ctx.settings.expectations_dir
    )
    return _Batch(source, rejects, file, table, good, bad_early, verdict)


def _finish_batch(state: _ExtractState, batch: _Batch) -> None:
    """The second half: the verdict splits the batch into published and quarantined rows."""
    writers, reasons, force = state.writers, state.reasons, state.force
    rejects = batch.rejects
    if rejects:
        rej = pa.table(
            {
                "source_record": pa.array([r.record for r in rejects], pa.int64()),
                "reason": pa.array([r.reason for r in rejects], pa.string()),
                "detail": pa.array([r.detail for r in rejects], pa.string()),
            }
        )
        rej = rej.append_column("force_code", pa.array([force] * len(rejects), pa.string()))
        rej = rej.append_column("source_file", pa.array([batch.file["name"]] * len(rejects), pa.string()))
        writers.write("quarantine", rej)
        reasons.update(r.reason for r in rejects)
    if batch.verdict is None or batch.good is None or batch.bad_early is None:
        return
    verdict = batch.verdict.result()
    good, bad_early = batch.good, batch.bad_early
    state.quality.add_batch(batch.source, batch.table, verdict)
    failed_np = verdict.failed
    failed = pa.array(failed_np)
    quarantine = pa.concat_tables(
        [
            bad_early.append_column("reason", bad_early.column("_error")).append_column(
                "detail", pa.nulls(bad_early.num_rows, pa.string())
            ),
            good.filter(failed)
            .append_column("reason", pa.array(verdict.reasons[failed_np], pa.string()))
            .append_column("detail", pa.array(verdict.details[failed_np], pa.string())),
        ]
    )
    published = good.filter(pc.invert(failed))
    if "plate" in published.column_names:  # the clear plate went to GX, never further
        published, quarantine = published.drop_columns(["plate"]), quarantine.drop_columns(["plate"])
    writers.write("published", published)
    writers.write("quarantine", quarantine)
    for item in pc.value_counts(quarantine.column("reason")).to_pylist():
        reasons[item["values"]] += item["counts"]


#: New plates after which their token map is written out (bounds the map writer's memory).
MAP_FLUSH_PLATES = 200_000


def _pseudonymise(state: _ExtractState, dataset: str, raw_ref: str, table: pa.Table) -> pa.Table:
    """``table`` with the token of its ``plate`` (and the key version) beside it. The clear plate
    stays for validation and is dropped before anything is written (``_finish_batch``); it leaves
    this process only to the GX worker (a batch's distinct plates, over a pipe, never stored) and
    into the restricted token map (``_remember``)."""
    tokens = state.plates.tokenise(table.column("plate"))
    if state.plates.pending >= MAP_FLUSH_PLATES or state.plates.full:  # bounded memory
        _remember(state, raw_ref)
    versions = pc.if_else(pc.is_valid(tokens), pa.scalar(state.key_version), pa.scalar(None, pa.string()))
    return table.append_column(TOKEN_COLUMN[dataset], tokens).append_column("plate_key_version", versions)


def _remember(state: _ExtractState, raw_ref: str) -> None:
    """File the token->plate pairs tokenised so far in the restricted zone (xforce.privacy)."""
    plates, tokens = state.plates.take_new_pairs()
    if len(plates):
        remember_tokens(state.ctx.settings.restricted, state.key_version, plates, tokens, raw_ref=raw_ref)


# ---------------------------------------------------------------------------------- publish
def publish_night(ctx: Context, night: str, run_id: str) -> dict[str, Any]:
    """Move every extract staged by this run into curated/quarantine, then write the manifests.

    Each partition is one Parquet file replaced in a single step, so a reader sees the old
    night or the new one, never half of it; re-running a night replaces, never duplicates.
    """
    curated, quarantine, staging = ctx.zone("curated"), ctx.zone("quarantine"), ctx.zone("staging")
    summary: dict[str, Any] = {}
    for dataset in DATASETS:
        forces: dict[str, Any] = {}
        for force in ctx.registry.forces:
            row = ctx.ledger.get(night, force, dataset) or {"status": "missing"}
            part = f"{partition(dataset, night, force)}/part-0.parquet"
            status = row["status"]
            if status == "validated" and row.get("run_id") == run_id and row.get("staged"):
                staged = row["staged"]
                # A retry of a publish that died after moving a file finds it already in place.
                if staging.exists(staged["published"]) or not curated.exists(part):
                    curated.move_from(staging, staged["published"], part)
                if staging.exists(staged["quarantine"]) or not quarantine.exists(part):
                    quarantine.move_from(staging, staged["quarantine"], part)
                quarantine.delete(f"{partition(dataset, night, force)}/_extract_error.json")
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
                    f"{partition(dataset, night, force)}/_extract_error.json",
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
        curated.write_json(f"dataset={dataset}/date={night}/_manifest.json", manifest)
        summary[dataset] = {f: v["status"] for f, v in forces.items()}
    staging.delete_dir(run_key(run_id))
    ctx.ledger.event("night_published", night=night, run_id=run_id, detail=summary)
    render_night(ctx, night)  # the night's Data Docs page (xforce.docs_site)
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
    zone = Zone(curated_uri)
    return pads.dataset(
        zone.full(f"dataset={dataset}"), filesystem=zone.fs, format="parquet", partitioning="hive"
    ).to_table()
