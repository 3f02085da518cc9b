"""Property-based fuzzing of the format readers and the normaliser (hypothesis).

Every family's real format, mutated: the outcome is either a clear ``ExtractError`` or an exact
account of every record (each one a row or a reject, numbered once) — never an unhandled crash,
never a lost record.
"""

from __future__ import annotations

import gzip
import io
import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xforce.errors import ExtractError
from xforce.intake.contracts import load_registry
from xforce.intake.normalise import normalise
from xforce.intake.readers import ReadReport, read_extract
from xforce.settings import Settings
from xforce_tools.generate import generate_night

pytestmark = pytest.mark.unit

NIGHT = date(2026, 11, 27)
CASES = [("norfolk", "anpr_reads"), ("essex", "seizures"), ("cambridgeshire", "incidents")]
SPECIAL = [b"\x00", b"\n", b"\r", b";", b",", b'"', b"{", b"}", b"\xff", b"\xe9", b"\\", b" ", b"9" * 30]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], bytes]:
    out = tmp_path_factory.mktemp("fuzz")
    out_data: dict[tuple[str, str], bytes] = {}
    for force, dataset in CASES:
        generate_night(NIGHT, out, anpr_reads=30, incidents=12, seizures=12, forces=[force], datasets=[dataset])
        folder = out / force / dataset / NIGHT.isoformat()
        (path,) = list(folder.iterdir())
        data = path.read_bytes()
        out_data[(force, dataset)] = gzip.decompress(data) if path.suffix == ".gz" else data
    return out_data


def mutate(data: bytes, edits: list[tuple[int, int, bytes]], cut: int | None) -> bytes:
    buf = bytearray(data)
    for pos, delete, insert in edits:
        p = pos % (len(buf) + 1)
        buf[p : p + delete] = insert
    if cut is not None:
        buf = buf[: cut % (len(buf) + 1)]
    return bytes(buf)


def expected_records(data: bytes, fmt: str) -> int:
    if fmt == "csv":  # pyarrow: \n, \r\n and \r all end a row; empty rows are skipped; first row is the header
        lines = re.split(rb"\r\n|\n|\r", data)
        return sum(1 for line in lines[1:] if line != b"")
    return sum(1 for line in data.split(b"\n") if line.strip())


def read_all(raw: bytes, force: str, dataset: str) -> tuple[list[int], ReadReport] | None:
    settings_ = Settings.from_env()
    registry = load_registry(settings_.config_dir)
    contract = registry.contract(force, dataset)
    report = ReadReport(contract)
    records: list[int] = []
    try:
        for batch in read_extract(lambda: io.BytesIO(raw), contract, registry, report):
            records += batch.table.column("_record").to_pylist()
            records += [r.record for r in batch.rejects]
            # the normaliser must take whatever the reader produced
            table = normalise(batch.table, report.contract, force, "f", "k")
            assert table.num_rows == batch.table.num_rows
    except ExtractError:
        return None
    return records, report


edits = st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 4), st.sampled_from(SPECIAL) | st.binary(max_size=6)), max_size=6
)


@pytest.mark.parametrize(("force", "dataset"), CASES)
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=edits, cut=st.none() | st.integers(0, 10_000))
def test_mutated_extract_is_fully_accounted(samples, force: str, dataset: str, edits, cut) -> None:
    plain = mutate(samples[(force, dataset)], edits, cut)
    gzipped = force == "cambridgeshire"
    raw = gzip.compress(plain, mtime=0) if gzipped else plain
    outcome = read_all(raw, force, dataset)
    if outcome is None:
        return  # a clear, recorded error (empty file, wrong header, ...)
    records, report = outcome
    assert len(records) == len(set(records)), "a record was numbered twice"
    assert len(records) == report.records
    fmt = "jsonl" if gzipped else "csv"
    if report.contract.family == "police_uk":
        fmt = "csv"
    expected = expected_records(plain, fmt)
    balanced = all(line.count(b'"') % 2 == 0 for line in re.split(rb"\r\n|\n|\r", plain))
    if report.warning is None and (fmt == "jsonl" or balanced):
        assert len(records) == expected, (len(records), expected)
    else:  # stopped early (and said so), or a quoted field spans lines: never more records than lines
        assert len(records) <= expected


@pytest.mark.parametrize(("force", "dataset"), [("cambridgeshire", "incidents")])
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10_000), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
def test_mutated_gzip_stream_never_crashes(samples, force: str, dataset: str, cut: int, flips) -> None:
    buf = bytearray(gzip.compress(samples[(force, dataset)], mtime=0))
    for pos, value in flips:
        buf[pos % len(buf)] = value
    raw = bytes(buf[: max(1, cut % (len(buf) + 1))])
    outcome = read_all(raw, force, dataset)
    if outcome is not None:
        records, report = outcome
        assert len(records) == len(set(records)) == report.records


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    settings_ = Settings.from_env()
    registry = load_registry(settings_.config_dir)
    contract = registry.contract("cambridgeshire", "anpr_reads")
    line = b'{"ref": "CAMBS/ANPR/1", "observed": 1764201600000, "plate": "AB12CDE"}\n'
    bomb = gzip.compress(line + b" " * (300 << 20), compresslevel=9)  # ~300 MiB of spaces in < 1 MiB
    report = ReadReport(contract)
    rows = sum(b.table.num_rows for b in read_extract(lambda: io.BytesIO(bomb), contract, registry, report))
    assert report.warning and "decompression bomb" in report.warning
    assert rows == 1  # the record before the bomb is kept


def test_oversized_record_and_field_are_quarantined_not_lost() -> None:
    settings_ = Settings.from_env()
    registry = load_registry(settings_.config_dir)
    contract = registry.contract("cambridgeshire", "anpr_reads")
    good = b'{"ref": "CAMBS/ANPR/1", "observed": 1764201600000, "plate": "AB12CDE"}\n'
    huge = b'{"ref": "CAMBS/ANPR/2", "plate": "' + b"A" * (2 << 20) + b'"}\n'
    wide = b'{"ref": "CAMBS/ANPR/3", "plate": "' + b"B" * 5000 + b'"}\n'
    nul = b'{"ref": "CAMBS/ANPR/4", "plate": "AB12\\u0000CDE"}\n'
    raw = gzip.compress(good + huge + wide + nul + good.replace(b"/1", b"/5"))
    batches = list(read_extract(lambda: io.BytesIO(raw), contract, registry, ReadReport(contract)))
    rejects = [(r.record, r.reason) for b in batches for r in b.rejects]
    rows = [
        (rec, err)
        for b in batches
        for rec, err in zip(b.table.column("_record").to_pylist(), b.table.column("_error").to_pylist(), strict=True)
    ]
    assert rejects == [(2, "oversized_record")]
    assert rows == [(1, None), (3, "oversized_field"), (4, "nul_byte"), (5, None)]
