"""Format readers: a force's file in, batches of source fields out.

Every reader yields :class:`SourceBatch` objects whose ``table`` has one *string* column per
canonical input field of the contract (``source_id``, ``timestamp``, ``lat`` ...), plus
``_record`` (1-based record number in the file, header excluded) and ``_error`` (null, or the
reason the row cannot be used). Records the reader could not split into fields at all come back
as ``rejects``. Nothing is dropped: every record of the file is either a table row or a reject.
"""

from __future__ import annotations

import json
import queue
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from xforce.errors import ExtractError
from xforce.intake.framing import MARK, CsvFramer, Truncated, gunzip_chunks, header_line
from xforce.redaction import describe_error, describe_names

if TYPE_CHECKING:
    from xforce.intake.contracts import DatasetContract, IntakeLimits, Registry

#: Records a batch holds (what the pipeline validates, tokenises and writes at a time).
BATCH_ROWS = 128 * 1024
KEY_SAMPLE = 1000  # JSON Lines records whose key paths are collected (ReadReport.columns)
#: Arrow's streaming CSV reader reads about sixteen blocks ahead: small blocks keep that small
#: (2 MiB blocks: ~32 MB read ahead; 48 MiB blocks held ~770 MB), and ``_coalesce`` joins the
#: blocks into batches of ``BATCH_ROWS``.
CSV_BLOCK_BYTES = 2 << 20
#: A UTF-8 byte-order mark: taken off the header line whatever the contract's encoding.
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass
class Reject:
    record: int
    reason: str
    detail: str


@dataclass
class SourceBatch:
    table: pa.Table
    rejects: list[Reject] = field(default_factory=list)


@dataclass
class ReadReport:
    """What a reader noticed about the file as a whole (filled in as it reads)."""

    contract: DatasetContract
    records: int = 0
    warning: str | None = None
    #: the file's own columns: its CSV header, or the key paths of its first JSON Lines records
    #: (``KEY_SAMPLE`` of them); compared with the contract for schema drift (xforce.quality.checks)
    columns: list[str] | None = None
    #: values that read as multi-byte UTF-8 in a file whose contract says a single-byte encoding
    #: (Windows-1252): per source column, counted (never the values); named in ``warning`` at the end
    utf8_in_legacy: dict[str, int] = field(default_factory=dict)

    def add_warning(self, text: str) -> None:
        """``text`` after whatever the report already warns of."""
        self.warning = text if not self.warning else f"{self.warning}; {text}"


Opener = Callable[[], IO[bytes]]


def detect_contract(head: bytes, contract: DatasetContract, registry: Registry) -> DatasetContract:
    """The force's own contract, or the police.uk layout when the file starts with its header."""
    if contract.dataset != "incidents":
        return contract
    pu = registry.police_uk()
    first = head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].rstrip(b"\r")
    if pu.header and first == ",".join(pu.header).encode():
        return pu
    return contract


def read_extract(
    opener: Opener, contract: DatasetContract, registry: Registry, report: ReadReport | None = None
) -> Iterator[SourceBatch]:
    """Read one raw file with its contract (switching to police.uk layout by header)."""
    with opener() as probe:
        head = bytes(probe.read(64 * 1024))
    if not head:
        raise ExtractError("empty file: no header and no records")
    contract = detect_contract(head, contract, registry)
    head = _maybe_gunzip_head(head, contract)
    rep = report if report is not None else ReadReport(contract)
    rep.contract = contract
    if contract.format == "csv":
        batches = _read_csv(opener, contract, rep, header_line(head), registry.intake)
    elif contract.format == "jsonl":
        batches = _read_jsonl(opener, contract, rep, registry.intake)
    else:  # pragma: no cover - guarded by the contract loader's tests
        raise ExtractError(f"unsupported format {contract.format!r}")
    for batch in _coalesce(batches, BATCH_ROWS):
        yield SourceBatch(check_fields(batch.table, registry.intake), batch.rejects)


def prefetched(batches: Iterator[SourceBatch], depth: int = 1) -> Iterator[SourceBatch]:
    """``batches``, read ``depth`` ahead by a background thread.

    Arrow parses CSV without the GIL, so the next batch is read while this one is validated on
    the other core. An exception of the reader reaches the caller where it happened, after the
    batches before it; a caller that stops early stops the thread and closes the reader.
    """
    items: queue.Queue[tuple[SourceBatch | None, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[SourceBatch | None, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for batch in batches:
                if not put((batch, None)):
                    return
        except BaseException as exc:  # handed to the caller's thread, raised there
            put((None, exc))
            return
        put((None, None))  # the end

    thread = threading.Thread(target=run, name="xforce-reader", daemon=True)
    thread.start()
    try:
        while True:
            batch, exc = items.get()
            if exc is not None:
                raise exc
            if batch is None:
                return
            yield batch
    finally:
        stop.set()
        thread.join()
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def _coalesce(batches: Iterator[SourceBatch], rows: int) -> Iterator[SourceBatch]:
    """Join consecutive small batches (zero-copy) until they hold ``rows`` records."""
    tables: list[pa.Table] = []
    rejects: list[Reject] = []
    held = 0
    for batch in batches:
        tables.append(batch.table)
        rejects.extend(batch.rejects)
        held += batch.table.num_rows + len(batch.rejects)
        if held >= rows:
            yield SourceBatch(pa.concat_tables(tables).combine_chunks(), rejects)
            tables, rejects, held = [], [], 0
    if tables:
        yield SourceBatch(pa.concat_tables(tables).combine_chunks(), rejects)


def check_fields(table: pa.Table, limits: IntakeLimits) -> pa.Table:
    """Rows with a NUL byte or an oversized field get an ``_error`` (first problem wins)."""
    error = table.column("_error").combine_chunks()
    for name in table.column_names:
        if name.startswith("_"):
            continue
        col = table.column(name).combine_chunks()
        for reason, mask in (
            ("nul_byte", pc.match_substring(col, "\x00")),
            ("oversized_field", _longer_than(col, limits.max_field_chars)),
        ):
            mask = pc.fill_null(mask, False)
            if pc.any(mask).as_py():
                error = pc.if_else(pc.and_(mask, pc.is_null(error)), pa.scalar(reason), error)
    return table.set_column(table.column_names.index("_error"), "_error", error)


def _maybe_gunzip_head(head: bytes, contract: DatasetContract) -> bytes:
    if contract.compression != "gzip" or not head:
        return head
    if head[:2] != b"\x1f\x8b":
        raise ExtractError("not a gzip file (bad magic number) although the contract says gzip")
    try:
        return zlib.decompressobj(wbits=31).decompress(head, 64 * 1024)
    except zlib.error as exc:
        raise ExtractError(f"corrupt gzip stream: {exc}") from exc


# --------------------------------------------------------------------------- decoding helpers
def _blank(col: pa.Array) -> pa.Array:
    """Empty or only white space (checked in place: no trimmed copy of the column)."""
    return pc.or_(pc.equal(pc.binary_length(col), 0), pc.utf8_is_space(col))


def _longer_than(col: pa.Array, chars: int) -> pa.Array:
    """More than ``chars`` characters. A character is at least a byte, so the byte lengths (read
    from the offsets alone) clear a column before any character is counted."""
    if (pc.max(pc.binary_length(col)).as_py() or 0) <= chars:
        return pa.repeat(pa.scalar(False), len(col))
    return pc.greater(pc.utf8_length(col), chars)


def decode_column(arr: pa.Array, encoding: str) -> tuple[pa.Array, np.ndarray | None]:
    """Binary column -> string column; returns the bad-row mask (or None when all decoded)."""
    decoded = decode_text(arr, encoding)
    return decoded.values, decoded.bad


@dataclass
class Decoded:
    """A decoded column: its text, the rows that would not decode (or None), and how many values
    of a single-byte encoding are also valid multi-byte UTF-8 (likely mojibake in the making)."""

    values: pa.Array
    bad: np.ndarray | None = None
    utf8_like: int = 0


_AS_BYTES = pc.CastOptions(pa.string(), allow_invalid_utf8=True)


def is_utf8_encoding(encoding: str) -> bool:
    return encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig")


def decode_text(arr: pa.Array, encoding: str) -> Decoded:
    """Binary column -> :class:`Decoded`. ASCII is the same in every encoding the contracts use, so
    only the non-ASCII values are decoded one by one (with ``encoding``)."""
    utf8 = is_utf8_encoding(encoding)
    if utf8:
        try:
            return Decoded(arr.cast(pa.string()))
        except pa.ArrowInvalid:
            pass
    as_text = pc.cast(arr, options=_AS_BYTES)  # the bytes as they are: only ASCII rows are kept
    other = pc.invert(pc.fill_null(pc.string_is_ascii(as_text), True))
    if not pc.any(other).as_py():
        return Decoded(as_text)
    values: list[str | None] = []
    bad: list[bool] = []
    utf8_like = 0
    for raw in arr.filter(other).to_pylist():
        if not utf8:
            try:
                raw.decode("utf-8")
                utf8_like += 1  # non-ASCII and valid UTF-8: rarely what a Windows-1252 text is
            except UnicodeDecodeError:
                pass
        try:
            values.append(raw.decode(encoding))
            bad.append(False)
        except UnicodeDecodeError:
            values.append(None)
            bad.append(True)
    text = pc.replace_with_mask(as_text, other, pa.array(values, pa.string()))
    mask: np.ndarray | None = None
    if any(bad):
        mask = np.zeros(len(arr), dtype=bool)
        mask[np.flatnonzero(other.to_numpy(zero_copy_only=False))[np.asarray(bad)]] = True
    return Decoded(text, mask, utf8_like)


def _error_column(n: int, bad: np.ndarray | None, reason: str) -> pa.Array:
    if bad is None:
        return pa.nulls(n, pa.string())
    return pa.array([reason if b else None for b in bad.tolist()], pa.string())


# --------------------------------------------------------------------------------------- CSV
def _read_csv(
    opener: Opener, contract: DatasetContract, report: ReadReport, header_line: bytes, limits: IntakeLimits
) -> Iterator[SourceBatch]:
    bom = header_line.startswith(UTF8_BOM) and not is_utf8_encoding(contract.encoding)
    names = _parse_header(header_line.removeprefix(UTF8_BOM), contract)
    report.columns = names
    with opener() as f:
        chunks = gunzip_chunks(f, contract.compression == "gzip", limits)
        framer = CsvFramer(chunks, contract.delimiter, len(names), limits.max_record_bytes)
        wanted = {canon: src for canon, src in contract.fields.items() if src in names}
        missing = [
            f"{canon} ({src!r})"
            for canon, src in contract.fields.items()
            if src not in names and canon not in contract.optional
        ]
        if missing:
            raise ExtractError(
                f"wrong header: missing required column(s) {', '.join(missing)}; "
                # what was found is described, never echoed: a header-less file's "header" is a record (plates)
                f"got {describe_names(names, set(contract.fields.values()) | set(contract.header or ()))}"
            )
        pending: list[Reject] = []

        def on_invalid(row: Any) -> str:
            text = row.text or ""
            if text.startswith(MARK) and text[len(MARK) :].isdigit():  # a line the framer took out
                record = int(text[len(MARK) :])
                reason, detail = framer.problems.pop(record)
                pending.append(Reject(record, reason, detail))
                return "skip"
            line = int(row.number) if row.number is not None else -1
            pending.append(
                Reject(
                    line - 1, "unparseable", f"{row.actual_columns} fields where the header has {row.expected_columns}"
                )
            )
            return "skip"

        try:
            block = max(CSV_BLOCK_BYTES, 2 * limits.max_record_bytes + 1024)
            reader = _open_csv(framer, names, wanted, contract, on_invalid, block)
        except (pa.ArrowInvalid, OSError) as exc:  # the first block cannot be parsed at all
            raise ExtractError(f"unreadable CSV: {describe_error(exc)}") from None  # its text holds rows
        cursor = 1
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError, EOFError) as exc:
                report.warning = f"file unreadable after record {cursor - 1}: {describe_error(exc)}"
                break
            rejects, pending[:] = list(pending), []
            n = batch.num_rows
            skip = {r.record for r in rejects}
            candidates = np.arange(cursor, cursor + n + len(skip), dtype=np.int64)
            if skip:
                candidates = candidates[~np.isin(candidates, np.fromiter(skip, dtype=np.int64))]
            records = candidates[:n]
            cursor = int(candidates[-1]) + 1 if len(candidates) else cursor
            cols: dict[str, pa.Array] = {}
            bad_any: np.ndarray | None = None
            for canon, src in wanted.items():
                decoded = decode_text(batch.column(src), contract.encoding)
                col, bad = decoded.values, decoded.bad
                if decoded.utf8_like:
                    report.utf8_in_legacy[src] = report.utf8_in_legacy.get(src, 0) + decoded.utf8_like
                col = pc.if_else(_blank(col), pa.scalar(None, pa.string()), col)
                cols[canon] = col
                if bad is not None:
                    bad_any = bad if bad_any is None else (bad_any | bad)
            for canon in contract.fields:
                cols.setdefault(canon, pa.nulls(n, pa.string()))
            cols["_record"] = pa.array(records)
            cols["_error"] = _error_column(n, bad_any, "bad_encoding")
            report.records += n + len(rejects)
            yield SourceBatch(pa.table(cols), rejects)
        if pending:
            report.records += len(pending)
            yield SourceBatch(_empty(contract), list(pending))
        if framer.truncated and not report.warning:
            report.warning = f"{framer.truncated}; records after {framer.record} could not be read"
        if bom:
            report.add_warning(f"a UTF-8 byte-order mark opens this {contract.encoding} file: ignored")
        if report.utf8_in_legacy:
            counts = ", ".join(f"{src!r} {n}" for src, n in report.utf8_in_legacy.items())
            report.add_warning(
                f"values that read as UTF-8 in a {contract.encoding} file, published as the contract decodes "
                f"them (mojibake if the force now sends UTF-8): {counts}"
            )


def _open_csv(
    stream: Any, names: list[str], wanted: dict[str, str], contract: DatasetContract, on_invalid: Any, block_size: int
) -> Any:
    return pacsv.open_csv(
        stream,
        # a block holds at least two whole records of the longest the intake takes
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False, block_size=block_size),
        parse_options=pacsv.ParseOptions(
            delimiter=contract.delimiter, invalid_row_handler=on_invalid, newlines_in_values=False
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={n: pa.binary() for n in names},
            include_columns=sorted(set(wanted.values())),
            strings_can_be_null=False,
        ),
    )


def _parse_header(line: bytes, contract: DatasetContract) -> list[str]:
    if not line.strip():
        raise ExtractError("empty file: no header line")
    try:
        text = line.decode("utf-8-sig" if contract.encoding.lower().startswith("utf") else contract.encoding)
    except UnicodeDecodeError as exc:
        raise ExtractError(f"header is not valid {contract.encoding}: byte offset {exc.start}: {exc.reason}") from exc
    return [c.strip().strip('"') for c in text.rstrip("\r\n").split(contract.delimiter)]


def _empty(contract: DatasetContract) -> pa.Table:
    cols: dict[str, pa.Array] = {c: pa.array([], pa.string()) for c in contract.fields}
    cols["_record"] = pa.array([], pa.int64())
    cols["_error"] = pa.array([], pa.string())
    return pa.table(cols)


# ------------------------------------------------------------------------------- JSON Lines
OVERSIZED = b"\x00oversized\x00"


class _LineReader:
    """Lines (without their ``\\n``) from an iterator of chunks, a chunk's worth at a time; a line
    longer than ``max_line`` bytes, its ``\\n`` included, is skipped and reported as the marker
    :data:`OVERSIZED` (one record). What is held past the last ``\\n`` is ``buf[pos:]``."""

    def __init__(self, chunks: Iterator[bytes], max_line: int = 1 << 20) -> None:
        self.chunks, self.max_line = chunks, max_line
        self.buf, self.pos, self.eof = b"", 0, False
        self.skipping = False

    def take(self) -> list[bytes]:
        """The next whole lines (at least one), or ``[]`` at the end of the stream."""
        while True:
            end = self.buf.rfind(b"\n", self.pos)
            if end >= 0:
                lines = self.buf[self.pos : end].split(b"\n")
                self.pos = end + 1
                if self.skipping:  # the end of a line whose start was dropped
                    self.skipping = False
                    lines[0] = OVERSIZED
                if max(map(len, lines)) >= self.max_line:  # len + the "\n" > max_line
                    lines = [OVERSIZED if len(line) >= self.max_line else line for line in lines]
                return lines
            if len(self.buf) - self.pos > self.max_line:  # drop what we hold; remember to skip the rest
                self.buf, self.pos, self.skipping = b"", 0, True
            if self.eof:
                line, self.buf, self.pos = self.buf[self.pos :], b"", 0
                if self.skipping:
                    self.skipping = False
                    return [OVERSIZED]
                return [OVERSIZED if len(line) > self.max_line else line] if line else []
            data = next(self.chunks, b"")
            self.eof = not data
            self.buf, self.pos = self.buf[self.pos :] + data, 0

    def lines(self) -> Iterator[bytes]:
        while lines := self.take():
            yield from lines


def _key_paths(obj: dict[str, Any], seen: list[str] | None) -> list[str]:
    """``seen`` plus the dotted paths of ``obj``'s leaves (an empty object or a list is a leaf)."""
    out = dict.fromkeys(seen or ())
    stack: list[tuple[str, dict[str, Any]]] = [("", obj)]
    while stack:
        prefix, o = stack.pop()
        for k, v in o.items():
            if not _is_utf8(k):  # a key with a lone surrogate: named by its escape, never passed on raw
                k = k.encode("utf-8", "backslashreplace").decode("ascii", "replace")
            if isinstance(v, dict) and v:
                stack.append((f"{prefix}{k}.", v))
            else:
                out[f"{prefix}{k}"] = None
    return list(out)


def _lookup(obj: Any, path: list[str]) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _is_utf8(text: str) -> bool:
    """False for text holding a lone surrogate (``"\\ud800"`` in JSON), which no UTF-8 column can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    text = str(value).strip()
    return text or None


def parse_record(line: bytes, paths: list[list[str]]) -> tuple[dict[str, Any], list[str | None]] | Reject:
    """One JSON Lines record: its object and the text of each field path, or why it has none
    (``Reject.record`` is left 0 for the caller). The reference for :func:`_fast_record`."""
    try:
        obj = json.loads(line)
    except UnicodeDecodeError:
        return Reject(0, "bad_encoding", "record is not valid UTF-8")
    except RecursionError:
        return Reject(0, "unparseable", "invalid JSON: nested too deep")
    except ValueError as exc:
        return Reject(0, "unparseable", f"invalid JSON: {exc.__class__.__name__}")
    if not isinstance(obj, dict):
        return Reject(0, "unparseable", "record is not a JSON object")
    try:
        values = [_as_text(_lookup(obj, path)) for path in paths]
    except RecursionError:
        return Reject(0, "unparseable", "invalid JSON: a value nested too deep")
    if not all(v is None or v.isascii() or _is_utf8(v) for v in values):
        return Reject(0, "bad_encoding", "a value holds a lone surrogate (\\ud800-\\udfff)")
    return obj, values


def _fast_record(line: bytes, paths: list[list[str]], decode: Callable[[bytes], Any]) -> Any:
    """What :func:`parse_record` gives, by ``msgspec`` for a plain object; ``None`` where the
    record needs the reference (anything ``msgspec`` refuses, or a value it cannot render).

    msgspec is strict where :mod:`json` is lenient (``NaN``, a byte-order mark, ``\\ud800``,
    surrogates encoded in the bytes, numbers past a double: all refused here), so what it accepts
    decodes to the same objects, and its strings are valid UTF-8. Proven equal on hypothesis'
    JSON and garbage by ``tests/unit/test_fuzz_readers.py``."""
    try:
        obj = decode(line)
        if type(obj) is not dict:
            return None
        values: list[str | None] = []
        for path in paths:
            value: Any = obj
            for key in path:
                value = value.get(key) if type(value) is dict else None
            kind = type(value)
            if kind is str:
                values.append(value.strip() or None)
            elif kind is float or kind is int:  # never blank, nothing to strip
                values.append(str(value))
            else:
                values.append(_as_text(value))
    except Exception:  # anything odd takes the reference path, which classifies it
        return None
    return obj, values


def _read_jsonl(
    opener: Opener, contract: DatasetContract, report: ReadReport, limits: IntakeLimits
) -> Iterator[SourceBatch]:
    import msgspec  # an Airflow dependency; imported where a JSON Lines extract is read

    decode = msgspec.json.Decoder().decode
    paths = [src.split(".") for src in contract.fields.values()]
    names = list(contract.fields)
    with opener() as f:
        reader = _LineReader(gunzip_chunks(f, contract.compression == "gzip", limits), limits.max_record_bytes)
        record = 0
        done = False
        while not done:  # a batch: whole blocks of lines until it holds BATCH_ROWS records or more
            columns: list[list[str | None]] = [[] for _ in names]
            recs: list[int] = []
            rejects: list[Reject] = []
            while len(recs) + len(rejects) < BATCH_ROWS:
                try:
                    block = reader.take()
                except Truncated as exc:
                    report.warning = f"{exc}; records after {record} could not be read"
                    done = True
                    # what was buffered before the cut is complete lines plus one partial line
                    if reader.buf[reader.pos :].strip():
                        record += 1
                        rejects.append(Reject(record, "unparseable", "partial record at the end of a truncated file"))
                    break
                if not block:
                    done = True
                    break
                for line in block:
                    if not line.strip():
                        continue
                    record += 1
                    if line is OVERSIZED:
                        rejects.append(
                            Reject(record, "oversized_record", f"longer than {limits.max_record_bytes} bytes")
                        )
                        continue
                    parsed = _fast_record(line, paths, decode) or parse_record(line, paths)
                    if isinstance(parsed, Reject):
                        parsed.record = record
                        rejects.append(parsed)
                        continue
                    obj, values = parsed
                    if record <= KEY_SAMPLE:
                        report.columns = _key_paths(obj, report.columns)
                    for column, value in zip(columns, values, strict=True):
                        column.append(value)  # a list per column: pa.array reads a list 7x faster than a tuple
                    recs.append(record)
            if recs or rejects:
                cols: dict[str, pa.Array] = {c: pa.array(v, pa.string()) for c, v in zip(names, columns, strict=True)}
                cols["_record"] = pa.array(recs, pa.int64())
                cols["_error"] = pa.nulls(len(recs), pa.string())
                report.records += len(recs) + len(rejects)
                yield SourceBatch(pa.table(cols), rejects)
