"""What the hub says about a file's content: described (length, hash, position), never shown.

``redact_text`` against every plate shape the plate check accepts (property-based), ``describe``
and its variants, and the places that echo a file: the CSV header, pyarrow's parse errors, schema
drift and Great Expectations' results.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xforce.errors import ExtractError
from xforce.intake.contracts import load_registry
from xforce.intake.framing import MAX_HEADER_BYTES, header_line
from xforce.intake.readers import ReadReport, read_extract
from xforce.quality.config import load_config
from xforce.quality.drift import detect_drift
from xforce.quality.tally import ExtractTally
from xforce.redaction import (
    describe,
    describe_error,
    describe_name,
    describe_names,
    is_safe_name,
    redact_text,
)
from xforce.settings import PROJECT_ROOT, Settings

pytestmark = pytest.mark.unit

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
DIGITS = "0123456789"
_ALNUM = re.compile(r"[A-Za-z0-9]+")


def _plate_regex() -> re.Pattern[str]:
    """The plate check itself, as the suites hold it (every suite uses the same one)."""
    doc = json.loads((PROJECT_ROOT / "expectations" / "anpr_reads.json").read_text(encoding="utf-8"))
    (regex,) = [
        e["kwargs"]["regex"]
        for e in doc["expectations"]
        if e["type"] == "expect_column_values_to_match_regex" and e["kwargs"]["column"] == "plate"
    ]
    return re.compile(regex)


PLATE_CHECK = _plate_regex()


# ------------------------------------------------------------------------------ strategies
def _run(alphabet: str, lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=lo, max_size=hi)


#: Every shape the plate check accepts, as (first part, second part): a plate may be written with
#: one space between them. Shapes: current AB12CDE, prefix A123BCD, suffix ABC123D, dateless and
#: Northern Irish ABZ1234 / NIA7777 and 1234AB.
SHAPES = st.one_of(
    st.tuples(st.builds(str.__add__, _run(LETTERS, 2, 2), _run(DIGITS, 2, 2)), _run(LETTERS, 3, 3)),
    st.tuples(st.builds(str.__add__, _run(LETTERS, 1, 1), _run(DIGITS, 1, 3)), _run(LETTERS, 3, 3)),
    st.tuples(_run(LETTERS, 3, 3), st.builds(str.__add__, _run(DIGITS, 1, 3), _run(LETTERS, 1, 1))),
    st.tuples(_run(LETTERS, 1, 3), _run(DIGITS, 1, 4)),
    st.tuples(_run(DIGITS, 1, 4), _run(LETTERS, 1, 3)),
)


@st.composite
def written_plates(draw: st.DrawFn) -> str:
    """A plate the plate check accepts, as a force may write it: unspaced in any case; spaced in
    upper case (and the current format spaced in lower case too)."""
    first, second = draw(SHAPES)
    plate = first + second
    assert PLATE_CHECK.fullmatch(plate), plate
    spaced = draw(st.booleans())
    current = len(first) == 4 and first[:2].isalpha() and len(second) == 3
    lower = draw(st.booleans()) and (not spaced or current)
    text = f"{first} {second}" if spaced else plate
    return text.lower() if lower else text


@st.composite
def mixed_runs(draw: st.DrawFn) -> str:
    """Any run of 2-8 letters (either case) and digits holding both (malformed plates: 1A2B3C4D)."""
    run = draw(st.text(LETTERS + LETTERS.lower() + DIGITS, min_size=2, max_size=8))
    letter = draw(st.sampled_from(LETTERS + LETTERS.lower()))
    digit = draw(st.sampled_from(DIGITS))
    i = draw(st.integers(0, len(run)))
    j = draw(st.integers(0, len(run) + 1))
    out = run[:i] + letter + run[i:]
    out = out[:j] + digit + out[j:]
    return out[:8] if any(c.isalpha() for c in out[:8]) and any(c.isdigit() for c in out[:8]) else letter + digit


#: Random text around a plate: anything, then a separator that is not an ASCII letter or digit
#: (a plate glued to other letters or digits is a longer run, not a plate: see the module).
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
SEPARATOR = st.text(
    st.characters(codec="utf-8").filter(lambda c: not (c.isascii() and c.isalnum())), min_size=1, max_size=3
)


def _leaked(plate: str, text: str) -> bool:
    """The plate as written, or normalised, as a word of ``text`` (how tests/integration's scanner looks)."""
    words = [m.group() for m in _ALNUM.finditer(text)]
    normalised = re.sub(r"\s+", "", plate)
    if normalised in words or normalised.upper() in words or normalised.lower() in words:
        return True
    return " " in plate and re.search(rf"(?<![A-Za-z0-9]){re.escape(plate)}(?![A-Za-z0-9])", text) is not None


# -------------------------------------------------------------------------------- redact_text
@settings(max_examples=400, deadline=None)
@given(written_plates(), TEXT, SEPARATOR, SEPARATOR, TEXT)
def test_no_plate_the_plate_check_accepts_survives_redaction(
    plate: str, before: str, sep1: str, sep2: str, after: str
) -> None:
    text = before + sep1 + plate + sep2 + after
    assert not _leaked(plate, str(redact_text(text))), (plate, text, redact_text(text))


@settings(max_examples=300, deadline=None)
@given(mixed_runs(), TEXT, SEPARATOR, SEPARATOR, TEXT)
def test_no_run_of_plate_length_with_letters_and_digits_survives(
    run: str, before: str, sep1: str, sep2: str, after: str
) -> None:
    text = before + sep1 + run + sep2 + after
    assert not _leaked(run, str(redact_text(text))), (run, text, redact_text(text))


@pytest.mark.parametrize(
    "plate",
    ["ABZ1234", "1234AB", "NIA 7777", "NIA7777", "nia7777", "1A2B3C4D", "AB12CDE", "ab12 cde", "A123 BCD", "ABC 123D"],
)
def test_the_shapes_named_in_the_issue_are_redacted(plate: str) -> None:
    assert redact_text(f"seen {plate}, twice") == "seen [plate], twice"


@pytest.mark.parametrize(
    "text",
    [
        "camera_id, read_at, vrm, Crime ID, location.lat",  # column names: letters only, or letters and _
        "NOR-CAM-0001 grid 612345 298765, ref 12345678901, 999",  # runs of digits only or letters only
        "LSOA E01000001",  # longer than a plate
        "3 of 5 values in 2026",  # lower-case words and numbers, not a plate
        "hash <len 7, sha-256 3f1c0a9b2e4d>",  # a description survives: its hash is longer than a plate
    ],
)
def test_what_is_not_plate_like_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_road_numbers_are_redacted_because_they_are_plate_shaped() -> None:
    """The price of catching dateless plates: A14 is a valid registration as well as a road."""
    assert redact_text("On or near A14, B1085") == "On or near [plate], [plate]"


# ----------------------------------------------------------------------------------- describe
def test_describe_gives_length_and_hash_never_the_value() -> None:
    digest = hashlib.sha256(b"AB12CDE").hexdigest()[:12]
    assert describe("AB12CDE") == f"<len 7, sha-256 {digest}>"
    assert describe(b"AB12CDE") == f"<len 7, sha-256 {digest}>"
    assert describe("é") == f"<len 1, sha-256 {hashlib.sha256('é'.encode()).hexdigest()[:12]}>"
    assert describe("\ud800").startswith("<len 1, sha-256 ")  # a lone surrogate is still described
    assert describe(None) == "<null>"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("camera_id", True),
        ("Crime ID", True),
        ("camera.location.lat", True),
        ("AB12CDE", False),
        ("col1", False),  # letters and digits: plate-shaped (dateless COL1)
        ("NIA 7777", False),
        ("x" * 41, False),  # too long
        ("read-at", False),  # not an identifier
        ("07700 900123", False),
        ("", False),
    ],
)
def test_a_name_is_shown_only_when_it_is_a_safe_identifier(name: str, safe: bool) -> None:
    assert is_safe_name(name) is safe
    shown = describe_name(name, position=3)
    assert (shown == repr(name)) is safe
    if not safe:
        assert shown == f"column 3 {describe(name)}"
    assert describe_name(name, known={name}) == repr(name)  # the contract's own names are shown


def test_a_header_that_is_a_record_is_counted_not_named() -> None:
    assert describe_names(["R1", "AB12CDE", "x"], known={"read_id", "vrm"}) == (
        "3 cell(s), none a column of the contract (no header line?), names withheld"
    )
    got = describe_names(["read_id", "QZX4821", "notes"], known={"read_id"})
    assert got == f"'read_id', column 2 {describe('QZX4821')}, 'notes'"


@given(st.lists(st.text(max_size=12), min_size=1, max_size=40))
def test_a_described_header_holds_no_unsafe_cell(cells: list[str]) -> None:
    out = describe_names(cells, known={"read_id"})
    for cell in cells:
        if cell and not is_safe_name(cell) and cell != "read_id" and len(cell) > 2:
            assert repr(cell) not in out


def test_describe_error_keeps_the_parsers_words_and_withholds_the_row() -> None:
    exc = pa.ArrowInvalid('CSV parse error: Expected 7 columns, got 5: "R1","QZX 4821",52.1,"x","y"')
    got = describe_error(exc)
    assert got.startswith("ArrowInvalid CSV parse error: Expected 7 columns, got 5 (rest of the message withheld: ")
    assert "QZX" not in got and "R1" not in got
    assert "AB12CDE" not in describe_error(ValueError("could not convert string to float: 'AB12CDE'"))


# ------------------------------------------------------------------------------ the readers
@pytest.fixture(scope="module")
def registry():  # type: ignore[no-untyped-def]
    return load_registry(Settings.from_env().config_dir)


HEADER = b"read_id,read_at,camera_id,latitude,longitude,vrm"
ROWS = [
    f"R{i},2026-11-27T01:00:00Z,NFK-CAM-0001,52.6,1.2,{p}".encode()
    for i, p in enumerate(["QZX4821", "4821QZ", "QIA 7461", "1Q2Z3X4W", "XY34 FGH"], 1)
]
PLATES = ["QZX4821", "4821QZ", "QIA", "7461", "1Q2Z3X4W", "XY34", "FGH"]


def _read(raw: bytes, registry, force: str = "norfolk"):  # type: ignore[no-untyped-def]
    contract = registry.contract(force, "anpr_reads")
    report = ReadReport(contract)
    batches = list(read_extract(lambda: io.BytesIO(raw), contract, registry, report))
    return batches, report


def _assert_no_plate(text: str) -> None:
    assert not [p for p in PLATES if p in text], text


@pytest.mark.parametrize("tail", [b"\r", b""])
def test_a_csv_with_cr_only_line_ends_is_refused_whole_by_length_and_hash(registry, tail: bytes) -> None:  # type: ignore[no-untyped-def]
    raw = b"\r".join([HEADER, *ROWS]) + tail
    with pytest.raises(ExtractError) as caught:
        _read(raw, registry)
    message = str(caught.value)
    assert "CR-only line endings" in message and f"byte offset {len(HEADER)}" in message
    assert describe(raw.removesuffix(b"\r")) in message
    _assert_no_plate(message)


def test_a_first_line_longer_than_a_header_is_refused_whole(registry) -> None:  # type: ignore[no-untyped-def]
    raw = HEADER + b"," + b",".join([b"QZX4821"] * (MAX_HEADER_BYTES // 8)) + b"\n" + ROWS[0] + b"\n"
    with pytest.raises(ExtractError, match=f"no line end in the first {MAX_HEADER_BYTES} bytes") as caught:
        _read(raw, registry)
    _assert_no_plate(str(caught.value))
    no_newline = b",".join([b"QZX4821"] * (MAX_HEADER_BYTES // 4))
    with pytest.raises(ExtractError, match="at least <len"):
        header_line(no_newline)


def test_crlf_and_a_header_only_file_are_still_read() -> None:
    assert header_line(HEADER + b"\r\n" + ROWS[0] + b"\r\n") == HEADER
    assert header_line(HEADER) == HEADER


def test_a_file_without_its_header_line_is_refused_without_naming_its_cells(registry) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExtractError, match=r"names withheld") as caught:
        _read(b"\n".join(ROWS) + b"\n", registry)
    _assert_no_plate(str(caught.value))


def test_a_header_missing_a_column_describes_its_unknown_cells(registry) -> None:  # type: ignore[no-untyped-def]
    raw = b"read_id,read_at,camera_id,latitude,longitude,QZX4821\n" + ROWS[0] + b"\n"
    with pytest.raises(ExtractError) as caught:
        _read(raw, registry)
    message = str(caught.value)
    assert "missing required column(s) plate ('vrm')" in message
    assert f"'camera_id', 'latitude', 'longitude', column 6 {describe('QZX4821')}" in message
    _assert_no_plate(message)


def test_an_invalid_header_encoding_is_named_by_offset(registry) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExtractError, match=r"header is not valid utf-8: byte offset 3: invalid start byte"):
        _read(b"rea\xffd_id,QZX4821\n" + ROWS[0] + b"\n", registry)


def test_every_reject_and_warning_of_a_hostile_csv_holds_no_plate(registry) -> None:  # type: ignore[no-untyped-def]
    bad = [b"R9,QZX4821,x", b'R10,"4821QZ,2026', b"R11," + b"QIA 7461 " * 3000, b"R12,\x00,1Q2Z3X4W,a,b,c"]
    raw = HEADER + b"\n" + b"\n".join([*ROWS, *bad]) + b"\n"
    batches, report = _read(raw, registry)
    details = [f"{r.reason} {r.detail}" for b in batches for r in b.rejects]
    errors = [e for b in batches for e in b.table.column("_error").to_pylist() if e]
    assert len(details) == 3 and errors == ["nul_byte"]  # the NUL row has its six fields: a row with an error
    _assert_no_plate(" ".join(details) + str(report.warning))


# ------------------------------------------------------------------------------ schema drift
def test_drift_names_safe_columns_and_describes_the_rest(registry) -> None:  # type: ignore[no-untyped-def]
    contract = registry.contract("norfolk", "anpr_reads")
    cfg = load_config(Settings.from_env().config_dir)
    columns = ["read_id", "read_at", "camera_id", "latitude", "longitude", "vrm", "QZX4821", "notes", "QIA 7461"]
    drift = detect_drift(contract, columns, ExtractTally(), cfg)
    assert drift.added == [f"column 7 {describe('QZX4821')}", "notes", f"column 9 {describe('QIA 7461')}"]
    text = json.dumps(drift.to_json()) + " ".join(drift.describe())
    assert f"new column(s) column 7 {describe('QZX4821')}, 'notes'" in text
    _assert_no_plate(text)
    # renamed: the dropped column's look-alike is described the same way
    renamed = detect_drift(
        contract, ["read_id", "read_at", "camera_id", "latitude", "longitude", "vrm1"], ExtractTally(), cfg
    )
    assert renamed.renamed and renamed.renamed[0]["to"] == f"column 6 {describe('vrm1')}"
    assert f"renamed 'vrm' -> column 6 {describe('vrm1')}" in " ".join(renamed.describe())


# ---------------------------------------------------------------------------- Great Expectations
def test_gx_results_hold_positions_not_values() -> None:
    """The result format the hub asks GX for lists no failing value (``exclude_unexpected_values``),
    and an expectation's exception comes back described."""
    import great_expectations as gx

    from xforce.quality import gxworker
    from xforce.quality.validate import RESULT_FORMAT, load_suite

    doc = load_suite(Settings.from_env().expectations_dir, "anpr_reads")
    expectations = [e for e in doc["expectations"] if e["kwargs"].get("column") == "plate"]
    frame = pa.table({"plate": ["AB12CDE", "1Q2Z3X4W", "QIA 7461"]})
    batch = gxworker._batch_definition().get_batch(batch_parameters={"dataframe": frame.to_pandas()})
    result = batch.validate(gx.ExpectationSuite(name="p", expectations=expectations), result_format=RESULT_FORMAT)
    regex = next(r for r in result.results if r.expectation_config.type == "expect_column_values_to_match_regex")
    assert regex.result["unexpected_index_list"] == [1, 2]
    text = json.dumps(result.to_json_dict())
    assert "1Q2Z3X4W" not in text and "QIA 7461" not in text
    suite = {
        "name": "s",
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}}],
    }
    (raised,) = gxworker.execute(frame, suite, {}, RESULT_FORMAT)
    assert raised.exception == 'Error: The column "nope" in BatchData does not exist.'


def test_the_docs_do_not_promise_less_than_the_code() -> None:
    privacy = (Path(PROJECT_ROOT) / "docs" / "privacy.md").read_text(encoding="utf-8")
    assert "describe" in privacy and "cannot be told from ordinary text and are not matched" not in privacy
