"""Source fields -> canonical columns (types, UTC times, WGS84 coordinates, canonical codes).

Works on one Arrow table (a batch) at a time. A value that is present but cannot be
understood sets the row's ``_error`` (first problem wins); absent values stay null for the
validation step to judge against the contract's required fields.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xforce.schemas import TIME_COLUMN

if TYPE_CHECKING:
    from xforce.intake.contracts import DatasetContract

_NUMBER = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"
_INTEGER = r"^\s*[-+]?\d{1,18}\s*$"  # beyond 18 digits an int64 may overflow: unparseable


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
    naive = _strict_strptime(col, fmt)
    if contract.timezone.upper() == "UTC":
        return pc.assume_timezone(naive, "UTC")
    nonexistent = {"shift_forward": "latest", "shift_backward": "earliest"}.get(
        contract.nonexistent, contract.nonexistent
    )
    return pc.assume_timezone(naive, contract.timezone, ambiguous=contract.ambiguous, nonexistent=nonexistent)


def _strict_strptime(col: pa.Array, fmt: str) -> pa.Array:
    """``strptime`` that refuses impossible calendar dates (Arrow rolls 31/02 over to 03/03).

    A rolled-over date always lands on day 1-3 of the next month, so only those rows are
    formatted back and compared with their text.
    """
    naive = pc.strptime(col, format=fmt, unit="us", error_is_null=True)
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
