"""Unit tests for the synthetic extract generator (``xforce_tools.generate``).

The files are read back here with plain ``csv``/``json``/``gzip`` so the tests check the
documented formats (docs/extract-formats.md), not the generator's own helpers.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import itertools
import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from pyproj import Transformer

from xforce_tools import generate as gen

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

UTC = dt.UTC
LONDON = ZoneInfo("Europe/London")
NIGHT = dt.date(2026, 11, 27)
SEED = 7
SMALL: dict[str, Any] = {"anpr_reads": 300, "seizures": 12, "seed": SEED}
UK_PLATE = re.compile(  # current, prefix, suffix, dateless
    r"^([A-Z]{2}[0-9]{2}[A-Z]{3}|[A-Z][0-9]{1,3}[A-Z]{3}|[A-Z]{3}[0-9]{1,3}[A-Z]"
    r"|[0-9]{1,4}[A-Z]{1,3}|[A-Z]{1,3}[0-9]{1,4})$"
)
CURRENT_PLATE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z]{3}$")
INVALID = "invalid"
Truth = dict[str, Any]
FROM_BNG = Transformer.from_crs(27700, 4326, always_xy=True)

FAMILY_FILES = {
    "shared_csv": ("incidents.csv", "anpr_reads.csv", "seizures.csv"),
    "eastern_jsonl": ("incidents.jsonl.gz", "anpr_reads.jsonl.gz", "seizures.jsonl.gz"),
    "southern_bng": ("incidents.csv", "anpr_reads.csv", "seizures.csv"),
}
# canonical field -> native column/path, per family and dataset
FIELDS: dict[str, dict[str, dict[str, str]]] = {
    "shared_csv": {
        "incidents": {
            "id": "incident_id",
            "time": "occurred_at",
            "lat": "latitude",
            "lon": "longitude",
            "code": "offence_code",
            "plate": "vehicle_reg",
            "outcome": "outcome_code",
        },
        "anpr_reads": {
            "id": "read_id",
            "time": "read_at",
            "camera": "camera_id",
            "lat": "latitude",
            "lon": "longitude",
            "plate": "vrm",
        },
        "seizures": {
            "id": "seizure_id",
            "incident": "incident_id",
            "time": "seized_at",
            "code": "item_code",
            "qty": "quantity",
            "plate": "vrm",
            "lat": "latitude",
            "lon": "longitude",
        },
    },
    "eastern_jsonl": {
        "incidents": {
            "id": "ref",
            "time": "reported",
            "lat": "location.lat",
            "lon": "location.lon",
            "code": "crime.code",
            "plate": "vehicle.registration",
            "outcome": "result",
        },
        "anpr_reads": {
            "id": "ref",
            "time": "observed",
            "camera": "camera.id",
            "lat": "camera.location.lat",
            "lon": "camera.location.lon",
            "plate": "plate",
        },
        "seizures": {
            "id": "ref",
            "incident": "incident",
            "time": "seized",
            "code": "item.type",
            "qty": "item.count",
            "plate": "vehicle.registration",
            "lat": "location.lat",
            "lon": "location.lon",
        },
    },
    "southern_bng": {
        "incidents": {
            "id": "Ref",
            "time": "Date Time",
            "e": "Easting",
            "n": "Northing",
            "code": "Offence",
            "plate": "VRM",
            "outcome": "Outcome",
        },
        "anpr_reads": {
            "id": "Read Ref",
            "time": "Date Time",
            "camera": "Camera",
            "e": "Easting",
            "n": "Northing",
            "plate": "VRM",
        },
        "seizures": {
            "id": "Seizure Ref",
            "incident": "Incident Ref",
            "time": "Date Time",
            "code": "Item",
            "qty": "Qty",
            "plate": "VRM",
            "e": "Easting",
            "n": "Northing",
        },
    },
}
HEADERS = {
    (
        "shared_csv",
        "incidents",
    ): "incident_id,occurred_at,latitude,longitude,offence_code,outcome_code,vehicle_reg",
    ("shared_csv", "anpr_reads"): "read_id,read_at,camera_id,latitude,longitude,vrm",
    ("shared_csv", "seizures"): "seizure_id,incident_id,seized_at,item_code,quantity,vrm,latitude,longitude",
    ("southern_bng", "incidents"): "Ref;Date Time;Easting;Northing;Offence;Outcome;VRM",
    ("southern_bng", "anpr_reads"): "Read Ref;Date Time;Camera;Easting;Northing;VRM",
    ("southern_bng", "seizures"): "Seizure Ref;Incident Ref;Date Time;Item;Qty;VRM;Easting;Northing",
}
ITEM_DOG = {"DOG", "dog", "Dog"}
ITEM_VEHICLE = {"VEH", "vehicle", "Vehicle"}
OFFENCE_CODES = {
    "shared_csv": {"HC", "POA", "LSW", "RTH", "CDA", "VEH"},
    "eastern_jsonl": {"HARE-COURSING", "POACHING", "LIVESTOCK", "THEFT-RURAL", "DAMAGE", "VEHICLE"},
    "southern_bng": {
        "Hare coursing",
        "Poaching",
        "Livestock worrying",
        "Theft (rural)",
        "Criminal damage",
        "Vehicle crime",
    },
}
OUTCOME_CODES = {
    "shared_csv": {"UI", "CH", "NFA", "WRN"},
    "eastern_jsonl": {"OPEN", "CHARGED", "NFA", "WARNED"},
    "southern_bng": {"Under investigation", "Charged", "No further action", "Warning"},
}
EAST_OF_ENGLAND = (51.0, 53.2, -1.0, 2.0)  # lat_min, lat_max, lon_min, lon_max (generous)


# ------------------------------------------------------------------------------------------
# reading the files back


def _path(root: Path, force: str, dataset: str, night: dt.date = NIGHT) -> Path:
    fam = gen.FORCE_FAMILY[force]
    name = FAMILY_FILES[fam][gen.DATASETS.index(dataset)]
    return root / force / dataset / night.isoformat() / name


def _dig(obj: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def _raw_rows(root: Path, force: str, dataset: str, night: dt.date = NIGHT) -> list[tuple[str, dict]]:
    """(raw line, native record) for every data row of the extract."""
    fam = gen.FORCE_FAMILY[force]
    path = _path(root, force, dataset, night)
    if fam == "eastern_jsonl":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return [(line, json.loads(line)) for line in f.read().splitlines()]
    text = path.read_bytes().decode("utf-8" if fam == "shared_csv" else "cp1252")
    lines = text.splitlines()
    reader = csv.DictReader(io.StringIO(text), delimiter="," if fam == "shared_csv" else ";")
    records = list(reader)
    assert len(records) == len(lines) - 1  # no embedded newlines
    return [(line, dict(rec)) for line, rec in zip(lines[1:], records, strict=True)]


def _parse_time(fam: str, value: Any) -> dt.datetime | str | None:
    if value is None or value == "":
        return None
    try:
        if fam == "eastern_jsonl":
            return dt.datetime.fromtimestamp(value / 1000, UTC)
        if fam == "shared_csv":
            return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        local = dt.datetime.strptime(value, "%d/%m/%Y %H:%M:%S")
    except ValueError:
        return INVALID
    # fold=0: the first (BST) occurrence of a repeated time; a time in the spring gap keeps the
    # pre-transition offset, i.e. it is shifted forward by the gap
    return local.replace(tzinfo=LONDON).astimezone(UTC)


def _records(root: Path, force: str, dataset: str, night: dt.date = NIGHT) -> list[dict[str, Any]]:
    """Records in canonical form: id, time (UTC datetime / None / INVALID), lat, lon, plate, ..."""
    fam = gen.FORCE_FAMILY[force]
    fields = FIELDS[fam][dataset]
    out = []
    for raw, native in _raw_rows(root, force, dataset, night):
        values = {k: _dig(native, f) if fam == "eastern_jsonl" else native[f] for k, f in fields.items()}
        rec: dict[str, Any] = {"raw": raw, "native": native, **values}
        rec["time"] = _parse_time(fam, rec["time"])
        if fam == "southern_bng":
            e, n = rec.pop("e"), rec.pop("n")
            assert re.fullmatch(r"-?\d+", e) and re.fullmatch(r"-?\d+", n), (e, n)
            lon, lat = FROM_BNG.transform(float(e), float(n))
            rec["lat"], rec["lon"] = lat, lon
        else:
            rec["lat"], rec["lon"] = float(rec["lat"]), float(rec["lon"])
        out.append(rec)
    return out


def _window(night: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(night, dt.time(0), tzinfo=LONDON).astimezone(UTC)
    end = dt.datetime.combine(night + dt.timedelta(days=1), dt.time(0), tzinfo=LONDON).astimezone(UTC)
    return start, end


def _in_force_area(force: str, lat: float, lon: float, margin: float = 0.03) -> bool:
    clat, clon = gen.FORCE_CENTRE[force]
    spread = gen.SPREAD_DEG + margin
    return abs(lat - clat) <= spread and abs(lon - clon) <= spread


def _in_east(lat: float, lon: float) -> bool:
    lat0, lat1, lon0, lon1 = EAST_OF_ENGLAND
    return lat0 <= lat <= lat1 and lon0 <= lon <= lon1


def _norm(plate: str | None) -> str:
    return (plate or "").replace(" ", "").upper()


# ------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def night_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("landing")
    gen.generate_night(NIGHT, root, **SMALL)
    return root


@pytest.fixture(scope="module")
def truth(night_dir: Path) -> dict[str, Any]:
    return json.loads((night_dir / "_truth.json").read_text())


ALL = [(f, d) for f in gen.FORCES for d in gen.DATASETS]
CSV_EXTRACTS = [(f, d) for f, d in ALL if gen.FORCE_FAMILY[f] != "eastern_jsonl"]


# ------------------------------------------------------------------------------------------
# layout and formats


def test_layout_all_forces_and_datasets(night_dir: Path) -> None:
    files = {p.relative_to(night_dir).as_posix() for p in night_dir.rglob("*") if p.is_file()}
    expected = {_path(night_dir, f, d).relative_to(night_dir).as_posix() for f, d in ALL}
    assert files == expected | {"_truth.json"}
    assert len(expected) == 21


def test_public_constants() -> None:
    assert gen.FORCES == (
        "norfolk",
        "suffolk",
        "cambridgeshire",
        "bedfordshire",
        "hertfordshire",
        "essex",
        "kent",
    )
    assert gen.DATASETS == ("incidents", "anpr_reads", "seizures")
    assert set(gen.DEFECT_KINDS) == {
        "bad_plate",
        "out_of_region",
        "impossible_timestamp",
        "missing_required",
        "duplicate_id",
        "unknown_incident",
    }
    assert gen.file_name("kent", "anpr_reads") == "anpr_reads.csv"
    assert gen.file_name("bedfordshire", "seizures") == "seizures.jsonl.gz"


@pytest.mark.parametrize(("force", "dataset"), CSV_EXTRACTS)
def test_csv_header_delimiter_and_encoding(night_dir: Path, force: str, dataset: str) -> None:
    fam = gen.FORCE_FAMILY[force]
    data = _path(night_dir, force, dataset).read_bytes()
    data.decode("utf-8" if fam == "shared_csv" else "cp1252")  # strict
    header = data.split(b"\n", 1)[0].decode().replace('"', "")
    assert header == HEADERS[(fam, dataset)]


@pytest.mark.parametrize("force", ["cambridgeshire", "bedfordshire", "hertfordshire"])
def test_jsonl_gzip_header_is_deterministic(night_dir: Path, force: str) -> None:
    for dataset in gen.DATASETS:
        head = _path(night_dir, force, dataset).read_bytes()[:10]
        assert head[:2] == b"\x1f\x8b"
        assert head[3] & 0x08 == 0  # no FNAME
        assert head[4:8] == b"\0\0\0\0"  # mtime 0


def test_code_lists_and_ids(night_dir: Path) -> None:
    id_patterns = {
        "shared_csv": r"(NFK|SFK)-(INC|ANPR|SZ)-20261127-\d{6,}",
        "eastern_jsonl": r"(CAMBS|BEDS|HERTS)/(INC|ANPR|SZ)/20261127/\d{6,}",
        "southern_bng": r"(ESX|KNT)-[IRS]-20261127-\d{6,}",
    }
    for force, dataset in ALL:
        fam = gen.FORCE_FAMILY[force]
        recs = _records(night_dir, force, dataset)
        assert recs
        for rec in recs:
            assert re.fullmatch(id_patterns[fam], rec["id"]), rec["id"]
            assert rec["id"].isascii()
        if dataset == "incidents":
            assert {r["code"] for r in recs if r["code"]} <= OFFENCE_CODES[fam]
            assert {r["outcome"] for r in recs} <= OUTCOME_CODES[fam]
        if dataset == "seizures":
            items = {r["code"] for r in recs if r["code"]}
            assert items <= {
                "DOG",
                "VEH",
                "EQP",
                "dog",
                "vehicle",
                "equipment",
                "Dog",
                "Vehicle",
                "Equipment",
            }


def test_hare_coursing_is_common(tmp_path: Path) -> None:
    gen.generate_night(NIGHT, tmp_path, anpr_reads=0, datasets=["incidents"], incidents=200, seed=3)
    recs = _records(tmp_path, "norfolk", "incidents")
    share = sum(r["code"] == "HC" for r in recs) / len(recs)
    assert 0.2 < share < 0.4


# ------------------------------------------------------------------------------------------
# determinism


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, night_dir: Path) -> None:
    again = tmp_path / "again"
    gen.generate_night(NIGHT, again, **SMALL)
    for force, dataset in ALL:
        assert _path(again, force, dataset).read_bytes() == _path(night_dir, force, dataset).read_bytes()
    assert (again / "_truth.json").read_bytes() == (night_dir / "_truth.json").read_bytes()

    other = tmp_path / "other"
    gen.generate_night(NIGHT, other, **dict(SMALL, seed=SEED + 1))
    for force, dataset in ALL:
        assert _path(other, force, dataset).read_bytes() != _path(night_dir, force, dataset).read_bytes()


def test_other_night_differs_but_vehicles_recur(tmp_path: Path, night_dir: Path) -> None:
    nxt = NIGHT + dt.timedelta(days=1)
    gen.generate_night(nxt, tmp_path, forces=["norfolk"], datasets=["anpr_reads"], **SMALL)
    a = {_norm(r["plate"]) for r in _records(night_dir, "norfolk", "anpr_reads")}
    b = {_norm(r["plate"]) for r in _records(tmp_path, "norfolk", "anpr_reads", nxt)}
    assert len(a & b) > 10
    ids_a = {r["id"] for r in _records(night_dir, "norfolk", "anpr_reads")}
    ids_b = {r["id"] for r in _records(tmp_path, "norfolk", "anpr_reads", nxt)}
    assert not ids_a & ids_b  # ids are unique across nights too


# ------------------------------------------------------------------------------------------
# truth


@pytest.mark.parametrize(("force", "dataset"), ALL)
def test_truth_records_match_rows(night_dir: Path, truth: Truth, force: str, dataset: str) -> None:
    rows = _raw_rows(night_dir, force, dataset)
    entry = truth[force][dataset]
    assert entry["records"] == len(rows)
    if dataset == "anpr_reads":
        assert len(rows) == SMALL["anpr_reads"]
    if dataset == "seizures":
        assert len(rows) == SMALL["seizures"]
    if dataset == "incidents":
        assert 12 <= len(rows) <= 25
    ids = {r["id"] for r in _records(night_dir, force, dataset)}
    assert set(entry["defective"]) <= ids
    assert set(entry["defective"].values()) <= set(gen.DEFECT_KINDS)


@pytest.mark.parametrize(("force", "dataset"), ALL)
def test_every_applicable_defect_kind_appears(truth: Truth, force: str, dataset: str) -> None:
    kinds = set(truth[force][dataset]["defective"].values())
    expected = set(gen.DEFECT_KINDS)
    if dataset != "seizures":
        expected.discard("unknown_incident")
    assert kinds == expected == set(gen.applicable_defects(dataset))


def test_defect_rate_controls_volume(tmp_path: Path) -> None:
    tr = gen.generate_night(NIGHT, tmp_path, forces=["suffolk"], datasets=["anpr_reads"], anpr_reads=20_000)
    counts = Counter(tr["suffolk"]["anpr_reads"]["defective"].values())
    for kind in gen.applicable_defects("anpr_reads"):
        assert 250 <= counts[kind] <= 550, (kind, counts)  # 2% of 20k = 400
    clean = gen.generate_night(
        NIGHT, tmp_path / "clean", forces=["suffolk"], datasets=["anpr_reads"], anpr_reads=500, defect_rate=0
    )
    assert clean["suffolk"]["anpr_reads"]["defective"] == {}


@pytest.mark.parametrize(("force", "dataset"), ALL)
def test_duplicates_repeat_a_clean_row(night_dir: Path, truth: Truth, force: str, dataset: str) -> None:
    recs = _records(night_dir, force, dataset)
    defective = truth[force][dataset]["defective"]
    counts = Counter(r["id"] for r in recs)
    first: dict[str, str] = {}
    for rec in recs:
        first.setdefault(rec["id"], rec["raw"])
        assert rec["raw"] == first[rec["id"]]  # a repeated id is an exact copy
    dups = {i for i, k in defective.items() if k == "duplicate_id"}
    assert dups
    assert {i for i, c in counts.items() if c > 1} == dups
    assert sum(counts.values()) == truth[force][dataset]["records"]


@pytest.mark.parametrize(("force", "dataset"), ALL)
def test_defects_look_like_their_kind(night_dir: Path, truth: Truth, force: str, dataset: str) -> None:
    start, end = _window(NIGHT)
    defective = truth[force][dataset]["defective"]
    for rec in _records(night_dir, force, dataset):
        kind = defective.get(rec["id"])
        if kind == "bad_plate":
            assert rec["plate"] and not UK_PLATE.match(_norm(rec["plate"]))
            assert not UK_PLATE.match(re.sub(r"[^A-Z0-9]", "", _norm(rec["plate"])))
        elif kind == "out_of_region":
            assert not _in_east(rec["lat"], rec["lon"])
        elif kind == "impossible_timestamp":
            t = rec["time"]
            far = dt.timedelta(days=1)
            assert t == INVALID or (isinstance(t, dt.datetime) and (t < start - far or t > end + far))
        elif kind == "missing_required":
            required = {
                "incidents": ("time", "code"),
                "anpr_reads": ("time", "plate", "camera"),
                "seizures": ("time", "code"),
            }[dataset]
            assert any(rec[k] in (None, "") for k in required), rec["raw"]
        if kind != "missing_required":
            assert rec["time"] is not None and rec["id"]
        if kind != "bad_plate" and rec["plate"]:
            assert CURRENT_PLATE.match(_norm(rec["plate"])), rec["raw"]


@pytest.mark.parametrize("force", gen.FORCES)
def test_seizures_reference_clean_incidents(night_dir: Path, truth: Truth, force: str) -> None:
    incidents = _records(night_dir, force, "incidents")
    inc_ids = {r["id"] for r in incidents}
    inc_defective = truth[force]["incidents"]["defective"]
    clean_incidents = inc_ids - set(inc_defective)
    sz_defective = truth[force]["seizures"]["defective"]
    by_id = {r["id"]: r for r in incidents}
    for rec in _records(night_dir, force, "seizures"):
        if sz_defective.get(rec["id"]) == "unknown_incident":
            assert rec["incident"] not in inc_ids
        else:
            assert rec["incident"] in clean_incidents
            if sz_defective.get(rec["id"]) is None:
                assert rec["time"] >= by_id[rec["incident"]]["time"]


@pytest.mark.parametrize("force", gen.FORCES)
def test_seizure_items_plates_and_quantities(night_dir: Path, truth: Truth, force: str) -> None:
    defective = truth[force]["seizures"]["defective"]
    seen = set()
    for rec in _records(night_dir, force, "seizures"):
        if rec["id"] in defective:
            continue
        qty = int(rec["qty"])
        if rec["code"] in ITEM_VEHICLE:
            assert rec["plate"] and CURRENT_PLATE.match(_norm(rec["plate"]))
            assert qty == 1
        else:
            assert rec["plate"] in (None, "")
            assert 1 <= qty <= (4 if rec["code"] in ITEM_DOG else 1)
        seen.add(rec["code"])
    assert seen


# ------------------------------------------------------------------------------------------
# coordinates and times


@pytest.mark.parametrize(("force", "dataset"), ALL)
def test_clean_coordinates_inside_force_area(night_dir: Path, truth: Truth, force: str, dataset: str) -> None:
    defective = truth[force][dataset]["defective"]
    for rec in _records(night_dir, force, dataset):
        if defective.get(rec["id"]) != "out_of_region":
            assert _in_force_area(force, rec["lat"], rec["lon"]), (rec["lat"], rec["lon"], rec["raw"])


@pytest.mark.parametrize("night", [dt.date(2026, 3, 29), dt.date(2026, 10, 25), dt.date(2026, 7, 1)])
def test_clean_times_inside_the_night_across_clock_changes(tmp_path: Path, night: dt.date) -> None:
    truth = gen.generate_night(night, tmp_path, anpr_reads=600, seizures=10, seed=11)
    start, end = _window(night)
    for force, dataset in ALL:
        defective = truth[force][dataset]["defective"]
        times = []
        for rec in _records(tmp_path, force, dataset, night):
            if rec["id"] in defective:
                continue
            assert isinstance(rec["time"], dt.datetime), rec["raw"]
            assert start <= rec["time"] < end, (force, dataset, rec["raw"])
            times.append(rec["time"])
        assert times == sorted(times) or (dataset == "anpr_reads" and len(times) > 100)
    local = [r["native"]["Date Time"] for r in _records(tmp_path, "essex", "anpr_reads", night)]
    hour_01 = [t for t in local if t.startswith(f"{night:%d/%m/%Y} 01:")]
    if night == dt.date(2026, 10, 25):
        assert len(hour_01) > 20  # the repeated hour is written as the clock shows it (twice)
    if night == dt.date(2026, 3, 29):
        assert hour_01  # a (valid) time inside the missing hour, shifted forward by the gap


def test_anpr_reads_roughly_in_time_order(night_dir: Path, truth: Truth) -> None:
    for force in gen.FORCES:
        defective = truth[force]["anpr_reads"]["defective"]
        times = [r["time"] for r in _records(night_dir, force, "anpr_reads") if r["id"] not in defective]
        inversions = sum(b < a for a, b in itertools.pairwise(times))
        assert inversions <= len(times) * 0.05


# ------------------------------------------------------------------------------------------
# valid-but-tricky records


def test_tricky_valid_records(night_dir: Path, truth: Truth) -> None:
    for force in ("norfolk", "suffolk"):
        defective = truth[force]["anpr_reads"]["defective"]
        clean = [r for r in _records(night_dir, force, "anpr_reads") if r["id"] not in defective]
        assert any(" " in (r["plate"] or "") for r in clean)
    for force in ("cambridgeshire", "bedfordshire", "hertfordshire"):
        for dataset in gen.DATASETS:
            first_keys = {next(iter(native)) for _, native in _raw_rows(night_dir, force, dataset)}
            assert len(first_keys) > 1, (force, dataset)
    lower = [
        r
        for f in gen.FORCES
        for r in _records(night_dir, f, "anpr_reads")
        if r["plate"] and r["plate"] != r["plate"].upper()
    ]
    assert lower


# ------------------------------------------------------------------------------------------
# subsets, merging, chunking, validation


def test_subsets_write_only_those_and_merge_truth(tmp_path: Path, night_dir: Path) -> None:
    gen.generate_night(NIGHT, tmp_path, forces=["norfolk"], datasets=["incidents"], **SMALL)
    kent = ["anpr_reads", "seizures"]
    result = gen.generate_night(NIGHT, tmp_path, forces=["kent"], datasets=kent, **SMALL)
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    expected = {
        _path(tmp_path, f, d).relative_to(tmp_path).as_posix()
        for f, d in [("norfolk", "incidents"), ("kent", "anpr_reads"), ("kent", "seizures")]
    }
    assert files == expected | {"_truth.json"}
    on_disk = json.loads((tmp_path / "_truth.json").read_text())
    assert on_disk == result
    assert {f: set(d) for f, d in on_disk.items() if not f.startswith("_")} == {
        "norfolk": {"incidents"},
        "kent": {"anpr_reads", "seizures"},
    }
    full = json.loads((night_dir / "_truth.json").read_text())
    for force, dataset in [("norfolk", "incidents"), ("kent", "anpr_reads"), ("kent", "seizures")]:
        # a subset run writes the very same files and truth as a full run
        assert _path(tmp_path, force, dataset).read_bytes() == _path(night_dir, force, dataset).read_bytes()
        assert on_disk[force][dataset] == full[force][dataset]
    # regenerating one extract replaces its entry only
    gen.generate_night(NIGHT, tmp_path, forces=["kent"], datasets=["seizures"], **dict(SMALL, seizures=15))
    again = json.loads((tmp_path / "_truth.json").read_text())
    assert again["kent"]["seizures"]["records"] == 15
    assert again["norfolk"] == on_disk["norfolk"]
    assert again["kent"]["anpr_reads"] == on_disk["kent"]["anpr_reads"]
    # the truth describes one night: another night's run starts afresh
    next_night = NIGHT + dt.timedelta(days=1)
    nxt = gen.generate_night(next_night, tmp_path, forces=["suffolk"], datasets=["incidents"])
    assert set(nxt) == {"suffolk", "_arrivals"}


def test_multi_chunk_anpr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gen, "CHUNK_ROWS", 100)
    truth = gen.generate_night(
        NIGHT, tmp_path, forces=["essex", "hertfordshire"], datasets=["anpr_reads"], anpr_reads=350
    )
    start, end = _window(NIGHT)
    for force in ("essex", "hertfordshire"):
        recs = _records(tmp_path, force, "anpr_reads")
        entry = truth[force]["anpr_reads"]
        assert len(recs) == entry["records"] == 350
        counts = Counter(r["id"] for r in recs)
        assert {i for i, c in counts.items() if c > 1} == {
            i for i, k in entry["defective"].items() if k == "duplicate_id"
        }
        clean = [r["time"] for r in recs if r["id"] not in entry["defective"]]
        assert all(start <= t < end for t in clean)
        assert clean[0] < start + dt.timedelta(hours=3) and clean[-1] > end - dt.timedelta(hours=3)


def test_empty_and_tiny_extracts(tmp_path: Path) -> None:
    truth = gen.generate_night(
        NIGHT, tmp_path, forces=["suffolk", "bedfordshire", "kent"], anpr_reads=0, incidents=3, seizures=2
    )
    for force in ("suffolk", "bedfordshire", "kent"):
        entry = {k: v for k, v in truth[force]["anpr_reads"].items() if k not in ("arrives_at", "late")}
        assert entry == {"records": 0, "defective": {}, "night": NIGHT.isoformat()}
        assert len(_raw_rows(tmp_path, force, "anpr_reads")) == 0
        assert truth[force]["incidents"]["records"] == 3
        assert truth[force]["seizures"]["records"] == 2


@pytest.mark.parametrize(
    "kwargs",
    [
        {"forces": ["london"]},
        {"datasets": ["crimes"]},
        {"seed": -1},
        {"defect_rate": 1.5},
        {"anpr_reads": -5},
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        gen.generate_night(NIGHT, tmp_path, **kwargs)


# ------------------------------------------------------------------------------ arrivals
def test_most_extracts_arrive_before_the_cut_off_some_late(night_dir: Path, truth: Truth) -> None:
    """Every extract has an arrival time (its file's mtime); the late ones are recorded in the truth."""
    import os

    assert truth["_arrivals"] == {"late_rate": gen.LATE_RATE, "cutoff_local": "02:00", "timezone": "Europe/London"}
    cutoff = dt.datetime.combine(NIGHT + dt.timedelta(days=1), gen.CUTOFF_LOCAL, ZoneInfo("Europe/London"))
    for force in gen.FORCES:
        for dataset in gen.DATASETS:
            entry = truth[force][dataset]
            arrives = dt.datetime.fromisoformat(entry["arrives_at"])
            assert entry["late"] == (arrives > cutoff), (force, dataset)
            assert cutoff - dt.timedelta(hours=2) < arrives < cutoff + dt.timedelta(hours=4, minutes=1)
            path = gen.extract_path(night_dir, force, dataset, NIGHT)
            assert os.stat(path).st_mtime == arrives.timestamp()


def test_late_rate_is_the_share_of_late_extracts() -> None:
    nights = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(60)]
    draws = [gen.arrival_time(3, f, d, n)[1] for n in nights for f in gen.FORCES for d in gen.DATASETS]
    assert abs(sum(draws) / len(draws) - gen.LATE_RATE) < 0.03  # 1,260 draws
    assert all(gen.arrival_time(3, f, "incidents", nights[0], late_rate=0.0)[1] is False for f in gen.FORCES)
    assert all(gen.arrival_time(3, f, "incidents", nights[0], late_rate=1.0)[1] for f in gen.FORCES)
    assert gen.arrival_time(3, "kent", "seizures", nights[0]) == gen.arrival_time(3, "kent", "seizures", nights[0])


def test_cut_off_matches_the_hubs_default() -> None:
    """The generator never reads the hub's config; this keeps its cut-off in step with quality.yaml."""
    import yaml

    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    quality = yaml.safe_load((root / "config" / "quality.yaml").read_text(encoding="utf-8"))
    assert quality["deadlines"]["cutoff"] == gen.CUTOFF_LOCAL.strftime("%H:%M")
    assert quality["deadlines"]["timezone"] == "Europe/London"
