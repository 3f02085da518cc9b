"""Source fields -> canonical columns (types, UTC times, WGS84 coordinates, canonical codes).

Works on one Arrow table (a batch) at a time. A value that is present but cannot be
understood sets the row's ``_error`` (first problem wins); absent values stay null for the
validation step to judge against the contract's required fields.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xforce.schemas import TIME_COLUMN

if TYPE_CHECKING:
    from xforce.intake.contracts import DatasetContract

_NUMBER = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"
_INTEGER = r"^\s*[-+]?\d{1,18}\s*$"  # beyond 18 digits an int64 may overflow: unparseable

#: What a spreadsheet takes for the start of a formula when it opens a cell (OWASP's list): an id
#: starting with one is refused (``bad_id``), and a cell of an export gets a quote before it.
FORMULA_LEAD = "=+-@\t\r"
_FORMULA = r"^[=+\-@\t\r]"
_FORMULA_BYTES = np.frombuffer(FORMULA_LEAD.encode("ascii"), dtype=np.uint8)
#: Ids and codes holding a non-ASCII character are also refused when a person would misread them:
#: a control or format character (C0/C1 controls, bidi controls, zero-width characters, the BOM),
#: a line or paragraph separator, a digit of another script, a full-width or mathematical letter
#: (``ＮＦＫ``, ``𝐍𝐅𝐊``), or letters of two scripts in one value (a Cyrillic ``А`` among Latin letters;
#: Greek with Cyrillic). Letters of Windows-1252 (``é``, ``ß``) are Latin and pass; so do symbols
#: (``£``, ``µ``) and combining accents, which belong to no script of their own.
_OTHER_LETTER = r"[^\P{L}\p{Latin}\p{Common}\p{Inherited}]"
_ODD_ID = "|".join(
    (
        _FORMULA,
        r"[\p{Cc}\p{Cf}\x{2028}\x{2029}]",
        r"[^\P{Nd}0-9]",
        r"[\x{FF00}-\x{FFEF}\x{1D400}-\x{1D7FF}]",
        rf"\p{{Latin}}.*{_OTHER_LETTER}|{_OTHER_LETTER}.*\p{{Latin}}",
        r"\p{Greek}.*\p{Cyrillic}|\p{Cyrillic}.*\p{Greek}",
    )
)
#: A plain number: a spreadsheet reads it as the number it is, so an export leaves it alone.
_PLAIN_NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")
#: Source fields holding ids or codes of the force's own (the code lists' fields are mapped instead).
ID_FIELDS = ("source_id", "camera_id", "incident_ref", "lsoa_code")
#: A seconds field of 60 (a leap second), wherever the format puts it.
_SIXTY = r"(^|\D)60(\D|$)"


def _null_str(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


def _set_error(error: pa.Array, mask: pa.Array, reason: str) -> pa.Array:
    """Set ``reason`` where ``mask`` is true and no earlier error is recorded."""
    mask = pc.fill_null(mask, False)
    return pc.if_else(pc.and_(mask, pc.is_null(error)), pa.scalar(reason), error)


def _present_but_null(source: pa.Array, parsed: pa.Array) -> pa.Array:
    return pc.and_(pc.is_valid(source), pc.is_null(parsed))


def parse_number(col: pa.Array, to: pa.DataType) -> pa.Array:
    """Text -> number; what is not a number becomes null. Tries the fast cast first."""
    if not pa.types.is_integer(to):
        try:
            fast = pc.cast(col, to)  # succeeds for the usual all-numeric column
            if pc.all(pc.fill_null(pc.is_finite(fast), True)).as_py():
                return fast
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # some value is not a plain number: the careful path below nulls just those
    pattern = _INTEGER if pa.types.is_integer(to) else _NUMBER
    ok = pc.fill_null(pc.match_substring_regex(col, pattern), False)
    cleaned = pc.if_else(ok, pc.utf8_trim_whitespace(col), pa.scalar(None, pa.string()))
    return pc.cast(cleaned, to)


def _per_distinct(col: pa.Array, fn: Any) -> pa.Array:
    """``fn`` applied to the distinct values of ``col`` and spread back to its rows.

    A night's reads share their times (seconds) many times over: a batch of 128 Ki reads has a
    few thousand distinct times, so parsing those instead of every row is exact and far cheaper.
    """
    encoded = pc.dictionary_encode(col)
    if len(encoded.dictionary) * 2 > len(col):  # mostly distinct: not worth the detour
        return fn(col)
    return pc.take(fn(encoded.dictionary), encoded.indices)


def odd_ids(col: pa.Array) -> pa.Array:
    """True where an id or code would be misread by a person or a spreadsheet (null stays null).

    A value starting with a formula character (:data:`FORMULA_LEAD`) or holding an ASCII control
    character is odd; a value with a non-ASCII character is also odd by :data:`_ODD_ID`. Almost
    every id is ASCII, so the Unicode expression runs on the few that are not.
    """
    ascii_ = pc.string_is_ascii(col)
    odd = pc.or_(_formula_lead(col), pc.invert(pc.ascii_is_printable(col)))
    unicode = pc.invert(pc.fill_null(ascii_, True))
    if not pc.any(unicode).as_py():
        return odd
    return pc.replace_with_mask(odd, unicode, pc.match_substring_regex(col.filter(unicode), _ODD_ID))


def _formula_lead(col: pa.Array) -> pa.Array:
    """True where a value's first byte is a formula character (all ASCII), read from the offsets
    and data buffers at once (a regex anchored at the start costs several times as much per row)."""
    if len(col) == 0:
        return pa.array([], pa.bool_())
    buffers = col.buffers()
    width: type[np.signedinteger[Any]] = np.int64 if pa.types.is_large_string(col.type) else np.int32
    offsets = np.frombuffer(buffers[1], dtype=width)[col.offset : col.offset + len(col) + 1]
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    nonempty = offsets[1:] > starts  # a null or empty value has no first byte
    first = np.zeros(len(col), dtype=np.uint8)
    first[nonempty] = data[starts[nonempty]]
    return pa.array(np.isin(first, _FORMULA_BYTES))


def formula_safe(text: str) -> str:
    """``text`` as a cell of a CSV or TSV export: a quote before a leading formula character, so a
    spreadsheet shows the text instead of running it (a plain number such as ``-3.5`` is left as it is)."""
    if text and text[0] in FORMULA_LEAD and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def parse_times(col: pa.Array, contract: DatasetContract) -> pa.Array:
    """Strings -> ``timestamp[us, UTC]``; unparseable values become null."""
    return _per_distinct(col, functools.partial(_parse_times, contract=contract))


def _parse_times(col: pa.Array, contract: DatasetContract) -> pa.Array:
    fmt = contract.timestamp_format
    if fmt == "epoch_ms":
        ms = parse_number(col, pa.int64())
        # Anything beyond year 9999 cannot be a real time; null it before it overflows.
        ms = pc.if_else(pc.fill_null(pc.less(pc.abs(ms), 253402300799000), False), ms, pa.scalar(None, pa.int64()))
        return pc.cast(pc.multiply(ms, 1000), pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    naive = _strict_strptime(col, fmt, contract.leap_second)
    if contract.timezone.upper() == "UTC":
        return pc.assume_timezone(naive, "UTC")
    nonexistent = {"shift_forward": "latest", "shift_backward": "earliest"}.get(
        contract.nonexistent, contract.nonexistent
    )
    return pc.assume_timezone(naive, contract.timezone, ambiguous=contract.ambiguous, nonexistent=nonexistent)


def _strict_strptime(col: pa.Array, fmt: str, leap_second: str = "refuse") -> pa.Array:
    """``strptime`` that refuses impossible calendar dates (Arrow rolls 31/02 over to 03/03) and
    leap seconds unless ``leap_second`` is ``clamp`` (Arrow rolls 23:59:60 over to the next day's
    00:00:00; clamped, it is 23:59:59.999999 of its own day).
    """
    naive = pc.strptime(col, format=fmt, unit="us", error_is_null=True)
    leap = _leap_seconds(col, naive, fmt)
    naive = _no_rollover(col, naive, fmt)
    if leap is None:
        return naive
    if leap_second != "clamp":
        return pc.if_else(leap, pa.scalar(None, naive.type), naive)
    at_59 = pc.replace_substring_regex(col.filter(leap), _SIXTY, r"\159\2", max_replacements=1)
    parsed = _no_rollover(at_59, pc.strptime(at_59, format=fmt, unit="us", error_is_null=True), fmt)
    clamped = pc.add(parsed, pa.scalar(999_999, pa.duration("us")))
    return pc.replace_with_mask(naive, leap, clamped)


def _leap_seconds(col: pa.Array, naive: pa.Array, fmt: str) -> pa.Array | None:
    """Where the text says second 60 (parsed, it rolled over to second 0 of the next minute);
    ``None`` when there is none. Only values that parsed to second 0 are looked at."""
    if "%S" not in fmt and "%T" not in fmt:
        return None
    zero = pc.fill_null(pc.equal(pc.second(naive), 0), False)
    if not pc.any(zero).as_py():
        return None
    sixty = pc.fill_null(pc.match_substring_regex(col.filter(zero), _SIXTY), False)
    if not pc.any(sixty).as_py():
        return None
    return pc.replace_with_mask(zero, zero, sixty)


def _no_rollover(col: pa.Array, naive: pa.Array, fmt: str) -> pa.Array:
    """``naive`` with rolled-over dates nulled. A rolled-over date always lands on day 1-3 of the
    next month, so only those rows are formatted back and compared with their text."""
    suspect = pc.fill_null(pc.less_equal(pc.day(naive), 3), False)
    if not pc.any(suspect).as_py():
        return naive
    back = pc.strftime(naive.cast(pa.timestamp("s")), format=fmt)
    ok = pc.or_(pc.invert(suspect), pc.fill_null(pc.equal(back, pc.utf8_trim_whitespace(col)), False))
    return pc.if_else(ok, naive, pa.scalar(None, naive.type))


@functools.lru_cache(maxsize=4)
def _transformer(crs: str) -> Any:
    from pyproj import Transformer  # heavy import, only for forces that need it

    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def to_wgs84(x: pa.Array, y: pa.Array, crs: str) -> tuple[pa.Array, pa.Array]:
    xs = pc.fill_null(x, np.nan).to_numpy(zero_copy_only=False).astype("float64")
    ys = pc.fill_null(y, np.nan).to_numpy(zero_copy_only=False).astype("float64")
    lon, lat = _transformer(crs).transform(xs, ys)
    lon = np.asarray(lon, dtype="float64")
    lat = np.asarray(lat, dtype="float64")
    bad = ~np.isfinite(lon) | ~np.isfinite(lat)
    return pa.array(lat, mask=bad), pa.array(lon, mask=bad)


def map_codes(col: pa.Array, mapping: dict[str, str]) -> pa.Array:
    keys = pa.array(list(mapping.keys()), pa.string())
    values = pa.array(list(mapping.values()), pa.string())
    idx = pc.index_in(pc.utf8_trim_whitespace(col), value_set=keys)
    return pc.take(values, idx)


def normalise_plate(col: pa.Array) -> pa.Array:
    """Upper case, white space removed, empty -> null. The regex runs only on the plates that
    are not letters and digits alone (almost every plate is)."""
    plate = pc.utf8_upper(col)
    spaced = pc.invert(pc.fill_null(pc.utf8_is_alnum(plate), True))
    if pc.any(spaced).as_py():
        cleaned = pc.replace_substring_regex(plate.filter(spaced), r"\s+", "")
        plate = pc.replace_with_mask(plate, spaced, cleaned)
    return pc.if_else(pc.equal(plate, ""), pa.scalar(None, pa.string()), plate)


def normalise(table: pa.Table, contract: DatasetContract, force: str, source_file: str, file_key: str = "") -> pa.Table:
    """One batch of source fields -> canonical columns plus ``plate`` (clear, for validation) and ``_error``."""
    n = table.num_rows
    src = {name: table.column(name).combine_chunks() for name in table.column_names}
    error = src["_error"]
    out: dict[str, pa.Array] = {}

    source_id = src.get("source_id", _null_str(n))
    out["source_id"] = source_id
    out["record_id"] = pc.binary_join_element_wise(pa.scalar(f"{force}:"), source_id, "")
    if source_id.null_count:  # no id of its own: the file and record number stand in
        fallback = pc.binary_join_element_wise(
            pa.scalar(f"{force}:{file_key or source_file}#"), pc.cast(src["_record"], pa.string()), ""
        )
        out["record_id"] = pc.if_else(pc.is_valid(source_id), out["record_id"], fallback)
    out["force_code"] = pa.repeat(pa.scalar(force, pa.string()), n)
    out["source_file"] = pa.repeat(pa.scalar(source_file, pa.string()), n)
    out["source_record"] = src["_record"]
    for name in ID_FIELDS:  # ids and codes a person or a spreadsheet would misread
        if name in src:
            odd = odd_ids(src[name]) if name == "source_id" else _per_distinct(src[name], odd_ids)
            error = _set_error(error, odd, "bad_id")

    times = parse_times(src.get("timestamp", _null_str(n)), contract)
    error = _set_error(error, _present_but_null(src.get("timestamp", _null_str(n)), times), "impossible_timestamp")
    out[TIME_COLUMN[contract.dataset]] = times

    if "x" in contract.fields:
        x = parse_number(src.get("x", _null_str(n)), pa.float64())
        y = parse_number(src.get("y", _null_str(n)), pa.float64())
        error = _set_error(error, _present_but_null(src.get("x", _null_str(n)), x), "bad_coordinates")
        error = _set_error(error, _present_but_null(src.get("y", _null_str(n)), y), "bad_coordinates")
        lat, lon = to_wgs84(x, y, contract.crs)
    else:
        lat = parse_number(src.get("lat", _null_str(n)), pa.float64())
        lon = parse_number(src.get("lon", _null_str(n)), pa.float64())
        error = _set_error(error, _present_but_null(src.get("lat", _null_str(n)), lat), "bad_coordinates")
        error = _set_error(error, _present_but_null(src.get("lon", _null_str(n)), lon), "bad_coordinates")
    out["latitude"], out["longitude"] = lat, lon

    for name in ("offence", "outcome", "item_type"):
        if name in src:
            mapped = map_codes(src[name], contract.codes.get(name, {}))
            error = _set_error(error, _present_but_null(src[name], mapped), "unknown_code")
            out[name] = mapped
    if "plate" in src:
        out["plate"] = normalise_plate(src["plate"])
    if "camera_id" in src:
        out["camera_id"] = src["camera_id"]
    if "incident_ref" in src:
        ref = src["incident_ref"]
        out["incident_record_id"] = pc.if_else(
            pc.is_valid(ref), pc.binary_join_element_wise(pa.scalar(f"{force}:"), ref, ""), pa.scalar(None, pa.string())
        )
    if "quantity" in src:
        qty = parse_number(src["quantity"], pa.int64())
        error = _set_error(error, _present_but_null(src["quantity"], qty), "unparseable")
        out["quantity"] = qty
    if contract.dataset == "incidents":
        out["time_precision"] = pa.repeat(pa.scalar(contract.time_precision, pa.string()), n)
        has_loc = pc.and_(pc.is_valid(lat), pc.is_valid(lon))
        out["location_precision"] = pc.if_else(has_loc, pa.scalar(contract.location_precision), pa.scalar("none"))
        out["location_name"] = src.get("location_name", _null_str(n))
        out["lsoa_code"] = src.get("lsoa_code", _null_str(n))
    out["_error"] = error
    return pa.table(out)
