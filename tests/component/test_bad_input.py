"""Bad input gets a clear error and loses nothing.

Each case puts files into the landing zone, runs the pipeline's own steps (land -> process ->
publish, in the DAG's order, without Airflow) and checks that:

* the raw copy of what was delivered is kept in the raw zone, byte for byte;
* the ledger row and the night's manifest say what happened, in words a person can act on;
* the other forces of the same night still publish;
* every record read is either published or quarantined (rows_in = published + quarantined).

Extracts are small (50 ANPR reads, no injected defects unless a case adds one) so the whole
file runs in seconds after Great Expectations' one-off import.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import shutil
import uuid
import zlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import check_against_truth, run_night_plain
from xforce import context
from xforce.errors import ConfigError, UnsafePathError
from xforce.exchange import land, process, publish
from xforce.schemas import DATASETS
from xforce.store import layout
from xforce.store.zones import Zone, safe_relpath
from xforce_tools.generate import extract_path, generate_night

pytestmark = pytest.mark.component

NIGHT = "2026-11-27"
DAY = dt.date.fromisoformat(NIGHT)
READS = 50  # ANPR reads per force: small, GX costs per extract


# ------------------------------------------------------------------------------------ helpers
@pytest.fixture
def ctx(data_dir: Path) -> context.Context:
    return context.Context.from_env()


def generate(
    data_dir: Path, forces: list[str], datasets: tuple[str, ...] = ("anpr_reads",), day: dt.date = DAY, **kwargs: Any
) -> dict[str, Any]:
    """Clean sample extracts (no injected defects unless asked) written straight into landing."""
    kwargs.setdefault("defect_rate", 0.0)
    return generate_night(day, data_dir / "landing", anpr_reads=READS, forces=forces, datasets=list(datasets), **kwargs)


def landing_file(data_dir: Path, force: str, dataset: str = "anpr_reads", day: dt.date = DAY) -> Path:
    return extract_path(data_dir / "landing", force, dataset, day)


def run(
    ctx: context.Context, extracts: list[tuple[str, str]], night: str = NIGHT, run_id: str | None = None
) -> tuple[str, list[str]]:
    """scan -> land -> process for the given (force, dataset) pairs -> publish; returns (run_id, unknown)."""
    run_id = run_id or f"test__{uuid.uuid4().hex[:8]}"
    unknown = land.scan_landing(ctx, night, run_id)
    for force, dataset in extracts:
        ref = land.land_extract(ctx, night, force, dataset, run_id)
        process.process_extract(ctx, ref, run_id)
    publish.publish_night(ctx, night, run_id)
    return run_id, unknown


def ledger_row(ctx: context.Context, force: str, dataset: str = "anpr_reads", night: str = NIGHT) -> dict[str, Any]:
    row = ctx.ledger.get(night, force, dataset)
    assert row is not None, (force, dataset, "no ledger row")
    return row


def manifest_entry(data_dir: Path, force: str, dataset: str = "anpr_reads", night: str = NIGHT) -> dict[str, Any]:
    doc = json.loads((data_dir / "curated" / f"dataset={dataset}" / f"date={night}" / "_manifest.json").read_text())
    assert doc["dataset"] == dataset and doc["night"] == night
    entry: dict[str, Any] = doc["forces"][force]
    return entry


def part(data_dir: Path, zone: str, force: str, dataset: str = "anpr_reads", night: str = NIGHT) -> Path:
    return data_dir / zone / layout.partition(dataset, night, force) / "part-0.parquet"


def table(data_dir: Path, zone: str, force: str, dataset: str = "anpr_reads", night: str = NIGHT) -> pa.Table | None:
    path = part(data_dir, zone, force, dataset, night)
    return pq.read_table(path) if path.exists() else None


def raw_files(data_dir: Path, under: str = "") -> list[Path]:
    root = data_dir / "raw" / under
    return sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()) if root.exists() else []


def assert_raw_kept(data_dir: Path, row: dict[str, Any], delivered: bytes | None = None) -> None:
    """Every file of the ledger row is a regular file under raw/, named by its SHA-256."""
    assert row["files"], row
    for f in row["files"]:
        path = data_dir / "raw" / f["raw"]
        assert path.is_file() and not path.is_symlink(), f
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert f["raw"].split("/")[-2] == f["sha256"], f["raw"]
        assert len(data) == f["bytes"]
        if delivered is not None:
            assert data == delivered


def assert_accounted(
    data_dir: Path, row: dict[str, Any], force: str, dataset: str = "anpr_reads"
) -> tuple[pa.Table, pa.Table]:
    """rows_in = published + quarantined, and the partitions hold exactly those rows."""
    pub, quar = table(data_dir, "curated", force, dataset), table(data_dir, "quarantine", force, dataset)
    assert pub is not None and quar is not None, (force, dataset)
    assert row["rows_in"] == row["rows_published"] + row["rows_quarantined"], row
    assert (pub.num_rows, quar.num_rows) == (row["rows_published"], row["rows_quarantined"])
    return pub, quar


def assert_extract_quarantined(
    data_dir: Path,
    ctx: context.Context,
    force: str,
    *words: str,
    dataset: str = "anpr_reads",
    delivered: bytes | None = None,
) -> dict[str, Any]:
    """The whole extract is refused with an error naming the problem; its raw copy is kept."""
    row = ledger_row(ctx, force, dataset)
    assert row["status"] == "quarantined", row
    assert row["rows_in"] == 0 and row["rows_published"] == 0, row
    assert row["error"], row
    for word in words:
        assert word.lower() in row["error"].lower(), (word, row["error"])
    assert_raw_kept(data_dir, row, delivered)
    entry = manifest_entry(data_dir, force, dataset)
    assert entry["status"] == "quarantined" and entry["error"] == row["error"], entry
    assert not part(data_dir, "curated", force, dataset).exists()
    note = data_dir / "quarantine" / layout.partition(dataset, NIGHT, force) / "_extract_error.json"
    assert json.loads(note.read_text())["error"] == row["error"]
    return row


def assert_publishes(
    data_dir: Path, ctx: context.Context, force: str, rows: int = READS, dataset: str = "anpr_reads"
) -> None:
    """A healthy extract of the same night: every row published."""
    row = ledger_row(ctx, force, dataset)
    assert row["status"] == "published", row
    assert row["rows_in"] == row["rows_published"] == rows, row
    assert not row["error"], row
    entry = manifest_entry(data_dir, force, dataset)
    assert entry["status"] == "published" and entry["rows_published"] == rows, entry
    pub = table(data_dir, "curated", force, dataset)
    assert pub is not None and pub.num_rows == rows


def events(ctx: context.Context, kind: str, run_id: str | None = None, night: str = NIGHT) -> list[dict[str, Any]]:
    return [e for e in ctx.ledger.events(night) if e["event"] == kind and (run_id is None or e["run_id"] == run_id)]


def edit_lines(path: Path, edits: dict[int, bytes]) -> None:
    """Replace data records (1-based, header excluded) of a CSV file."""
    lines = path.read_bytes().split(b"\n")
    for record, new in edits.items():
        lines[record] = new
    path.write_bytes(b"\n".join(lines))


def gz_lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).rstrip(b"\n").split(b"\n")


def write_gz_lines(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))


# --------------------------------------------------------------------------- 1. empty file
@pytest.mark.parametrize("force", ["norfolk", "cambridgeshire", "essex"])
def test_empty_file_is_quarantined_with_a_clear_error(force: str, data_dir: Path, ctx: context.Context) -> None:
    generate(data_dir, [force, "suffolk"])
    landing_file(data_dir, force).write_bytes(b"")
    run(ctx, [(force, "anpr_reads"), ("suffolk", "anpr_reads")])

    row = assert_extract_quarantined(data_dir, ctx, force, "empty", delivered=b"")
    assert row["files"][0]["bytes"] == 0
    assert not part(data_dir, "quarantine", force).exists()  # no rows to quarantine, only the note
    assert_publishes(data_dir, ctx, "suffolk")


# ---------------------------------------------------------------------- 2. truncated gzip
def _cut_gzip_in_half(path: Path) -> tuple[bytes, list[str]]:
    """Cut a .jsonl.gz in half; return the new bytes and the ids of the records complete before the cut."""
    half = path.read_bytes()[: path.stat().st_size // 2]
    path.write_bytes(half)
    prefix = zlib.decompressobj(wbits=31).decompress(half)
    complete = prefix.split(b"\n")[:-1]  # the last piece is the record the cut went through
    return half, [json.loads(line)["ref"] for line in complete]


def test_truncated_gzip_is_flagged_and_the_night_still_publishes(data_dir: Path, ctx: context.Context) -> None:
    generate(data_dir, ["cambridgeshire", "norfolk"])
    half, complete = _cut_gzip_in_half(landing_file(data_dir, "cambridgeshire"))
    assert 10 <= len(complete) < READS  # the fixture really cuts through the middle of the records
    run(ctx, [("cambridgeshire", "anpr_reads"), ("norfolk", "anpr_reads")])

    row = ledger_row(ctx, "cambridgeshire")
    assert row["status"] == "published", row
    assert row["warning"] and "ends early" in row["warning"], row
    assert "anpr_reads.jsonl.gz" in row["warning"]
    assert not row["error"]
    assert_raw_kept(data_dir, row, half)
    assert_accounted(data_dir, row, "cambridgeshire")
    entry = manifest_entry(data_dir, "cambridgeshire")
    assert entry["status"] == "published" and entry["warning"] == row["warning"]
    assert_publishes(data_dir, ctx, "norfolk")


def test_truncated_gzip_publishes_the_records_before_the_cut(data_dir: Path, ctx: context.Context) -> None:
    generate(data_dir, ["cambridgeshire"])
    _, complete = _cut_gzip_in_half(landing_file(data_dir, "cambridgeshire"))
    run(ctx, [("cambridgeshire", "anpr_reads")])

    row = ledger_row(ctx, "cambridgeshire")
    pub, _ = assert_accounted(data_dir, row, "cambridgeshire")
    assert row["rows_in"] >= len(complete), row
    assert set(complete) <= set(pub.column("source_id").to_pylist())


# ------------------------------------------------------------------------ 3. corrupt gzip
def _random_bytes(n: int) -> bytes:
    return b"\x00" + hashlib.shake_256(b"not a gzip file").digest(n - 1)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param(lambda plain: _random_bytes(3000), ("gzip", "magic"), id="random-bytes"),
        pytest.param(lambda plain: plain, ("gzip", "magic"), id="uncompressed-jsonl"),
        pytest.param(
            lambda plain: b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\xff" * 500,
            ("corrupt gzip",),
            id="gzip-header-corrupt-body",
        ),
    ],
)
def test_corrupt_gzip_is_quarantined_with_a_gzip_error(
    content: Any, words: tuple[str, ...], data_dir: Path, ctx: context.Context
) -> None:
    generate(data_dir, ["cambridgeshire", "bedfordshire"])
    path = landing_file(data_dir, "cambridgeshire")
    bad = content(gzip.decompress(path.read_bytes()))
    path.write_bytes(bad)
    run(ctx, [("cambridgeshire", "anpr_reads"), ("bedfordshire", "anpr_reads")])

    assert_extract_quarantined(data_dir, ctx, "cambridgeshire", "anpr_reads.jsonl.gz", *words, delivered=bad)
    assert_publishes(data_dir, ctx, "bedfordshire")


# ------------------------------------------------------------------------ 4. wrong header
@pytest.mark.parametrize(
    ("force", "partner", "column", "renamed"),
    [
        pytest.param("suffolk", "norfolk", b'"read_at"', b'"read_time"', id="shared_csv"),
        pytest.param("kent", "essex", b'"Camera"', b'"Cam"', id="southern_bng"),
    ],
)
def test_wrong_header_names_the_missing_column(
    force: str, partner: str, column: bytes, renamed: bytes, data_dir: Path, ctx: context.Context
) -> None:
    generate(data_dir, [force, partner])
    path = landing_file(data_dir, force)
    header, rest = path.read_bytes().split(b"\n", 1)
    assert column in header
    path.write_bytes(header.replace(column, renamed) + b"\n" + rest)
    run(ctx, [(force, "anpr_reads"), (partner, "anpr_reads")])

    name = column.decode().strip('"')
    row = assert_extract_quarantined(data_dir, ctx, force, "wrong header", repr(name))
    assert repr(renamed.decode().strip('"')) in row["error"]  # and says what was found instead
    assert_publishes(data_dir, ctx, partner)


# ---------------------------------------------------------------------- 5. wrong encoding
def test_invalid_utf8_row_is_quarantined_as_bad_encoding(data_dir: Path, ctx: context.Context) -> None:
    generate(data_dir, ["norfolk", "suffolk"])
    path = landing_file(data_dir, "norfolk")
    line3 = path.read_bytes().split(b"\n")[3]
    edit_lines(path, {3: line3.replace(b'"NFK-CAM-', b'"NFK-\xff\xfeCAM-')})
    run(ctx, [("norfolk", "anpr_reads"), ("suffolk", "anpr_reads")])

    row = ledger_row(ctx, "norfolk")
    assert row["status"] == "published" and row["reasons"] == {"bad_encoding": 1}, row
    assert_raw_kept(data_dir, row, path.read_bytes())
    pub, quar = assert_accounted(data_dir, row, "norfolk")
    assert row["rows_in"] == READS
    bad = quar.to_pylist()
    assert [(r["source_record"], r["reason"], r["source_id"]) for r in bad] == [
        (3, "bad_encoding", "NFK-ANPR-20261127-00000003")
    ]
    assert bad[0]["camera_id"] is None  # the undecodable value is not stored as mojibake
    assert sorted(pub.column("source_record").to_pylist()) == [r for r in range(1, READS + 1) if r != 3]
    assert manifest_entry(data_dir, "norfolk")["reasons"] == {"bad_encoding": 1}
    assert_publishes(data_dir, ctx, "suffolk")


def test_cp1252_bytes_decode_and_rows_are_judged_on_their_merits(data_dir: Path, ctx: context.Context) -> None:
    generate(data_dir, ["essex"])
    path = landing_file(data_dir, "essex")
    lines = path.read_bytes().split(b"\n")
    row4 = lines[4].rsplit(b";", 1)[0] + b';"AB12CD\xc9"'  # VRM with an É: decodes, but is no UK plate
    edit_lines(
        path,
        {
            2: lines[2].replace(b'"ESX-CAM-', b'"ESX-CAM-\xa3\xe9-'),  # £ and é in Windows-1252
            4: row4,
            6: lines[6].replace(b'"ESX-CAM-', b'"ESX-CAM-\x81'),  # 0x81 is undefined in Windows-1252
        },
    )
    run(ctx, [("essex", "anpr_reads")])

    row = ledger_row(ctx, "essex")
    assert row["status"] == "published", row
    assert row["reasons"] == {"bad_plate": 1, "bad_encoding": 1}, row
    pub, quar = assert_accounted(data_dir, row, "essex")
    by_record = {r["source_record"]: r for r in pub.to_pylist()}
    assert by_record[2]["camera_id"].startswith("ESX-CAM-£é-")
    assert {r["source_record"]: r["reason"] for r in quar.to_pylist()} == {4: "bad_plate", 6: "bad_encoding"}
    assert len(by_record) == READS - 2


# ------------------------------------------------------------------ 6. unparseable records
def test_csv_rows_with_wrong_field_count_are_quarantined_with_their_record_number(
    data_dir: Path, ctx: context.Context
) -> None:
    generate(data_dir, ["norfolk", "essex"])
    path = landing_file(data_dir, "norfolk")
    lines = path.read_bytes().split(b"\n")
    edit_lines(path, {5: lines[5] + b',"extra"', 7: b",".join(lines[7].split(b",")[:3])})
    run(ctx, [("norfolk", "anpr_reads"), ("essex", "anpr_reads")])

    row = ledger_row(ctx, "norfolk")
    assert row["status"] == "published" and row["rows_in"] == READS, row
    assert row["reasons"] == {"unparseable": 2}, row
    pub, quar = assert_accounted(data_dir, row, "norfolk")
    rejects = {r["source_record"]: r for r in quar.to_pylist()}
    assert set(rejects) == {5, 7}
    assert {r["reason"] for r in rejects.values()} == {"unparseable"}
    assert "7 fields" in rejects[5]["detail"] and "3 fields" in rejects[7]["detail"]
    assert {r["source_file"] for r in rejects.values()} == {"anpr_reads.csv"}
    # the rows around the bad ones keep their own record numbers and ids
    published = {r["source_record"]: r["source_id"] for r in pub.to_pylist()}
    assert sorted(published) == [r for r in range(1, READS + 1) if r not in (5, 7)]
    assert published[6] == "NFK-ANPR-20261127-00000006" and published[8] == "NFK-ANPR-20261127-00000008"
    assert_publishes(data_dir, ctx, "essex")


def test_jsonl_lines_that_are_not_json_objects_are_quarantined(data_dir: Path, ctx: context.Context) -> None:
    generate(data_dir, ["cambridgeshire", "hertfordshire"])
    path = landing_file(data_dir, "cambridgeshire")
    lines = gz_lines(path)
    lines[3], lines[7] = b'{"ref": "CAMBS/ANPR/20261127/00000004", "observed": ', b"[1, 2]"
    write_gz_lines(path, lines)
    run(ctx, [("cambridgeshire", "anpr_reads"), ("hertfordshire", "anpr_reads")])

    row = ledger_row(ctx, "cambridgeshire")
    assert row["status"] == "published" and row["rows_in"] == READS, row
    assert row["reasons"] == {"unparseable": 2}, row
    pub, quar = assert_accounted(data_dir, row, "cambridgeshire")
    details = {r["source_record"]: (r["reason"], r["detail"]) for r in quar.to_pylist()}
    assert details == {
        4: ("unparseable", "invalid JSON: JSONDecodeError"),
        8: ("unparseable", "record is not a JSON object"),
    }
    assert sorted(pub.column("source_record").to_pylist()) == [r for r in range(1, READS + 1) if r not in (4, 8)]
    assert_publishes(data_dir, ctx, "hertfordshire")


@pytest.mark.parametrize(
    ("force", "dataset", "record"),
    [
        pytest.param("cambridgeshire", "anpr_reads", 3, id="epoch-ms-time"),
        pytest.param("norfolk", "seizures", 2, id="csv-quantity"),
    ],
)
def test_overlong_integer_quarantines_one_record_only(
    force: str, dataset: str, record: int, data_dir: Path, ctx: context.Context
) -> None:
    truth = generate(data_dir, [force], datasets=(dataset,))
    path = landing_file(data_dir, force, dataset)
    if dataset == "anpr_reads":
        lines = gz_lines(path)
        obj = json.loads(lines[record - 1])
        obj["observed"] = 99999999999999999999
        lines[record - 1] = json.dumps(obj).encode()
        write_gz_lines(path, lines)
        expected = "impossible_timestamp"
    else:
        line = path.read_bytes().split(b"\n")[record]
        fields = line.split(b",")
        fields[4] = b"99999999999999999999"  # quantity
        edit_lines(path, {record: b",".join(fields)})
        expected = "unparseable"
    run(ctx, [(force, dataset)])

    row = ledger_row(ctx, force, dataset)
    assert row["status"] == "published", row
    _, quar = assert_accounted(data_dir, row, force, dataset)
    reasons = {r["source_record"]: r["reason"] for r in quar.to_pylist()}
    assert reasons[record] == expected
    assert row["rows_in"] == truth[force][dataset]["records"]


def test_impossible_calendar_date_is_quarantined(data_dir: Path, ctx: context.Context) -> None:
    day = dt.date(2026, 3, 3)
    generate(data_dir, ["essex"], day=day)
    path = landing_file(data_dir, "essex", day=day)
    line5 = path.read_bytes().split(b"\n")[5]
    assert b'"03/03/2026 ' in line5
    edit_lines(path, {5: line5.replace(b'"03/03/2026 ', b'"31/02/2026 ')})
    run(ctx, [("essex", "anpr_reads")], night=day.isoformat())

    quar = table(data_dir, "quarantine", "essex", night=day.isoformat())
    assert quar is not None
    assert {r["source_record"]: r["reason"] for r in quar.to_pylist()} == {5: "impossible_timestamp"}


# ------------------------------------------------------------------- 7. unknown force folder
def test_unknown_force_folder_is_recorded_and_never_read(data_dir: Path, ctx: context.Context) -> None:
    generate(data_dir, ["norfolk"], datasets=("incidents",))
    good = landing_file(data_dir, "norfolk", "incidents")
    for stranger in ("atlantis", "Norfolk"):
        folder = data_dir / "landing" / stranger / "incidents" / NIGHT
        folder.mkdir(parents=True)
        shutil.copy(good, folder / "x.csv")  # perfectly readable, but from no known force
    run_id, unknown = run(ctx, [("norfolk", "incidents")])

    assert unknown == ["Norfolk", "atlantis"]
    recorded = events(ctx, "unknown_force_folder", run_id)
    assert sorted(json.loads(e["detail"])["folder"] for e in recorded) == ["Norfolk", "atlantis"]
    with pytest.raises(ConfigError, match="unknown force 'atlantis'"):
        land.land_extract(ctx, NIGHT, "atlantis", "incidents", run_id)
    for zone in ("raw", "curated", "quarantine", "staging"):
        found = [
            p
            for p in (data_dir / zone).rglob("*")
            if "atlantis" in str(p.relative_to(data_dir)) or "Norfolk" in str(p.relative_to(data_dir))
        ]
        assert not found, (zone, found)
    for dataset in DATASETS:
        doc = json.loads((data_dir / "curated" / f"dataset={dataset}" / f"date={NIGHT}" / "_manifest.json").read_text())
        assert set(doc["forces"]) == set(ctx.registry.forces)
    assert (data_dir / "landing" / "atlantis" / "incidents" / NIGHT / "x.csv").exists()  # left for a person
    row = ledger_row(ctx, "norfolk", "incidents")
    assert row["status"] == "published" and row["rows_in"] == row["rows_published"] > 0


# ------------------------------------------------------------------------ 8. unsafe names
@pytest.mark.parametrize(
    "parts",
    [
        ("..",),
        ("norfolk", "..", "secrets"),
        ("norfolk/incidents/../../../etc",),
        ("/etc/passwd",),
        ("\\\\server\\share",),
        ("norfolk", "a\\..\\..\\b"),
        ("c:", "windows"),
        ("norfolk", "x\x00.csv"),
    ],
)
def test_safe_relpath_refuses_escapes(parts: tuple[str, ...]) -> None:
    with pytest.raises(UnsafePathError):
        safe_relpath(*parts)


def test_safe_relpath_joins_harmless_parts_and_zones_refuse_escapes(tmp_path: Path) -> None:
    assert safe_relpath("norfolk", "incidents/2026-11-27/", "./x.csv") == "norfolk/incidents/2026-11-27/x.csv"
    zone = Zone(str(tmp_path))
    with pytest.raises(UnsafePathError):
        zone.full("../outside")
    with pytest.raises(UnsafePathError):
        zone.write_bytes("a/../../outside", b"x")
    assert not (tmp_path.parent / "outside").exists()


def test_unsafe_night_name_is_refused_before_anything_is_read(data_dir: Path, ctx: context.Context) -> None:
    with pytest.raises(UnsafePathError):
        land.land_extract(ctx, "../../2026-11-27", "norfolk", "incidents", "test__unsafe")
    assert ctx.ledger.extracts() == []


def test_symlinks_are_refused_and_dot_files_ignored(data_dir: Path, ctx: context.Context, tmp_path: Path) -> None:
    generate(data_dir, ["norfolk", "suffolk", "kent"])
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_bytes(landing_file(data_dir, "suffolk").read_bytes().replace(b"SFK", b"SECRET"))
    folder = landing_file(data_dir, "norfolk").parent
    (folder / "extra.csv").symlink_to(secret)
    (folder / ".anpr_reads.csv.swp").write_bytes(b"editor junk")
    (folder / "bad name;rm.csv").write_bytes(b"x")
    suffolk = landing_file(data_dir, "suffolk")
    suffolk.unlink()
    suffolk.symlink_to(secret)  # the only "file" suffolk delivered is a link
    run_id, _ = run(ctx, [("norfolk", "anpr_reads"), ("suffolk", "anpr_reads"), ("kent", "anpr_reads")])

    # norfolk: the real file publishes; the link and the unsafe name are refused and said so
    row = ledger_row(ctx, "norfolk")
    assert row["status"] == "published" and row["rows_published"] == READS, row
    assert [f["name"] for f in row["files"]] == ["anpr_reads.csv"]
    assert "extra.csv: symbolic link refused" in row["warning"]
    assert "unsafe file name refused" in row["warning"]
    refused = [e["detail"] for e in events(ctx, "refused_file", run_id) if e["force"] == "norfolk"]
    assert any("extra.csv" in d and "symbolic link" in d for d in refused), refused
    assert any("bad name;rm.csv" in d for d in refused), refused
    assert any(".swp" in d and "hidden (dot) file refused" in d for d in refused), "dot files are refused, said so"
    assert [p.name for p in raw_files(data_dir, "norfolk")] == ["anpr_reads.csv"]
    assert_raw_kept(data_dir, row, landing_file(data_dir, "norfolk").read_bytes())

    # suffolk: nothing but a link -> the extract is quarantined, nothing copied
    srow = ledger_row(ctx, "suffolk")
    assert srow["status"] == "quarantined" and "symbolic link refused" in srow["error"], srow
    assert manifest_entry(data_dir, "suffolk")["status"] == "quarantined"
    assert raw_files(data_dir, "suffolk") == []
    assert not any(b"SECRET" in p.read_bytes() for p in raw_files(data_dir))
    assert not part(data_dir, "curated", "suffolk").exists()
    assert_publishes(data_dir, ctx, "kent")


def test_symlinked_night_folder_is_not_followed(data_dir: Path, ctx: context.Context, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "anpr_reads.csv").write_bytes(b'"read_id","read_at","camera_id","latitude","longitude","vrm"\n')
    folder = data_dir / "landing" / "norfolk" / "anpr_reads"
    folder.mkdir(parents=True)
    (folder / NIGHT).symlink_to(outside, target_is_directory=True)
    run_id, _ = run(ctx, [("norfolk", "anpr_reads")])

    assert raw_files(data_dir, "norfolk") == [], "a file reached through a symlinked folder was copied to raw"
    assert ledger_row(ctx, "norfolk")["status"] != "published"
    assert events(ctx, "refused_file", run_id)


def test_dangling_symlink_is_recorded(data_dir: Path, ctx: context.Context, tmp_path: Path) -> None:
    generate(data_dir, ["norfolk"])
    (landing_file(data_dir, "norfolk").parent / "late.csv").symlink_to(tmp_path / "not-there.csv")
    run_id, _ = run(ctx, [("norfolk", "anpr_reads")])

    assert ledger_row(ctx, "norfolk")["status"] == "published"
    assert any("late.csv" in (e["detail"] or "") for e in events(ctx, "refused_file", run_id))


# ------------------------------------------------------------------- 9. re-deliveries
def test_identical_redelivery_adds_nothing_and_a_changed_one_adds_a_new_raw_copy(
    data_dir: Path, ctx: context.Context
) -> None:
    generate(data_dir, ["norfolk"])
    path = landing_file(data_dir, "norfolk")
    run(ctx, [("norfolk", "anpr_reads")])
    first = ledger_row(ctx, "norfolk")
    assert len(raw_files(data_dir)) == 1

    run_id2, _ = run(ctx, [("norfolk", "anpr_reads")])
    second = ledger_row(ctx, "norfolk")
    assert len(raw_files(data_dir)) == 1, "an identical re-delivery must not add a raw copy"
    (ev,) = [
        e
        for e in ctx.ledger.events(NIGHT)
        if e["run_id"] == run_id2 and e["force"] == "norfolk" and e["event"] in ("landed", "redelivered_identical")
    ]
    assert ev["event"] == "redelivered_identical"
    assert json.loads(ev["detail"]) == {"sha256": first["sha256"], "from": "landing"}
    assert (second["sha256"], second["received_at"], second["files"]) == (
        first["sha256"],
        first["received_at"],
        first["files"],
    )

    changed = path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\n"  # the force re-sends without the last row
    path.write_bytes(changed)
    run_id3, _ = run(ctx, [("norfolk", "anpr_reads")])
    third = ledger_row(ctx, "norfolk")
    assert len(raw_files(data_dir)) == 2
    new_sha = hashlib.sha256(changed).hexdigest()
    assert third["sha256"] == new_sha != first["sha256"]
    assert third["files"][0]["raw"] == f"norfolk/anpr_reads/{NIGHT}/{new_sha}/anpr_reads.csv"
    assert (data_dir / "raw" / first["files"][0]["raw"]).exists(), "the earlier raw copy is kept"
    assert_raw_kept(data_dir, third, changed)
    assert [
        e["event"]
        for e in ctx.ledger.events(NIGHT)
        if e["run_id"] == run_id3 and e["force"] == "norfolk" and e["event"] in ("landed", "redelivered_identical")
    ] == ["landed"]
    assert third["status"] == "published" and third["rows_in"] == third["rows_published"] == READS - 1


# ------------------------------------------------------------- 10/11. re-running a night
SMALL_NIGHT = ["norfolk", "cambridgeshire", "essex"]


def _snapshot(ctx: context.Context, data_dir: Path) -> dict[str, Any]:
    """Everything a consumer sees of the night: partitions, ledger counts, manifest statuses."""
    tables: dict[str, Any] = {}
    record_ids: dict[str, list[str]] = {}
    for zone in ("curated", "quarantine"):
        for path in sorted((data_dir / zone).rglob("*.parquet")):
            if "dataset=completeness" in path.parts:  # the night's coverage table: it names its run
                continue
            t = pq.read_table(path).sort_by([("source_record", "ascending"), ("record_id", "ascending")])
            key = f"{zone}/{path.relative_to(data_dir / zone)}"
            tables[key] = t.to_pylist()
            record_ids[key] = sorted(r or "" for r in t.column("record_id").to_pylist())
    ledger = {
        (r["force"], r["dataset"]): {
            k: r[k]
            for k in (
                "status",
                "rows_in",
                "rows_published",
                "rows_quarantined",
                "reasons",
                "sha256",
                "files",
                "received_at",
                "error",
                "warning",
            )
        }
        for r in ctx.ledger.extracts(NIGHT)
    }
    manifests = {}
    for dataset in DATASETS:
        doc = json.loads((data_dir / "curated" / f"dataset={dataset}" / f"date={NIGHT}" / "_manifest.json").read_text())
        manifests[dataset] = {
            f: (v["status"], v["rows_in"], v["rows_published"], v["rows_quarantined"]) for f, v in doc["forces"].items()
        }
    return {
        "tables": tables,
        "record_ids": record_ids,
        "ledger": ledger,
        "manifests": manifests,
        "raw": [str(p.relative_to(data_dir)) for p in raw_files(data_dir)],
    }


def _assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["raw"] == before["raw"]
    assert after["manifests"] == before["manifests"]
    assert after["ledger"] == before["ledger"]
    assert after["record_ids"] == before["record_ids"]
    assert after["tables"].keys() == before["tables"].keys()
    for key in before["tables"]:
        assert after["tables"][key] == before["tables"][key], key


def _first_run(ctx: context.Context, data_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    truth = generate_night(DAY, data_dir / "landing", anpr_reads=READS, forces=SMALL_NIGHT)  # with defects
    run_night_plain(ctx, NIGHT)
    check_against_truth(ctx, NIGHT, truth)
    before = _snapshot(ctx, data_dir)
    assert len(before["raw"]) == len(SMALL_NIGHT) * len(DATASETS)
    assert sum(s == "published" for m in before["manifests"].values() for s, *_ in m.values()) == 9
    return truth, before


def _landing_events(ctx: context.Context, run_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (e["force"], e["dataset"]): {"event": e["event"], **json.loads(e["detail"])}
        for e in ctx.ledger.events(NIGHT)
        if e["run_id"] == run_id and e["event"] in ("landed", "redelivered_identical")
    }


def test_rerun_after_landing_was_emptied_reprocesses_the_raw_copy(data_dir: Path, ctx: context.Context) -> None:
    truth, before = _first_run(ctx, data_dir)
    shutil.rmtree(data_dir / "landing")
    (data_dir / "landing").mkdir()

    run_id = run_night_plain(ctx, NIGHT)
    check_against_truth(ctx, NIGHT, truth)
    _assert_same(before, _snapshot(ctx, data_dir))
    landed = _landing_events(ctx, run_id)
    assert set(landed) == {(f, d) for f in SMALL_NIGHT for d in DATASETS}
    assert {(e["event"], e["from"]) for e in landed.values()} == {("redelivered_identical", "raw")}


def test_second_full_run_of_a_night_changes_nothing(data_dir: Path, ctx: context.Context) -> None:
    _, before = _first_run(ctx, data_dir)

    run_id = run_night_plain(ctx, NIGHT)
    _assert_same(before, _snapshot(ctx, data_dir))
    landed = _landing_events(ctx, run_id)
    assert {(e["event"], e["from"]) for e in landed.values()} == {("redelivered_identical", "landing")}
    assert not list((data_dir / "staging").rglob("*.parquet")), "staged files are cleaned up"
    assert os.listdir(data_dir / "landing" / "norfolk" / "anpr_reads" / NIGHT) == ["anpr_reads.csv"]


def test_publish_retried_after_dying_mid_move_finishes_the_night(data_dir: Path) -> None:
    """A publish that died after moving some staged files is retried and completes, nothing lost."""
    generate_night(
        dt.date.fromisoformat(NIGHT),
        data_dir / "landing",
        anpr_reads=50,
        forces=["norfolk", "kent"],
        datasets=["anpr_reads"],
    )
    ctx = context.Context.from_env()
    run_id = "retry-test"
    for force in ("norfolk", "kent"):
        ref = land.land_extract(ctx, NIGHT, force, "anpr_reads", run_id)
        process.process_extract(ctx, ref, run_id)
    staged = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")["staged"]  # type: ignore[index]
    part = layout.part_file("anpr_reads", NIGHT, "norfolk")
    ctx.zones.curated.move_from(ctx.zones.staging, staged["published"], part)  # the first attempt's move
    publish.publish_night(ctx, NIGHT, run_id)  # the retry
    for force in ("norfolk", "kent"):
        row = ctx.ledger.get(NIGHT, force, "anpr_reads")
        assert row is not None and row["status"] == "published"
        p = layout.part_file("anpr_reads", NIGHT, force)
        n = ctx.zones.curated.read_parquet(p).num_rows + ctx.zones.quarantine.read_parquet(p).num_rows
        assert n == row["rows_in"] == 50


def test_blank_and_oversized_checks_agree_with_their_plain_definitions() -> None:
    """The readers' in-place checks give what trimming and counting characters would."""
    import pyarrow.compute as pc

    from xforce.intake.readers import _blank, _longer_than

    values = ["", " ", "\t\u00a0\u3000", "x", " x ", None, "\u2003", "\u00e9" * 3, "abcd", "\u00e9\u00e9"]
    col = pa.array(values, pa.string())
    assert _blank(col).to_pylist() == pc.equal(pc.utf8_trim_whitespace(col), "").to_pylist()
    for chars in (2, 3, 4, 100):
        expected = pc.fill_null(pc.greater(pc.utf8_length(col), chars), False).to_pylist()
        assert pc.fill_null(_longer_than(col, chars), False).to_pylist() == expected
