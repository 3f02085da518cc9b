"""PostgreSQL as Airflow's metadata database and as the run ledger, end to end through ``xforce run``.

Fresh databases on 127.0.0.1:5432 (trust auth) per run, dropped afterwards. Norfolk's ANPR reads
come from Norfolk's own (seeded) PostgreSQL database through its SQL source in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from services import fresh_database, seed_anpr_source, subset_config

from helpers import check_against_truth
from xforce import pipeline
from xforce.schemas import DATASETS

pytestmark = pytest.mark.integration

NIGHT = "2026-03-29"  # the clocks go forward: a 23-hour night
FORCES = ["norfolk", "bedfordshire", "essex"]  # one per family
XFORCE = str(Path(sys.executable).parent / "xforce")


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory):
    from xforce.generate import generate_night

    base = tmp_path_factory.mktemp("pg")
    data = base / "data"
    truth = generate_night(date.fromisoformat(NIGHT), data / "landing", anpr_reads=200, seed=5, forces=FORCES)
    delivered = data / "landing" / "norfolk" / "anpr_reads" / NIGHT / "anpr_reads.csv"
    with (
        fresh_database("xforce_test_airflow") as airflow_db,
        fresh_database("xforce_test_ledger") as ledger_db,
        fresh_database("xforce_test_norfolk") as norfolk_db,
    ):
        seed_anpr_source(norfolk_db, delivered, NIGHT)
        delivered.unlink()  # Norfolk's reads now exist only in its database
        sources = {"norfolk": {"anpr_reads": {"conn_id": "norfolk_anpr_db", "query": "norfolk_anpr_reads.sql"}}}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW"))}
        env.update(
            {
                "XFORCE_DATA_DIR": str(data),
                "XFORCE_CONFIG_DIR": str(subset_config(base / "config", FORCES, sources)),
                "XFORCE_LEDGER_URL": ledger_db.url,
                "XFORCE_HMAC_KEY": os.environ["XFORCE_HMAC_KEY"],
                "AIRFLOW_HOME": str(base / "airflow"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_db.url,
                "AIRFLOW_CONN_NORFOLK_ANPR_DB": json.dumps(norfolk_db.connection()),
            }
        )
        run = subprocess.run([XFORCE, "run", "--date", NIGHT], env=env, capture_output=True, text=True, timeout=900)
        with sa.create_engine(airflow_db.url).connect() as conn:
            dag_runs = conn.execute(
                sa.text("SELECT run_id, state FROM dag_run WHERE dag_id = 'xforce_nightly'")
            ).fetchall()
            tis = conn.execute(
                sa.text("SELECT task_id, map_index, state FROM task_instance WHERE dag_id = 'xforce_nightly'")
            ).fetchall()
        yield {
            "data": data,
            "env": env,
            "truth": truth,
            "run": run,
            "ledger_url": ledger_db.url,
            "dag_runs": dag_runs,
            "tis": tis,
            "airflow_home": base / "airflow",
        }


def test_the_run_succeeds_with_airflows_metadata_in_postgresql(night) -> None:
    run = night["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "run success" in run.stdout
    assert [state for _, state in night["dag_runs"]] == ["success"]
    assert not (night["airflow_home"] / "airflow.db").exists()  # no SQLite on the side
    mapped = [(t, i, s) for t, i, s in night["tis"] if i >= 0]
    assert len(mapped) == 2 * len(FORCES) * len(DATASETS)  # land + validate, per force and dataset
    assert {s for _, _, s in mapped} == {"success"}


def test_the_ledger_is_in_postgresql_and_every_record_is_accounted_for(night, monkeypatch) -> None:
    monkeypatch.setenv("XFORCE_DATA_DIR", str(night["data"]))
    monkeypatch.setenv("XFORCE_CONFIG_DIR", night["env"]["XFORCE_CONFIG_DIR"])
    monkeypatch.setenv("XFORCE_LEDGER_URL", night["ledger_url"])
    ctx = pipeline.Context.from_env()
    assert ctx.ledger.engine.dialect.name == "postgresql"
    check_against_truth(ctx, NIGHT, night["truth"])
    with ctx.ledger.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT force, dataset, status, rows_in FROM xforce_extracts WHERE night = :n"), {"n": NIGHT}
        ).fetchall()
    assert len(rows) == len(FORCES) * len(DATASETS) and {r.status for r in rows} == {"published"}
    norfolk = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert norfolk is not None and norfolk["rows_in"] == night["truth"]["norfolk"]["anpr_reads"]["records"]
    landed = [e for e in ctx.ledger.events(NIGHT) if e["event"] == "landed" and e["force"] == "norfolk"]
    assert {json.loads(e["detail"])["from"] for e in landed if e["dataset"] == "anpr_reads"} == {"sql"}
    for dataset in DATASETS:
        manifest = ctx.zone("curated").read_json(f"dataset={dataset}/date={NIGHT}/_manifest.json")
        assert manifest["totals"]["rows_in"] == sum(r.rows_in for r in rows if r.dataset == dataset)
