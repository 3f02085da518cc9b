"""Records before parsing: every line a force sends is a record, framed here before Arrow's CSV
parser sees it, and counted again by an independent scan.

:class:`CsvFramer` streams a CSV extract to the parser unchanged, except for the lines the parser
could not take on their own: a line whose double quotes do not balance (an unterminated or stray
quote, which would swallow the next line), a line with more or fewer fields than the header, a
line longer than the intake's record limit. Each such line is replaced by a one-field marker
that names its record number, so the parser hands it to the reader's invalid-row handler, which
quarantines it with its reason, and the records after it keep their numbers. Whatever bytes the
line held (not UTF-8, a megabyte of one field) never reach the parser.

:func:`count_records` is the independent count: the number of records a file holds, by its
framing (non-empty lines for CSV, header excluded; lines with content for JSON Lines), computed
by a separate, simpler scan. Reading must account for exactly that many records.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any

import numpy as np

from xforce.errors import ExtractError
from xforce.redaction import describe

if TYPE_CHECKING:
    from collections.abc import Iterator

    from xforce.intake.contracts import DatasetContract, IntakeLimits

#: The start of a marker line (a byte no extract's text holds), followed by the record number.
MARK = "\x01xf:"
#: The longest header line a CSV extract may have (no contract's header comes near it): a longer
#: first line is no header (a record, or a file without line feeds) and refuses the file whole.
MAX_HEADER_BYTES = 8 * 1024
_CHUNK = 1 << 20
_WHITESPACE = np.array([9, 10, 11, 12, 13, 32], dtype=np.uint8)


def header_line(head: bytes) -> bytes:
    """The header line of a CSV extract whose first bytes are ``head`` (without its line end).

    A file whose first line is longer than :data:`MAX_HEADER_BYTES`, or holds a carriage return
    before its end (CR-only line endings: the whole file would be one "header"), is refused whole
    (:class:`ExtractError`); the message names the line by length and hash, never by content.
    """
    end = head.find(b"\n")
    line = head if end < 0 else head[:end]
    if (end < 0 and len(head) > MAX_HEADER_BYTES) or len(line) > MAX_HEADER_BYTES:
        raise ExtractError(
            f"refused whole: no line end in the first {MAX_HEADER_BYTES} bytes (a header is shorter): "
            f"the first line is {'at least ' if end < 0 else ''}{describe(line)}"
        )
    line = line.removesuffix(b"\r")
    cr = line.find(b"\r")
    if cr >= 0:
        raise ExtractError(
            f"refused whole: carriage return at byte offset {cr} of the first line "
            f"{describe(line)}: CR-only line endings are not read, "
            "only LF or CRLF"
        )
    return line


class CsvFramer:
    """A readable stream of a CSV extract with every line the parser can't take replaced by a marker.

    ``problems`` maps a marker's record number to ``(reason, detail)``; ``truncated`` holds the
    error of a compressed stream that ended early (what came before it is still framed, the
    partial last line is a record of its own).
    """

    def __init__(self, chunks: Iterator[bytes], delimiter: str, fields: int, max_record: int) -> None:
        self.chunks, self.delimiter, self.fields, self.max_record = chunks, ord(delimiter), fields, max_record
        self.problems: dict[int, tuple[str, str]] = {}
        self.truncated: str | None = None
        self.record = 0  # records (non-empty lines after the header) framed so far
        self.closed = False
        self._carry = b""
        self._skipping = False  # inside an oversized line, already marked: drop until its end
        self._header = True
        self._out: list[bytes] = []
        self._held = 0
        self._eof = False

    # ---------------------------------------------------------------- file-like, for pyarrow
    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or self._held < n):
            self._fill()
        data = b"".join(self._out)
        if n < 0 or n >= len(data):
            self._out, self._held = [], 0
            return data
        self._out, self._held = [data[n:]], len(data) - n
        return data[:n]

    def close(self) -> None:
        self.closed = True

    # ---------------------------------------------------------------------------- framing
    def _emit(self, data: bytes) -> None:
        if data:
            self._out.append(data)
            self._held += len(data)

    def _mark(self, reason: str, detail: str) -> None:
        self.record += 1
        self.problems[self.record] = (reason, detail)
        self._emit(f"{MARK}{self.record}\n".encode("ascii"))

    def _fill(self) -> None:
        try:
            data = next(self.chunks, b"")
        except Truncated as exc:  # a compressed stream cut short: what came before is framed
            self.truncated = str(exc)
            data = b""
        if not data:
            self._eof = True
            if self._carry and not self._skipping:
                if self.truncated is not None:  # the last line was cut by the truncation
                    self._mark("unparseable", "partial record at the end of a truncated file")
                else:
                    self._frame(self._carry + b"\n")
            self._carry = b""
            return
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                return
            data, self._skipping = data[end + 1 :], False
        buf = self._carry + data
        last = buf.rfind(b"\n")
        if last < 0:
            self._carry = buf
        else:
            self._frame(buf[: last + 1])
            self._carry = buf[last + 1 :]
        if len(self._carry) > self.max_record:  # a line past the limit: marked now, the rest dropped
            self._carry, self._skipping = b"", True
            self._mark("oversized_record", f"longer than {self.max_record} bytes")

    def _frame(self, complete: bytes) -> None:
        """``complete`` ends with a newline: pass its lines on, markers for those the parser can't take."""
        if self._header:
            end = complete.find(b"\n")
            self._emit(complete[: end + 1])
            self._header, complete = False, complete[end + 1 :]
            if not complete:
                return
        arr = np.frombuffer(complete, dtype=np.uint8)
        ends = np.flatnonzero(arr == 10)
        starts = np.empty_like(ends)
        starts[0], starts[1:] = 0, ends[:-1] + 1
        lengths = ends - starts
        has_cr = (lengths > 0) & (arr[np.maximum(ends - 1, 0)] == 13)
        content = lengths - has_cr
        empty = content == 0
        # Counts per line by searching the positions of quotes, delimiters and CRs (few, or none: then
        # the search is skipped), not by a running count of every byte.
        delims = np.flatnonzero(arr == self.delimiter)
        if b'"' in complete:
            quotes = np.flatnonzero(arr == 34)
            before = np.searchsorted(quotes, starts)  # quotes before each line
            unbalanced = ((np.searchsorted(quotes, ends) - before) & 1) == 1
            line = np.searchsorted(ends, delims)
            outside = ((np.searchsorted(quotes, delims) - before[line]) & 1) == 0
            fields = np.bincount(line[outside], minlength=len(ends)) + 1
        else:  # no quote: every delimiter separates two fields
            unbalanced = np.zeros(len(ends), dtype=bool)
            fields = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
        if b"\r" in complete:
            crs = np.flatnonzero(arr == 13)
            stray_cr = (np.searchsorted(crs, ends) - np.searchsorted(crs, starts) - has_cr) > 0
        else:
            stray_cr = np.zeros(len(ends), dtype=bool)
        oversized = content > self.max_record
        bad = ~empty & (oversized | unbalanced | stray_cr | (fields != self.fields))
        if not bad.any():
            self._emit(complete)
            self.record += int((~empty).sum())
            return
        ordinal = self.record + np.cumsum(~empty)
        prev = 0
        for i in np.flatnonzero(bad).tolist():
            self._emit(complete[prev : int(starts[i])])
            self.record = int(ordinal[i]) - 1
            if oversized[i]:
                self._mark("oversized_record", f"longer than {self.max_record} bytes")
            elif unbalanced[i]:
                self._mark("unparseable", "unbalanced double quote (unterminated or stray)")
            elif stray_cr[i]:
                self._mark("unparseable", "carriage return inside the line")
            else:
                self._mark("unparseable", f"{int(fields[i])} fields where the header has {self.fields}")
            prev = int(ends[i]) + 1
        self._emit(complete[prev:])
        self.record = int(ordinal[-1])


# ------------------------------------------------------------------------------ decompression
class Truncated(Exception):
    """The compressed stream ended early or is corrupt after some good data."""


def gunzip_chunks(stream: Any, gzipped: bool, limits: IntakeLimits, size: int = _CHUNK) -> Iterator[bytes]:
    """Raw or gunzipped chunks; everything decompressed before a truncation is still yielded.

    A decompression bomb (more than ``max_decompressed_bytes``, or a ratio above
    ``max_compression_ratio`` once past 64 MiB) refuses the whole extract (:class:`ExtractError`).
    """
    if not gzipped:
        while data := stream.read(size):
            yield bytes(data)
        return
    d = zlib.decompressobj(wbits=31)
    read = written = 0
    while True:
        data = bytes(stream.read(size))
        if not data:
            break
        read += len(data)
        while data:
            try:
                out = d.decompress(data, size * 4)
            except zlib.error as exc:
                raise Truncated(f"corrupt compressed data: {exc}") from exc
            written += len(out)
            if written > limits.max_decompressed_bytes or (
                written > 64 << 20 and written > limits.max_compression_ratio * read
            ):
                raise ExtractError(
                    f"refused as a decompression bomb: {written} bytes from {read} compressed "
                    f"(limits: {limits.max_decompressed_bytes} bytes, ratio {limits.max_compression_ratio:g})"
                )
            if out:
                yield out
            data = d.unconsumed_tail or (d.unused_data if d.eof else b"")
            if d.eof and d.unused_data and not d.unconsumed_tail:  # a further gzip member follows
                d = zlib.decompressobj(wbits=31)
    tail = d.flush()
    if tail:
        yield tail
    if not d.eof:
        raise Truncated("compressed stream ends early (no end-of-stream marker)")


# ------------------------------------------------------------------------ the independent count
def count_records(stream: Any, contract: DatasetContract, limits: IntakeLimits) -> int:
    """How many records the file holds by its framing, counted without parsing anything.

    CSV: lines with at least one byte besides the line end, less the header. JSON Lines: lines with
    at least one byte that is not white space.
    """
    jsonl = contract.format == "jsonl"
    count = 0
    pending = False  # the line in progress has content
    chunks = gunzip_chunks(stream, contract.compression == "gzip", limits)
    while True:
        try:
            chunk = next(chunks, b"")
        except Truncated:  # cut short: what came before counts, as the reader reads it
            break
        if not chunk:
            break
        arr = np.frombuffer(chunk, dtype=np.uint8)
        # Bytes that are not content: white space (JSON Lines) or the line ends (CSV), by position.
        blank = np.flatnonzero(np.isin(arr, _WHITESPACE) if jsonl else (arr == 10) | (arr == 13))
        ends = np.flatnonzero(arr == 10)
        if len(ends) == 0:
            pending = pending or len(blank) < len(arr)
            continue
        starts = np.concatenate(([0], ends[:-1] + 1))
        per_line = (ends + 1 - starts) > (np.searchsorted(blank, ends, side="right") - np.searchsorted(blank, starts))
        per_line[0] = per_line[0] or pending
        count += int(per_line.sum())
        tail = len(arr) - int(ends[-1]) - 1
        pending = tail > len(blank) - int(np.searchsorted(blank, ends[-1], side="right"))
    count += int(pending)
    return count - 1 if contract.format == "csv" and count else count
