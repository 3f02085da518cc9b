"""The nightly DAG end to end through Airflow itself (``xforce run`` -> ``dag.test()``), on generated data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pyarrow.compute as pc
import pytest

from helpers import check_against_truth
from xforce import context
from xforce.exchange import publish
from xforce.schemas import CANONICAL, DATASETS
from xforce.store import layout
from xforce_tools.generate import generate_night

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NIGHT = "2026-10-25"  # the night the clocks go back: the repeated hour is in every southern_bng extract
XFORCE = str(Path(sys.executable).parent / "xforce")


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XFORCE, "run", "--date", NIGHT], env=env, capture_output=True, text=True, timeout=900)


def _snapshot(ctx: context.Context) -> dict[str, object]:
    out: dict[str, object] = {}
    for dataset in DATASETS:
        for force in ctx.registry.forces:
            for zone in ("curated", "quarantine"):
                part = layout.part_file(dataset, NIGHT, force)
                if ctx.zones.named(zone).exists(part):
                    t = ctx.zones.named(zone).read_parquet(part)
                    out[f"{zone}/{part}"] = t.sort_by("source_record").to_pylist()
    out["ledger"] = [
        {
            k: r[k]
            for k in (
                "force",
                "dataset",
                "status",
                "rows_in",
                "rows_published",
                "rows_quarantined",
                "sha256",
                "received_at",
            )
        }
        for r in ctx.ledger.extracts(NIGHT)
    ]
    return out


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("e2e")
    data = base / "data"
    truth = generate_night(date.fromisoformat(NIGHT), data / "landing", anpr_reads=400, seed=7)
    # One extract missing, one broken: the other nineteen must still publish.
    shutil.rmtree(data / "landing" / "suffolk" / "anpr_reads")
    broken = data / "landing" / "kent" / "seizures" / NIGHT / "seizures.csv"
    text = broken.read_bytes().replace(b"Seizure Ref", b"SeizureReference", 1)
    broken.write_bytes(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW"))}
    env["XFORCE_SETTLE_SECONDS"] = "0"  # files the test writes are landed at once
    env.update(
        {
            "XFORCE_DATA_DIR": str(data),
            "AIRFLOW_HOME": str(base / "airflow_home"),
            "XFORCE_HMAC_KEY": os.environ["XFORCE_HMAC_KEY"],
            "PATH": os.environ["PATH"],
        }
    )
    first = _run(env)
    return {"data": data, "env": env, "truth": truth, "first": first, "airflow_home": base / "airflow_home"}


@pytest.fixture
def ctx(night, monkeypatch: pytest.MonkeyPatch) -> context.Context:
    monkeypatch.setenv("XFORCE_DATA_DIR", str(night["data"]))
    return context.Context.from_env()


def test_run_publishes_every_clean_record_once_and_quarantines_every_defect(night, ctx) -> None:
    first = night["first"]
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "run success" in first.stdout
    check_against_truth(ctx, NIGHT, night["truth"], skip={("suffolk", "anpr_reads"), ("kent", "seizures")})
    # Airflow really ran it, in the AIRFLOW_HOME we gave.
    assert (night["airflow_home"] / "airflow.db").exists()


def test_missing_and_broken_extracts_are_marked_and_hold_back_nothing(night, ctx) -> None:
    missing = ctx.ledger.get(NIGHT, "suffolk", "anpr_reads")
    assert missing is not None and missing["status"] == "missing"
    broken = ctx.ledger.get(NIGHT, "kent", "seizures")
    assert broken is not None and broken["status"] == "quarantined"
    assert "wrong header" in broken["error"] and "Seizure Ref" in broken["error"]
    raw = ctx.zones.raw
    assert all(raw.exists(f["raw"]) for f in broken["files"])  # the raw copy is kept
    manifest = ctx.zones.curated.read_json(f"dataset=seizures/date={NIGHT}/_manifest.json")
    assert manifest["forces"]["kent"]["status"] == "quarantined"
    assert manifest["forces"]["norfolk"]["status"] == "published"
    anpr = ctx.zones.curated.read_json(f"dataset=anpr_reads/date={NIGHT}/_manifest.json")
    assert anpr["forces"]["suffolk"]["status"] == "missing"
    assert sum(v["status"] == "published" for v in anpr["forces"].values()) == 6
    # The printed table names every force and dataset.
    for force in ctx.registry.forces:
        assert force in night["first"].stdout


def test_no_clear_plate_is_published(night, ctx) -> None:
    anpr = publish.read_curated(ctx.settings.curated, "anpr_reads")
    assert "plate" not in anpr.column_names
    tokens = anpr.column("plate_token")
    assert pc.all(pc.match_substring_regex(tokens, "^[0-9a-f]{64}$")).as_py()


def test_second_run_changes_nothing(night, ctx) -> None:
    before = _snapshot(ctx)
    second = _run(night["env"])
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert _snapshot(ctx) == before
    events = [e["event"] for e in ctx.ledger.events(NIGHT)]
    assert events.count("redelivered_identical") >= 19


def test_dataset_reads_back_with_pyarrow_duckdb_polars(night, ctx) -> None:
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds

    curated = Path(ctx.settings.curated)
    for dataset in DATASETS:
        table = ds.dataset(curated / f"dataset={dataset}", format="parquet", partitioning="hive").to_table()
        expected = sum(r["rows_published"] or 0 for r in ctx.ledger.extracts(NIGHT) if r["dataset"] == dataset)
        assert table.num_rows == expected > 0
        for field in CANONICAL[dataset]:
            assert table.schema.field(field.name).type == field.type
        assert set(pc.unique(table.column("force")).to_pylist()) <= set(ctx.registry.forces)
        glob = str(curated / f"dataset={dataset}" / "**" / "*.parquet")
        con = duckdb.connect()
        n_duck = con.execute(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()
        assert n_duck[0][0] == expected
        forces = con.execute(f"SELECT DISTINCT force FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()
        assert {f for (f,) in forces} == set(pc.unique(table.column("force")).to_pylist())
        pl_frame = pl.scan_parquet(glob, hive_partitioning=True).collect()
        assert pl_frame.height == expected
        assert pl_frame.schema["record_id"] == pl.String
