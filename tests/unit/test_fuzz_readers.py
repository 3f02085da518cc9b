"""Property-based fuzzing of the format readers and the normaliser (hypothesis).

Every family's real format, mutated: the outcome is either a clear ``ExtractError`` or an exact
account of every record (each one a row or a reject, numbered once) — never an unhandled crash,
never a lost record.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import itertools
import json
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xforce.errors import ExtractError
from xforce.intake.contracts import IntakeLimits, load_registry
from xforce.intake.framing import count_records
from xforce.intake.normalise import normalise
from xforce.intake.readers import ReadReport, Reject, read_extract
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
    """The records a file holds by its framing, counted the plainest way (a third count beside the
    reader's and ``framing.count_records``): a line ends at ``\n`` (a ``\r`` before it belongs to
    the line end); CSV: every non-empty line after the header; JSON Lines: every line with content."""
    lines = data.split(b"\n")
    if fmt == "csv":
        return sum(1 for line in lines[1:] if line.removesuffix(b"\r") != b"")
    return sum(1 for line in lines if line.strip())


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
    assert len(records) == expected, (len(records), expected)  # every line a record, whatever it holds
    assert sorted(records) == list(range(1, expected + 1))  # numbered by its place in the file
    assert count_records(io.BytesIO(raw), report.contract, IntakeLimits()) == expected


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
    # an intake limit: the whole extract is refused (its raw copy kept), in bounded memory
    with pytest.raises(ExtractError, match="decompression bomb"):
        list(read_extract(lambda: io.BytesIO(bomb), contract, registry, ReadReport(contract)))


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


# ----------------------------------------------------------------- hostile records, one by one
HOSTILE_CSV = {
    "ragged_utf8": lambda d, n: d.join([b"x"] * max(1, n - 2)),
    "ragged_cp1252": lambda d, n: d.join([b"caf\xe9 \x80\x9f\xff"] * (n + 2)),
    "unterminated_quote": lambda d, n: b'"open' + d + d.join([b"v"] * (n - 1)),
    "stray_quote": lambda d, n: d.join([b'a"b'] * n),
    "carriage_return": lambda d, n: d.join([b"a\rb"] * n),
    "long_line": lambda d, n: d.join([b"L" * (3 << 20)] + [b"v"] * (n - 1)),  # past the 2 MiB parse block
    "oversized": lambda d, n: b"O" * ((4 << 20) + 5),
}
HOSTILE_JSONL = {
    "deep": lambda: b"[" * 100_000,
    "deep_value": lambda: b'{"ref": "X", "plate": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    "lone_surrogate": lambda: b'{"ref": "CAMBS/ANPR/\\ud800", "plate": "AB12CDE"}',
    "not_an_object": lambda: b'["CAMBS/ANPR/1", "AB12CDE"]',
    "not_json": lambda: b"\xff\xfe{nope",
    "oversized": lambda: b'{"ref": "' + b"A" * ((4 << 20) + 5) + b'"}',
}
HOSTILE_CASES = [("norfolk", "anpr_reads"), ("essex", "seizures"), ("cambridgeshire", "anpr_reads")]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], bytes]:
    out = tmp_path_factory.mktemp("hostile")
    data: dict[tuple[str, str], bytes] = {}
    for force, dataset in HOSTILE_CASES:
        generate_night(NIGHT, out, anpr_reads=25, seizures=10, defect_rate=0, forces=[force], datasets=[dataset])
        (path,) = list((out / force / dataset / NIGHT.isoformat()).iterdir())
        raw = path.read_bytes()
        data[(force, dataset)] = gzip.decompress(raw) if path.suffix == ".gz" else raw
    return data


@pytest.mark.parametrize(("force", "dataset"), HOSTILE_CASES)
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inserts=st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 6)), min_size=1, max_size=4))
def test_hostile_records_are_quarantined_one_by_one_and_the_rest_keep_their_numbers(
    clean, force: str, dataset: str, inserts
) -> None:
    registry = load_registry(Settings.from_env().config_dir)
    # records up to 4 MiB: longer than Arrow's 2 MiB parse block, which the reader must widen to fit
    registry = dataclasses.replace(registry, intake=dataclasses.replace(registry.intake, max_record_bytes=4 << 20))
    contract = registry.contract(force, dataset)
    lines = clean[(force, dataset)].rstrip(b"\n").split(b"\n")
    header, records = (lines[:1], lines[1:]) if contract.format == "csv" else ([], lines)
    kinds = sorted(HOSTILE_CSV if contract.format == "csv" else HOSTILE_JSONL)
    body: list[tuple[bytes, str | None]] = [(r, None) for r in records]
    n_fields = len(header[0].split(contract.delimiter.encode())) if header else 0
    for pos, k in inserts:
        kind = kinds[k % len(kinds)]
        make = HOSTILE_CSV[kind] if contract.format == "csv" else HOSTILE_JSONL[kind]
        line = make(contract.delimiter.encode(), n_fields) if contract.format == "csv" else make()  # type: ignore[operator]
        body.insert(pos % (len(body) + 1), (line, kind))
    plain = b"\n".join([*header, *(line for line, _ in body)]) + b"\n"
    raw = gzip.compress(plain, mtime=0) if contract.compression == "gzip" else plain
    report = ReadReport(contract)
    good: list[int] = []
    rejected: dict[int, str] = {}
    for batch in read_extract(lambda: io.BytesIO(raw), contract, registry, report):
        for record, error in zip(
            batch.table.column("_record").to_pylist(), batch.table.column("_error").to_pylist(), strict=True
        ):
            if error is None:
                good.append(record)
            else:  # read, and marked for quarantine (a field too long, bytes that do not decode)
                rejected[record] = error
        rejected.update({r.record: r.reason for r in batch.rejects})
    hostile = {i + 1 for i, (_, kind) in enumerate(body) if kind is not None}
    assert set(rejected) == hostile  # each quarantined on its own, at its place in the file
    assert sorted(good) == [i + 1 for i, (_, kind) in enumerate(body) if kind is None]  # the rest keep theirs
    assert report.records == len(body) == count_records(io.BytesIO(raw), contract, registry.intake)
    oversized = {i + 1 for i, (_, kind) in enumerate(body) if kind == "oversized"}
    assert {r for r, reason in rejected.items() if reason == "oversized_record"} == oversized


@pytest.mark.parametrize(("force", "dataset"), [("norfolk", "anpr_reads"), ("cambridgeshire", "incidents")])
@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    lines=st.lists(
        st.binary(max_size=40) | st.sampled_from([b"", b" ", b"\r", b"\t \r", b'"a,"b"', b"x\ry"]), max_size=30
    ),
    shift=st.integers(0, 4096),
)
def test_the_count_holds_across_chunk_boundaries(force: str, dataset: str, lines: list[bytes], shift: int) -> None:
    """Files of a few MiB, so that lines, blank lines, CRs and unfinished lines fall across the 1 MiB
    chunks ``count_records`` reads in: its count equals the plainest one."""
    registry = load_registry(Settings.from_env().config_dir)
    contract = registry.contract(force, dataset)
    fmt = "jsonl" if contract.format == "jsonl" else "csv"
    block = b"\n".join(lines) + b"\n" if lines else b"\n"
    plain = b"h\n" + b"x" * shift + block * (2_500_000 // len(block) + 1)
    raw = gzip.compress(plain, compresslevel=1, mtime=0) if contract.compression == "gzip" else plain
    assert count_records(io.BytesIO(raw), contract, IntakeLimits()) == expected_records(plain, fmt)


# --------------------------------------------------------------- the JSON Lines fast path
# ``_read_jsonl`` decodes with msgspec and renders fields itself, and falls back to the reference
# (``parse_record``: json.loads, ``_as_text``) for anything msgspec refuses. These two properties
# prove the fast path gives the reference's answer, line by line, and the bulk line splitter the
# plainest split's.
JSON_KEYS = ["ref", "plate", "camera", "location", "lat", "lon", "id", "observed", "x", "é", "\ud800"]
JSON_TEXT = st.text(alphabet=st.characters(codec=None), max_size=12) | st.sampled_from(
    ["", " ", "\x1c AB12 CDE \u3000", "\ud83d\ude00", "\ud800", "1e400", "NaN"]
)
JSON_NUMBERS = (
    st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1.0, 1e16, 1e-5, 52.54692, 0.1 + 0.2, 2**63, -(2**63) - 1])
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | JSON_NUMBERS | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(JSON_KEYS), inner, max_size=4),
    max_leaves=12,
)
JSON_PATHS = [["ref"], ["observed"], ["camera", "id"], ["camera", "location", "lat"], ["plate"], ["x", "\ud800"]]
JSON_FIELD = JSON_TEXT | JSON_NUMBERS | JSON_VALUES
#: an ANPR read's shape (eastern_jsonl), each part present or not, of any JSON type
JSON_RECORDS = st.fixed_dictionaries(
    {},
    optional={
        "ref": JSON_FIELD,
        "observed": JSON_FIELD,
        "camera": st.fixed_dictionaries(
            {}, optional={"id": JSON_FIELD, "location": st.fixed_dictionaries({}, optional={"lat": JSON_FIELD})}
        )
        | JSON_FIELD,
        "plate": JSON_FIELD,
        "x": st.dictionaries(st.sampled_from(JSON_KEYS), JSON_FIELD, max_size=2),
    },
)


def _json_line(value: object, ascii_only: bool, edits: list[tuple[int, int, bytes]]) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only)
    line = text.encode("utf-8", "surrogatepass")  # a lone surrogate with ensure_ascii=False: CESU bytes
    return mutate(line, edits, None) if edits else line


@settings(max_examples=600, deadline=None, derandomize=True)
@given(
    value=JSON_RECORDS | st.dictionaries(st.sampled_from(JSON_KEYS), JSON_VALUES, max_size=6) | JSON_VALUES,
    ascii_only=st.booleans(),
    edits=st.lists(
        st.tuples(st.integers(0, 200), st.integers(0, 3), st.sampled_from(SPECIAL) | st.binary(max_size=3)),
        max_size=2,
    ),
)
def test_the_fast_json_path_gives_the_reference_answer(value: object, ascii_only: bool, edits) -> None:
    import msgspec

    from xforce.intake.readers import _fast_record, _key_paths, parse_record

    line = _json_line(value, ascii_only, edits)
    reference = parse_record(line, JSON_PATHS)
    fast = _fast_record(line, JSON_PATHS, msgspec.json.Decoder().decode)
    if fast is None:  # taken by the reference
        dumped = json.dumps(value)
        plain = isinstance(value, dict) and not edits and "NaN" not in dumped and "Infinity" not in dumped
        plain = plain and "\\ud8" not in dumped.lower() and "\\ud9" not in dumped.lower()
        plain = plain and not any("\\ud" + c in dumped.lower() for c in "abcdef")  # no lone surrogate
        # a plain object (no NaN, no lone surrogate, numbers a double holds) is the fast path's
        assert not (plain and all(abs(n) < 1e300 for n in _numbers(value))), line
        return
    assert not isinstance(reference, Reject), (reference, line)
    obj, values = fast
    assert values == reference[1]
    assert obj == reference[0]
    assert _key_paths(obj, None) == _key_paths(reference[0], None)  # the same keys, in the same order


def _numbers(value: object) -> list[float]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, (int, float)):
        return [float(value) if abs(value) < 1e308 else 1e308]
    items = value.values() if isinstance(value, dict) else value
    return [n for item in items for n in _numbers(item)]  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    lines=st.lists(st.binary(max_size=30) | st.sampled_from([b"", b" ", b"x" * 64]), max_size=20),
    cuts=st.lists(st.integers(0, 700), max_size=8),
    max_line=st.integers(1, 40),
    terminated=st.booleans(),
)
def test_the_line_splitter_gives_the_plainest_split(lines: list[bytes], cuts, max_line: int, terminated: bool) -> None:
    from xforce.intake.readers import OVERSIZED, _LineReader

    lines = [line.replace(b"\n", b"") for line in lines]
    data = b"\n".join(lines) + (b"\n" if terminated and lines else b"")
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points) if b > a]
    got = list(_LineReader(iter(chunks), max_line).lines())
    parts = data.split(b"\n")
    ended = parts.pop() if parts else b""  # what follows the last "\n" (nothing when terminated)
    expected = [OVERSIZED if len(p) + 1 > max_line else p for p in parts]
    if ended:
        expected.append(OVERSIZED if len(ended) > max_line else ended)
    assert got == expected
