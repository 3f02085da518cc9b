"""Small unit tests of the pure building blocks: times, coordinates, codes, plates, tokens,
contracts, the ledger, storage zones and duplicate detection."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import yaml

from xforce.errors import ConfigError, UnsafePathError
from xforce.exchange.seen_ids import SeenIds
from xforce.intake.contracts import DatasetContract, Registry, load_registry
from xforce.intake.normalise import map_codes, normalise_plate, parse_times, to_wgs84
from xforce.privacy.tokens import tokenise
from xforce.settings import PROJECT_ROOT
from xforce.store.ledger import Ledger
from xforce.store.zones import Zone

pytestmark = pytest.mark.unit

UTC = dt.UTC
CONFIG = PROJECT_ROOT / "config"


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, microsecond: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(str(CONFIG))


def contract(registry: Registry, family: str, dataset: str = "anpr_reads") -> DatasetContract:
    return registry.contracts[(family, dataset)]


def times(values: list[str | None], c: DatasetContract) -> list[dt.datetime | None]:
    out = parse_times(pa.array(values, pa.string()), c)
    # Time-zone aware microseconds. (Local-time families come back tagged Europe/London, not UTC as the
    # docstring says; the instants are right and _conform casts them to the UTC schema on write.)
    assert pa.types.is_timestamp(out.type) and out.type.unit == "us" and out.type.tz in ("UTC", c.timezone)
    return [None if v is None else v.astimezone(UTC) for v in out.to_pylist()]


# ------------------------------------------------------------------------------ parse_times
def test_parse_times_iso_utc(registry: Registry) -> None:
    c = contract(registry, "shared_csv")
    got = times(
        [
            "2026-11-27T21:14:03Z",
            "2026-06-01T00:00:00Z",
            None,
            "",
            "garbage",
            "27/11/2026 21:14:03",
            "2026-11-27 21:14:03",
            "2026-13-01T00:00:00Z",
        ],
        c,
    )
    assert got == [utc(2026, 11, 27, 21, 14, 3), utc(2026, 6, 1), None, None, None, None, None, None]


def test_parse_times_epoch_ms(registry: Registry) -> None:
    c = contract(registry, "eastern_jsonl")
    ms = int(utc(2026, 11, 27, 21, 14, 3, 250_000).timestamp() * 1000)
    got = times(
        [str(ms), f" {ms} ", "0", None, "abc", "1.5e12", "1795741773000.0", "253402300800000", "-253402300800000"], c
    )
    assert got == [utc(2026, 11, 27, 21, 14, 3, 250_000)] * 2 + [utc(1970, 1, 1)] + [None] * 6


def test_parse_times_local_london_time_follows_the_clocks(registry: Registry) -> None:
    c = contract(registry, "southern_bng")
    assert (c.timezone, c.ambiguous, c.nonexistent) == ("Europe/London", "earliest", "shift_forward")
    got = times(
        [
            "27/11/2026 21:14:03",  # GMT: UTC+0
            "15/07/2026 12:00:00",  # BST: UTC+1
            "25/10/2026 00:59:59",  # before the repeated hour, still BST
            "25/10/2026 01:30:00",  # repeated hour: the first (BST) occurrence
            "25/10/2026 02:00:00",  # after the change: GMT
            "29/03/2026 00:59:59",  # just before the gap: GMT
            "29/03/2026 01:30:00",  # missing hour: moved to the first existing time, 02:00 BST
            "29/03/2026 02:00:00",  # first time after the gap, BST
            "2026-11-27T21:14:03Z",  # another family's format
            "27/11/2026",
            "garbage",
            None,
        ],
        c,
    )
    assert got == [
        utc(2026, 11, 27, 21, 14, 3),
        utc(2026, 7, 15, 11),
        utc(2026, 10, 24, 23, 59, 59),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 2),
        utc(2026, 3, 29, 0, 59, 59),
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 1),
        None,
        None,
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("family", "value"),
    [
        ("southern_bng", "31/02/2026 10:00:00"),
        ("southern_bng", "29/02/2026 10:00:00"),  # 2026 is no leap year
        ("shared_csv", "2026-02-30T00:00:00Z"),
        ("shared_csv", "2026-04-31T12:00:00Z"),
    ],
)
def test_parse_times_impossible_calendar_date_is_null(registry: Registry, family: str, value: str) -> None:
    assert times([value], contract(registry, family)) == [None]


@pytest.mark.parametrize("family", ["shared_csv", "southern_bng", "eastern_jsonl"])
def test_parse_times_of_repeated_values_match_parsing_every_row(registry: Registry, family: str) -> None:
    """Batches of repeated times are parsed once per distinct value: the same answers, row for row."""
    from xforce.intake.normalise import _parse_times

    c = contract(registry, family)
    samples = {
        "shared_csv": ["2026-11-27T21:14:03Z", "2026-02-30T00:00:00Z", "garbage", "", None],
        "southern_bng": ["27/11/2026 21:14:03", "31/02/2026 10:00:00", "25/10/2026 01:30:00", "x", None],
        "eastern_jsonl": ["1795741773000", "abc", "99999999999999999999", " 1795741773250 ", None],
    }[family]
    col = pa.array([samples[i % len(samples)] for i in range(1000)], pa.string())
    assert parse_times(col, c).to_pylist() == _parse_times(col, c).to_pylist()
    assert parse_times(col, c).null_count == _parse_times(col, c).null_count > 0


def test_parse_times_epoch_beyond_int64_is_null(registry: Registry) -> None:
    assert times(["99999999999999999999", "1795741773000"], contract(registry, "eastern_jsonl"))[0] is None


# -------------------------------------------------------------------------------- to_wgs84
def test_to_wgs84_converts_british_national_grid() -> None:
    # Norwich Castle, about E 623,200 N 308,500 -> 52.628 N, 1.296 E
    lat, lon = to_wgs84(pa.array([623200.0, None, 623200.0]), pa.array([308500.0, None, None]), "EPSG:27700")
    assert lat.type == lon.type == pa.float64()
    assert lat[0].as_py() == pytest.approx(52.628, abs=0.01)
    assert lon[0].as_py() == pytest.approx(1.296, abs=0.01)
    assert lat.null_count == lon.null_count == 2  # a missing easting or northing leaves the point null
    assert lat[1].as_py() is None and lon[2].as_py() is None


def test_to_wgs84_keeps_wgs84_points() -> None:
    lat, lon = to_wgs84(pa.array([1.2965, None]), pa.array([52.6284, None]), "EPSG:4326")
    assert lat[0].as_py() == pytest.approx(52.6284, abs=1e-9) and lon[0].as_py() == pytest.approx(1.2965, abs=1e-9)
    assert lat[1].as_py() is None and lon[1].as_py() is None


# ------------------------------------------------------------------------- plates and codes
def test_normalise_plate() -> None:
    got = normalise_plate(pa.array(["ab12 cde", " AB12\tCDE ", "AB12CDE", "", "   ", None, "ab1\u00e9"], pa.string()))
    assert got.to_pylist() == ["AB12CDE", "AB12CDE", "AB12CDE", None, None, None, "AB1\u00c9"]
    clean = normalise_plate(pa.array(["ab12cde", "AB12CDE", None], pa.string()))  # no white space anywhere
    assert clean.to_pylist() == ["AB12CDE", "AB12CDE", None]


def test_map_codes_unknown_is_null(registry: Registry) -> None:
    offences = contract(registry, "shared_csv", "incidents").codes["offence"]
    got = map_codes(pa.array(["HC", " POA ", "ZZZ", "", None], pa.string()), offences)
    assert got.to_pylist() == ["hare_coursing", "poaching", None, None, None]
    southern = contract(registry, "southern_bng", "incidents").codes["offence"]
    assert map_codes(pa.array(["Theft (rural)", "HC"]), southern).to_pylist() == ["rural_theft", None]


# ------------------------------------------------------------------------------- tokenise
KEY_A = b"unit-test-key-A-0123456789abcdef"
KEY_B = b"unit-test-key-B-0123456789abcdef"


def test_tokenise_is_keyed_deterministic_and_keeps_nulls() -> None:
    plates = pa.array(["AB12CDE", "XY34ZZZ", None, "AB12CDE"], pa.string())
    first = tokenise(plates, KEY_A).to_pylist()
    assert tokenise(plates, KEY_A).to_pylist() == first  # deterministic for a key
    assert first[0] == first[3] and first[0] != first[1]  # same plate, same token; different plates differ
    assert first[2] is None
    assert first[0] == hmac.new(KEY_A, b"AB12CDE", hashlib.sha256).hexdigest()
    other = tokenise(plates, KEY_B).to_pylist()
    assert other[2] is None
    assert all(a != b for a, b in zip(first, other, strict=True) if a is not None)  # another key, other tokens
    for plate, token in zip(plates.to_pylist(), first, strict=True):
        if plate is not None:
            assert len(token) == 64 and plate not in token and token != plate


def test_tokenise_accepts_chunked_arrays() -> None:
    chunked = pa.chunked_array([["AB12CDE", None], ["AB12CDE"]], pa.string())
    assert tokenise(chunked, KEY_A).to_pylist() == tokenise(pa.array(["AB12CDE", None, "AB12CDE"]), KEY_A).to_pylist()


# ------------------------------------------------------------------------------ contracts
def test_registry_has_seven_forces_in_three_families(registry: Registry) -> None:
    assert sorted(registry.forces) == [
        "bedfordshire",
        "cambridgeshire",
        "essex",
        "hertfordshire",
        "kent",
        "norfolk",
        "suffolk",
    ]
    families = {f.code: f.family for f in registry.forces.values()}
    assert families == {
        "norfolk": "shared_csv",
        "suffolk": "shared_csv",
        "cambridgeshire": "eastern_jsonl",
        "bedfordshire": "eastern_jsonl",
        "hertfordshire": "eastern_jsonl",
        "essex": "southern_bng",
        "kent": "southern_bng",
    }
    shape = {
        fam: (c.format, c.compression, c.encoding, c.delimiter, c.crs, c.timestamp_format, c.timezone)
        for fam in ("shared_csv", "eastern_jsonl", "southern_bng")
        for c in [registry.contract(next(k for k, v in families.items() if v == fam), "anpr_reads")]
    }
    assert shape["shared_csv"] == ("csv", None, "utf-8", ",", "EPSG:4326", "%Y-%m-%dT%H:%M:%SZ", "UTC")
    assert shape["eastern_jsonl"][:2] == ("jsonl", "gzip")
    assert shape["eastern_jsonl"][4:] == ("EPSG:4326", "epoch_ms", "UTC")
    assert shape["southern_bng"] == ("csv", None, "cp1252", ";", "EPSG:27700", "%d/%m/%Y %H:%M:%S", "Europe/London")
    assert len({s[:5] for s in shape.values()}) == 3
    assert registry.contract("kent", "seizures").fields["x"] == "Easting"
    assert registry.police_uk().header is not None and registry.police_uk().time_precision == "month"


def test_registry_refuses_unknown_force_and_dataset(registry: Registry) -> None:
    with pytest.raises(ConfigError, match="unknown force"):
        registry.force("atlantis")
    with pytest.raises(ConfigError, match="unknown dataset"):
        registry.contract("norfolk", "parking")


def _broken_config(tmp_path: Path, break_it: str) -> Path:
    root = tmp_path / "config"
    shutil.copytree(CONFIG, root)
    if break_it == "required_field":
        path = root / "contracts" / "shared_csv.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        del doc["datasets"]["anpr_reads"]["fields"]["timestamp"]
    elif break_it == "unknown_family":
        path = root / "forces.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["forces"]["kent"]["family"] = "kentish_xml"
    else:  # both lat/lon and x/y
        path = root / "contracts" / "southern_bng.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        doc["datasets"]["incidents"]["fields"]["lat"] = "Latitude"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        ("required_field", r"shared_csv/anpr_reads maps no source for required field\(s\) \['timestamp'\]"),
        ("unknown_family", "kentish_xml"),
        ("both_coordinate_kinds", "either lat/lon or x/y"),
    ],
)
def test_broken_config_raises_config_error(tmp_path: Path, break_it: str, message: str) -> None:
    root = _broken_config(tmp_path, break_it)
    with pytest.raises(ConfigError, match=message):
        load_registry(str(root))


def test_copied_config_loads(tmp_path: Path) -> None:
    root = tmp_path / "config"
    shutil.copytree(CONFIG, root)
    assert load_registry(str(root)).forces == load_registry(str(CONFIG)).forces


# --------------------------------------------------------------------------------- ledger
@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}", str(PROJECT_ROOT / "sql"))


def test_ledger_record_merge_get_round_trip(ledger: Ledger, tmp_path: Path) -> None:
    n = "2026-11-27"
    assert ledger.get(n, "norfolk", "incidents") is None
    files = [{"name": "incidents.csv", "sha256": "ab" * 32, "bytes": 10, "raw": "norfolk/x"}]
    ledger.record(
        n,
        "norfolk",
        "incidents",
        replace=True,
        status="landed",
        files=files,
        sha256="ab" * 32,
        bytes=10,
        received_at="2026-11-28T01:00:00+00:00",
        run_id="r1",
    )
    ledger.record(
        n,
        "norfolk",
        "incidents",
        status="validated",
        rows_in=3,
        rows_published=2,
        rows_quarantined=1,
        reasons={"bad_plate": 1},
        staged={"published": "p", "quarantine": "q"},
    )
    row = ledger.get(n, "norfolk", "incidents")
    assert row is not None
    assert (row["status"], row["rows_in"], row["rows_published"], row["rows_quarantined"]) == ("validated", 3, 2, 1)
    assert row["files"] == files and row["sha256"] == "ab" * 32 and row["run_id"] == "r1"  # merged, not lost
    assert row["reasons"] == {"bad_plate": 1} and row["staged"] == {"published": "p", "quarantine": "q"}
    assert row["received_at"] == "2026-11-28T01:00:00+00:00" and row["updated_at"]

    ledger.record(n, "norfolk", "incidents", staged=None)  # explicit None clears a JSON column
    assert ledger.get(n, "norfolk", "incidents")["staged"] is None  # type: ignore[index]
    ledger.record(n, "norfolk", "incidents", replace=True, status="missing")
    again = ledger.get(n, "norfolk", "incidents")
    assert again is not None and again["status"] == "missing"
    assert again["files"] is None and again["rows_in"] is None and again["reasons"] is None

    with pytest.raises(ValueError, match="unknown ledger columns"):
        ledger.record(n, "norfolk", "incidents", colour="blue")
    # persisted: a second Ledger on the same database sees the same row, and its DDL is idempotent
    other = Ledger(ledger.url, str(PROJECT_ROOT / "sql"))
    assert other.get(n, "norfolk", "incidents") == ledger.get(n, "norfolk", "incidents")


def test_ledger_extracts_and_events(ledger: Ledger) -> None:
    for night, force, dataset in [
        ("2026-11-27", "suffolk", "seizures"),
        ("2026-11-27", "norfolk", "seizures"),
        ("2026-11-27", "norfolk", "anpr_reads"),
        ("2026-11-26", "kent", "incidents"),
    ]:
        ledger.record(night, force, dataset, status="published", rows_in=1)
    assert [(r["force"], r["dataset"]) for r in ledger.extracts("2026-11-27")] == [
        ("norfolk", "anpr_reads"),
        ("norfolk", "seizures"),
        ("suffolk", "seizures"),
    ]
    assert [r["night"] for r in ledger.extracts()] == ["2026-11-26"] + ["2026-11-27"] * 3

    ledger.event(
        "landed",
        night="2026-11-27",
        force="norfolk",
        dataset="incidents",
        detail={"sha256": "ab", "from": "landing"},
        run_id="r1",
    )
    ledger.event("refused_file", night="2026-11-27", force="norfolk", dataset="incidents", detail="x: link")
    ledger.event("unknown_force_folder", night="2026-11-26", detail={"folder": "atlantis"})
    ledger.event("started")
    got = ledger.events("2026-11-27")
    assert sorted(e["event"] for e in got) == ["landed", "refused_file"]  # same-second order is not defined
    by_kind = {e["event"]: e for e in got}
    assert json.loads(by_kind["landed"]["detail"]) == {"sha256": "ab", "from": "landing"}
    assert by_kind["landed"]["run_id"] == "r1" and by_kind["landed"]["force"] == "norfolk"
    assert json.loads(by_kind["refused_file"]["detail"]) == "x: link"
    assert len({e["event_id"] for e in ledger.events()}) == len(ledger.events()) == 4
    assert [e["event"] for e in ledger.events("2026-11-26")] == ["unknown_force_folder"]


# -------------------------------------------------------------------------------- storage
def _all_files(root: Path) -> list[str]:
    return sorted(str(Path(d, f).relative_to(root)) for d, _, fs in os.walk(root) for f in fs)


def test_zone_write_bytes_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    zone = Zone(str(tmp_path / "zone"))
    zone.write_bytes("a/b/c.bin", b"first")
    zone.write_bytes("a/b/c.bin", b"second, longer")
    zone.write_json("a/doc.json", {"b": 1, "a": [1, 2]})
    assert zone.read_bytes("a/b/c.bin") == b"second, longer"
    assert zone.read_json("a/doc.json") == {"a": [1, 2], "b": 1}
    assert _all_files(tmp_path / "zone") == ["a/b/c.bin", "a/doc.json"]  # no .tmp file left behind
    assert zone.exists("a/b/c.bin") and zone.is_dir("a/b") and not zone.exists("a/b/nope")
    with pytest.raises(UnsafePathError):
        zone.write_bytes("../escape.bin", b"x")


def test_zone_move_from_replaces_and_copy_from_keeps_the_source(tmp_path: Path) -> None:
    src, dst = Zone(str(tmp_path / "src")), Zone(str(tmp_path / "dst"))
    src.write_bytes("staged/part-0.parquet", b"new night")
    dst.write_bytes("curated/part-0.parquet", b"old night")
    dst.move_from(src, "staged/part-0.parquet", "curated/part-0.parquet")
    assert dst.read_bytes("curated/part-0.parquet") == b"new night"
    assert not src.exists("staged/part-0.parquet")
    src.write_bytes("x/f.csv", b"raw bytes")
    dst.copy_from(src, "x/f.csv", "raw/f.csv")
    assert dst.read_bytes("raw/f.csv") == src.read_bytes("x/f.csv") == b"raw bytes"
    assert _all_files(tmp_path / "dst") == ["curated/part-0.parquet", "raw/f.csv"]
    dst.delete("raw/f.csv")
    dst.delete("raw/f.csv")  # deleting twice is harmless
    assert not dst.exists("raw/f.csv")


def test_zone_list_files_sorted_with_sizes_and_symlinks(tmp_path: Path) -> None:
    zone = Zone(str(tmp_path / "zone"))
    for rel, data in [("n/b.csv", b"bb"), ("n/a.csv", b"a"), ("n/sub/c.csv", b"ccc"), ("n/.hidden", b"")]:
        zone.write_bytes(rel, data)
    (tmp_path / "zone" / "n" / "link.csv").symlink_to(tmp_path / "zone" / "n" / "a.csv")
    flat = zone.list_files("n")
    assert [(f.path, f.size, f.is_symlink) for f in flat] == [
        ("n/.hidden", 0, False),
        ("n/a.csv", 1, False),
        ("n/b.csv", 2, False),
        ("n/link.csv", 0, True),  # a link is listed, never followed (not even for its size)
    ]
    assert [f.path for f in zone.list_files("n", recursive=True)] == [
        "n/.hidden",
        "n/a.csv",
        "n/b.csv",
        "n/link.csv",
        "n/sub/c.csv",
    ]
    assert zone.list_files("missing") == [] and zone.list_dirs("n") == ["sub"]


def test_zone_sha256_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    zone = Zone(str(tmp_path / "zone"))
    data = hashlib.shake_256(b"seed").digest(1 << 16) * 129 + b"tail"  # > one 8 MiB read chunk
    zone.write_bytes("big.bin", data)
    zone.write_bytes("empty.bin", b"")
    assert zone.sha256("big.bin") == hashlib.sha256(data).hexdigest()
    assert zone.sha256("empty.bin") == hashlib.sha256(b"").hexdigest()


# ---------------------------------------------------------------------- first_occurrences
def test_first_occurrences_across_batches_sharing_seen() -> None:
    seen = SeenIds()
    first = seen.first_occurrences(pa.array(["a", "b", "a", None, None], pa.string()))
    assert first.type == pa.bool_()
    assert first.to_pylist() == [True, True, False, True, True]  # nulls are never duplicates
    assert len(seen) == 2
    second = seen.first_occurrences(pa.array(["b", "c", None, "c", "d"], pa.string()))
    assert second.to_pylist() == [False, True, True, False, True]
    assert len(seen) == 4
    assert all((a[:-1] < a[1:]).all() for a in seen.recent)  # each run kept sorted
    assert seen.first_occurrences(pa.array([], pa.string())).to_pylist() == []
    assert seen.first_occurrences(pa.array([None, None], pa.string())).to_pylist() == [True, True]


def test_first_occurrences_over_many_batches_matches_a_set() -> None:
    """With small in-memory runs most hashes live in the bucket files on disk: same answers."""
    rng = np.random.default_rng(3)
    seen, reference = SeenIds(), set()
    seen.RECENT_MAX = 8  # merge into the files early and often
    for _ in range(5):
        ids = [f"id-{v}" for v in rng.integers(0, 5000, 3000)]
        got = seen.first_occurrences(pa.array(ids, pa.string())).to_pylist()
        want = []
        for i in ids:
            want.append(i not in reference)
            reference.add(i)
        assert got == want
    assert len(seen) == len(reference) and seen.on_disk.sum() > len(reference) // 2
    stored = [seen._stored(b) for b in range(seen.BUCKETS)]
    assert all((a[:-1] < a[1:]).all() for a in stored)  # each bucket file sorted, no repeats
    folder = seen._dir.name
    assert os.listdir(folder)
    seen.close()
    assert not os.path.exists(folder)


def test_first_occurrences_keeps_row_order_in_large_batches() -> None:
    # DuckDB hashes the ids on several threads; a batch larger than its row groups (122,880 rows)
    # must come back in row order, or the wrong copy of a re-sent id would be kept.
    rng = np.random.default_rng(7)
    ids = [f"NFK-{v:09d}" for v in rng.integers(0, 300_000, 400_000)]
    got = np.asarray(SeenIds().first_occurrences(pa.array(ids, pa.string())).to_pylist())
    reference: set[str] = set()
    want = []
    for i in ids:
        want.append(i not in reference)
        reference.add(i)
    assert got.sum() == len(reference)
    assert got.tolist() == want


def test_stable_order_matches_the_stable_sort_with_many_ties() -> None:
    from xforce.hashing import stable_order

    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 17, 1000, 50_000):
        keys = rng.integers(0, max(1, n // 5), size=n, dtype=np.uint64)  # about five of each key
        assert (stable_order(keys) == np.argsort(keys, kind="stable")).all()
    distinct = rng.permutation(np.arange(10_000, dtype=np.uint64) * np.uint64(2**40))
    assert (stable_order(distinct) == np.argsort(distinct, kind="stable")).all()
