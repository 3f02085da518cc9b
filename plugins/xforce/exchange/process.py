"""Process: normalise, validate (Great Expectations), tokenise and split one landed extract into
staged files, and record what happened.

The second stage of the nightly exchange (the ``validate_<dataset>`` tasks). A batch is prepared (normalised,
ids seen, plates tokenised) while the previous one is validated on another thread."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

from xforce.errors import ExtractError
from xforce.exchange.lease import hold_night
from xforce.exchange.seen_ids import SeenIds
from xforce.exchange.writers import StagedWriters
from xforce.intake.framing import count_records
from xforce.intake.normalise import normalise
from xforce.intake.readers import ReadReport, prefetched, read_extract
from xforce.outcome import Outcome
from xforce.privacy.tokenmap import remember_tokens
from xforce.privacy.tokens import PlateTokens
from xforce.quality import gxworker
from xforce.quality.checks import ExtractTally, judge_extract
from xforce.quality.validate import Verdict, validate
from xforce.schemas import TOKEN_COLUMN
from xforce.store.incidents import IncidentIndex

if TYPE_CHECKING:
    from xforce.context import Context
    from xforce.intake.contracts import DatasetContract, Registry
    from xforce.store.zones import Zone


log = logging.getLogger(__name__)


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


def process_extract(ctx: Context, ref: dict[str, Any], run_id: str) -> Outcome:
    """Normalise, validate (GX), tokenise and split one landed extract into staged files.

    ``ref`` is what :func:`xforce.exchange.land.land_extract` returned. The outcome is judged by the
    extract-level checks (:func:`xforce.quality.checks.judge_extract`), then recorded in the ledger once.
    """
    night, force, dataset = ref["night"], ref["force"], ref["dataset"]
    if ref["status"] != "landed":
        return Outcome(night, force, dataset, ref["status"])
    contract = ctx.registry.contract(force, dataset)
    hold_night(ctx, night, run_id)
    gxworker.start()  # (already running, unless this is the process's first extract)
    raw, staging = ctx.zones.raw, ctx.zones.staging
    writers = StagedWriters(staging, run_id, dataset, night, force)
    state = _ExtractState(ctx, force, writers, *ctx.plate_key())  # the key its version was first used with
    if dataset == "seizures":
        state.incidents = IncidentIndex(staging, ctx.zones.curated, run_id, force, night)
    reasons = state.reasons
    warnings: list[str] = []
    errors: list[str] = []
    rows_in = 0
    accounting: list[str] = []  # files whose records were not all accounted for
    refused_whole: str | None = None  # an intake limit hit after records were read
    try:
        for number, f in enumerate(newest_first(ref["files"]), start=1):
            if number == 1:  # the task's fixed cost ends here (make bench: the deployment section)
                log.info("%s/%s %s: reading starts (file 1 of %d)", force, dataset, night, len(ref["files"]))
            report = state.quality.track(ReadReport(contract))
            state.file_seen = SeenIds() if len(ref["files"]) > 1 else None  # a correction beside the original
            state.plates = PlateTokens(state.key)  # a file's token map is filed under its raw copy
            pending: _Batch | None = None  # one batch in validation while the next is prepared
            refused = False
            try:
                try:
                    batches = read_extract(functools.partial(raw.open, f["raw"]), contract, ctx.registry, report)
                    for batch in prefetched(batches):
                        if not rows_in:  # the first batch parsed (make bench: the deployment section)
                            log.info("%s/%s %s: first records read", force, dataset, night)
                        rows_in += batch.table.num_rows + len(batch.rejects)
                        params = _params(ctx.registry, report.contract, night)
                        ready = _prepare_batch(state, batch.table, batch.rejects, report.contract, f, params)
                        if pending is not None:
                            _finish_batch(state, pending)
                        pending = ready
                except ExtractError as exc:  # refused whole: nothing of this file is a record of its own
                    errors.append(f"{f['name']}: {exc}")
                    refused = True
                    if report.records:
                        refused_whole = f"{f['name']}: {exc}"
                if pending is not None:
                    _finish_batch(state, pending)
            finally:
                _remember(state, f["raw"])  # every token written so far can be re-identified
                if state.file_seen is not None:
                    state.file_seen.close()
            if report.warning:
                warnings.append(f"{f['name']}: {report.warning}")
            if not refused:
                problem = _unaccounted(raw, f, report, ctx.registry)
                if problem is not None:
                    accounting.append(problem)
    finally:
        state.validator.shutdown(wait=True, cancel_futures=True)
        state.seen.close()
        writers.close()
    published, quarantined = writers.counts["published"], writers.counts["quarantine"]
    if rows_in != published + quarantined:  # the accounting invariant: nothing silently lost
        raise AssertionError(f"accounting broken: {rows_in} in, {published} published, {quarantined} quarantined")
    status = "quarantined" if errors and not rows_in else "validated"
    outcome = Outcome(
        night,
        force,
        dataset,
        status,
        rows_in=rows_in,
        rows_published=published,
        rows_quarantined=quarantined,
        reasons=dict(reasons),
        errors=errors,
        warnings=[*warnings, ref.get("warning") or ""],  # the land step's warning (refused files) last
        staged=dict(writers.paths) if status == "validated" else None,
    )
    if refused_whole or accounting:  # nothing of it may publish
        for rel in writers.paths.values():
            staging.delete(rel)
        if refused_whole:
            outcome.quarantine_whole("intake_limit", refused_whole)
        else:  # records the reader could not account for: failed, never "published with a warning"
            outcome.status, outcome.staged = "failed", None
            outcome.errors.insert(0, "; ".join(accounting))
    ctx.ledger.event(
        outcome.status,
        night=night,
        force=force,
        dataset=dataset,
        run_id=run_id,
        detail={
            "rows_in": rows_in,
            "published": published,
            "quarantined": quarantined,
            "reasons": dict(reasons),
            "errors": outcome.errors,
        },
    )
    judge_extract(ctx, run_id, state.quality, outcome, state.incidents)  # table-level suite, drift, Data Docs
    ctx.ledger.record_outcome(outcome, run_id)
    return outcome


def newest_first(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A delivery's files in the order they are read: the newest first (landing write time, then name).

    A delivery is the set of files in the night folder. When a record id appears in more than one
    of them, the copy in the newest file publishes and older copies are quarantined as ``corrected``;
    within one file the first copy publishes and later ones are ``duplicate_id``. A file whose write
    time was not recorded (a ledger from before it was) sorts by name alone."""
    return sorted(files, key=lambda f: (str(f.get("mtime") or ""), str(f["name"])), reverse=True)


def _unaccounted(raw: Zone, file: dict[str, Any], report: ReadReport, registry: Registry) -> str | None:
    """Why the records read from ``file`` are not exactly those it holds (an independent count), or None."""
    try:
        with raw.open(file["raw"]) as stream:
            held = count_records(stream, report.contract, registry.intake)
    except ExtractError as exc:
        return f"{file['name']}: {exc}"
    if held == report.records:
        return None
    return f"{file['name']}: the file holds {held} records, {report.records} were read (failed, not published)"


@dataclass
class _ExtractState:
    """What one extract's batches share: duplicate tracking, token cache, writers, counts."""

    ctx: Context
    force: str
    writers: StagedWriters
    key_version: str
    key: bytes
    seen: SeenIds = field(default_factory=SeenIds)  # ids of the whole delivery
    file_seen: SeenIds | None = None  # ids of the file being read, when the delivery has several
    #: GX runs here, one batch at a time, while the main thread prepares the next batch
    validator: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="xforce-gx")
    )
    plates: PlateTokens = field(init=False)
    incidents: IncidentIndex | None = None  # seizures: the force's incidents they may point at
    reasons: Counter[str] = field(default_factory=Counter)
    quality: ExtractTally = field(default_factory=ExtractTally)  # outcomes, columns, row ids (xforce.quality.checks)


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
    ids = table.column("source_id").combine_chunks()
    first_in_delivery = state.seen.first_occurrences(ids)
    if state.file_seen is None:  # one file: a re-sent id is a duplicate
        table = table.append_column("_first_occurrence", first_in_delivery)
    else:  # files newest first: an id a newer file of the delivery holds is corrected there
        first_in_file = state.file_seen.first_occurrences(ids)
        table = table.append_column("_first_occurrence", first_in_file)
        corrected = pc.and_(first_in_file, pc.invert(first_in_delivery))
        if pc.any(corrected).as_py():
            error = table.column("_error").combine_chunks()
            error = pc.if_else(pc.and_(corrected, pc.is_null(error)), pa.scalar("corrected"), error)
            table = table.set_column(table.column_names.index("_error"), "_error", error)
    if state.incidents is not None:
        table = table.append_column("_incident_known", state.incidents.known(table.column("incident_record_id")))
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
    """File the token->plate pairs tokenised so far in the restricted zone (xforce.privacy.tokenmap)."""
    plates, tokens = state.plates.take_new_pairs()
    if len(plates):
        remember_tokens(state.ctx.settings.restricted, state.key_version, plates, tokens, raw_ref=raw_ref)
