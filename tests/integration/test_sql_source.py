"""A force delivering through its database: pulled by the night's window into raw, then read as a file.

Against PostgreSQL on 127.0.0.1:5432 (a fresh database per run) with a seeded source table;
the end-to-end run through Airflow with this source is in ``test_postgres.py``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from services import Database, fresh_database, seed_anpr_source, subset_config

from xforce import context
from xforce.errors import ConfigError
from xforce.exchange import land
from xforce.intake import sql_source
from xforce.intake.contracts import load_registry
from xforce.intake.readers import read_extract
from xforce.settings import PROJECT_ROOT
from xforce_tools.generate import generate_night

pytestmark = pytest.mark.integration

NIGHT = "2026-10-25"  # the clocks go back: a 25-hour window
SOURCE = {"anpr_reads": {"conn_id": "norfolk_anpr_db", "query": "norfolk_anpr_reads.sql"}}


@pytest.fixture(scope="module")
def source_db(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("sqlsrc")
    truth = generate_night(date.fromisoformat(NIGHT), base / "landing", anpr_reads=150, seed=3, forces=["norfolk"])
    csv_path = base / "landing" / "norfolk" / "anpr_reads" / NIGHT / "anpr_reads.csv"
    with fresh_database("xforce_test_src") as db:
        n = seed_anpr_source(db, csv_path, NIGHT)
        yield {"db": db, "csv": csv_path, "rows": n, "truth": truth, "base": base}


@pytest.fixture
def ctx(source_db, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> context.Context:
    db: Database = source_db["db"]
    config = subset_config(data_dir.parent / "config", ["norfolk", "kent"], {"norfolk": SOURCE})
    monkeypatch.setenv("XFORCE_CONFIG_DIR", str(config))
    monkeypatch.setenv("AIRFLOW_CONN_NORFOLK_ANPR_DB", json.dumps(db.connection()))
    return context.Context.from_env()


def _raw_rows(ctx: context.Context, ref: dict) -> list[list[str]]:
    (f,) = ref["files"]
    return list(csv.reader(io.StringIO(ctx.zones.raw.read_bytes(f["raw"]).decode("utf-8"))))


def test_the_night_is_pulled_into_raw_as_the_forces_own_file(source_db, ctx: context.Context) -> None:
    # A stray file in landing is not what a database-delivered extract is made of.
    stray = Path(ctx.settings.landing) / "norfolk" / "anpr_reads" / NIGHT / "anpr_reads.csv"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(source_db["csv"].read_bytes().splitlines(keepends=True)[0])
    ref = land.land_extract(ctx, NIGHT, "norfolk", "anpr_reads", "run-1")
    assert ref["status"] == "landed"
    (f,) = ref["files"]
    assert f["name"] == "anpr_reads.csv" and f["raw"].startswith(f"norfolk/anpr_reads/{NIGHT}/{f['sha256']}/")
    # What the database holds for the night is exactly what the force's file had, row for row.
    with source_db["csv"].open(encoding="utf-8", newline="") as fh:
        expected = list(csv.reader(fh))
    assert _raw_rows(ctx, ref) == expected
    assert len(expected) - 1 == source_db["rows"] == 150
    assert not any(r[0].startswith("OTHER-NIGHT") for r in _raw_rows(ctx, ref))  # other nights stay out
    # It reads back with the force's contract like any landed file.
    contract = ctx.registry.contract("norfolk", "anpr_reads")
    read = sum(
        b.table.num_rows + len(b.rejects)
        for b in read_extract(lambda: ctx.zones.raw.open(f["raw"]), contract, ctx.registry)
    )
    assert read == 150
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and row["status"] == "landed" and row["sha256"] == f["sha256"]
    (landed,) = [e for e in ctx.ledger.events(NIGHT) if e["event"] == "landed" and e["force"] == "norfolk"]
    assert json.loads(landed["detail"])["from"] == "sql"


def test_an_unchanged_night_is_an_identical_redelivery_and_a_late_row_a_new_one(
    source_db, ctx: context.Context
) -> None:
    import psycopg

    first = land.land_extract(ctx, NIGHT, "norfolk", "anpr_reads", "run-1")
    ctx.ledger.release_lease(NIGHT, "run-1")  # (run-1 ends here; its publish would release the night)
    again = land.land_extract(ctx, NIGHT, "norfolk", "anpr_reads", "run-2")
    ctx.ledger.release_lease(NIGHT, "run-2")
    assert again["files"] == first["files"]
    assert [e["event"] for e in ctx.ledger.events(NIGHT) if e["run_id"] == "run-2"] == ["redelivered_identical"]
    assert len(ctx.zones.raw.list_files(f"norfolk/anpr_reads/{NIGHT}", recursive=True)) == 1
    db: Database = source_db["db"]
    with psycopg.connect(host="127.0.0.1", user=db.user, dbname=db.name, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO anpr_reads (read_id, read_at, camera_id, latitude, longitude, vrm, loaded_at) "
            "VALUES ('NFK-LATE-1', '2026-10-25T23:30:00Z', 'NFK-CAM-0002', 52.6, 1.1, 'AB12CDE', "
            "'2026-10-25T23:50:00Z')"
        )
    try:
        late = land.land_extract(ctx, NIGHT, "norfolk", "anpr_reads", "run-3")
        assert late["files"][0]["sha256"] != first["files"][0]["sha256"]
        assert _raw_rows(ctx, late)[-1][0] == "NFK-LATE-1"  # 23:50 UTC is still the night (GMT)
        assert len(ctx.zones.raw.list_files(f"norfolk/anpr_reads/{NIGHT}", recursive=True)) == 2
    finally:
        with psycopg.connect(host="127.0.0.1", user=db.user, dbname=db.name, autocommit=True) as conn:
            conn.execute("DELETE FROM anpr_reads WHERE read_id = 'NFK-LATE-1'")


def test_a_night_with_no_rows_is_missing(source_db, ctx: context.Context) -> None:
    ref = land.land_extract(ctx, "2026-10-20", "norfolk", "anpr_reads", "run-1")
    assert ref["status"] == "missing" and ref["files"] == []
    assert not ctx.zones.raw.list_files("norfolk/anpr_reads/2026-10-20", recursive=True)


def test_the_pull_window_is_the_local_night_half_open() -> None:
    registry = load_registry(str(PROJECT_ROOT / "config"))
    assert sql_source.pull_window(registry, "2026-10-25") == (
        datetime(2026, 10, 24, 23, 0, tzinfo=UTC),
        datetime(2026, 10, 26, 0, 0, tzinfo=UTC),
    )
    assert sql_source.pull_window(registry, "2026-03-29") == (
        datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 23, 0, tzinfo=UTC),
    )


def test_rows_are_written_in_every_familys_format_and_read_back() -> None:
    registry = load_registry(str(PROJECT_ROOT / "config"))
    when = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 01:30 BST, the first of the two 01:30s
    cases = {
        "shared_csv": (["read_id", "read_at", "camera_id", "latitude", "longitude", "vrm"], "2026-10-25T00:30:00Z"),
        "eastern_jsonl": (
            ["ref", "observed", "camera.id", "camera.location.lat", "camera.location.lon", "plate"],
            1792888200000,
        ),
        "southern_bng": (["Read Ref", "Date Time", "Camera", "Easting", "Northing", "VRM"], "25/10/2026 01:30:00"),
    }
    forces = {"shared_csv": "norfolk", "eastern_jsonl": "bedfordshire", "southern_bng": "kent"}
    for family, (columns, written_time) in cases.items():
        contract = registry.contract(forces[family], "anpr_reads")
        coords = (600000.0, 300000.0) if family == "southern_bng" else (52.6, 1.1)
        rows = [("R1", when, "CAM-1", *coords, "Ab12 cdé"), ("R2", None, "CAM-2", None, None, None)]
        out = io.BytesIO()
        assert sql_source.write_rows(out, columns, rows, contract) == 2
        data = out.getvalue()
        again = io.BytesIO()
        sql_source.write_rows(again, columns, rows, contract)
        assert again.getvalue() == data  # deterministic bytes (gzip without a timestamp)
        if contract.compression == "gzip":
            data = gzip.decompress(data)
        text = data.decode(contract.encoding)
        if contract.format == "jsonl":
            doc = json.loads(text.splitlines()[0])
            assert doc["observed"] == written_time and doc["camera"]["location"]["lat"] == 52.6
        else:
            assert written_time in text and text.splitlines()[0] == contract.delimiter.join(columns)
        batches = list(read_extract(lambda out=out: io.BytesIO(out.getvalue()), contract, registry))
        assert sum(b.table.num_rows + len(b.rejects) for b in batches) == 2, family


def test_a_query_without_the_contracts_columns_is_refused() -> None:
    registry = load_registry(str(PROJECT_ROOT / "config"))
    with pytest.raises(ConfigError, match="vrm"):
        sql_source.check_columns(
            ["read_id", "read_at", "camera_id", "latitude", "longitude"],
            registry.contract("norfolk", "anpr_reads"),
            "sql:x/y.sql",
        )


def test_a_source_block_must_name_a_connection_and_an_existing_query(tmp_path: Path) -> None:
    bad = subset_config(
        tmp_path / "c1", ["norfolk"], {"norfolk": {"anpr_reads": {"conn_id": "x", "query": "nope.sql"}}}
    )
    with pytest.raises(ConfigError, match="no query file"):
        sql_source.load_sources(str(bad), str(PROJECT_ROOT / "sql"))
    esc = subset_config(
        tmp_path / "c2", ["norfolk"], {"norfolk": {"anpr_reads": {"conn_id": "x", "query": "../ledger.sql"}}}
    )
    with pytest.raises(Exception, match="unsafe"):
        sql_source.load_sources(str(esc), str(PROJECT_ROOT / "sql"))
    # The shipped registry has no SQL source: the seven forces deliver files by default.
    assert sql_source.load_sources(str(PROJECT_ROOT / "config"), str(PROJECT_ROOT / "sql")) == {}
