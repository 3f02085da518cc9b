"""Lineage of a night through ``xforce run``: OpenLineage events in the local file, and the curated
Assets' event metadata (issue #17, item 6).

One small night of one force through Airflow (``dag.test()``), then the file transport's events
(``<data dir>/lineage/events.jsonl``): ``publish_night``'s COMPLETE event names the raw objects it
published from and the curated and quarantine partitions it wrote, with the ledger's row counts and
the curated columns; no plate of the landing files is anywhere in the file; and each curated Asset's
event in Airflow's database carries the night, the forces and their counts.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from services import subset_config

from xforce.schemas import CANONICAL, DATASETS, quarantine_schema

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
XFORCE = str(Path(sys.executable).parent / "xforce")
FORCE = "norfolk"
NIGHT = "2026-11-27"


def _env(base: Path) -> dict[str, str]:
    """A fresh install in ``base`` with the force registry cut to one force."""
    config = subset_config(base / "config", [FORCE])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW", "AWS_", "OPENLINEAGE"))}
    env.update(
        {
            "XFORCE_SETTLE_SECONDS": "0",
            "XFORCE_DATA_DIR": str(base / "data"),
            "XFORCE_CONFIG_DIR": str(config),
            "AIRFLOW_HOME": str(base / "airflow_home"),
            "XFORCE_HMAC_KEY": os.environ["XFORCE_HMAC_KEY"],
            "AIRFLOW__API__BASE_URL": "http://127.0.0.1:9",  # no UI answers here
        }
    )
    return env


def xforce(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XFORCE, *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("lineage")
    env = _env(base)
    landing = base / "data" / "landing"
    gen = xforce(env, "generate", "--date", NIGHT, "--out", str(landing), "--anpr-reads", "300", "--forces", FORCE)
    assert gen.returncode == 0, gen.stderr
    run = xforce(env, "run", "--date", NIGHT, "--json")
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    events_file = base / "data" / "lineage" / "events.jsonl"
    assert events_file.is_file(), "no OpenLineage events file: is the provider installed and configured?"
    con = sqlite3.connect(base / "data" / "ledger.sqlite")
    con.row_factory = sqlite3.Row
    ledger = {
        r["dataset"]: dict(r)
        for r in con.execute("SELECT * FROM xforce_extracts WHERE night = ? AND force = ?", (NIGHT, FORCE))
    }
    con.close()
    con = sqlite3.connect(base / "airflow_home" / "airflow.db")
    assets = {
        name: json.loads(extra or "{}")
        for name, extra in con.execute(
            "SELECT a.name, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id ORDER BY e.id"
        )
    }
    con.close()
    return {
        "base": base,
        "landing": landing,
        "text": events_file.read_text(encoding="utf-8"),
        "ledger": ledger,
        "assets": assets,
        "data": base / "data",
    }


def _publish_complete(text: str) -> dict:
    events = [json.loads(line) for line in text.splitlines() if line.strip()]
    found = [
        e
        for e in events
        if e.get("eventType") == "COMPLETE" and e.get("job", {}).get("name", "").endswith(".publish_night")
    ]
    assert len(found) == 1, [(e.get("eventType"), e.get("job", {}).get("name")) for e in events]
    return found[0]


def test_publish_complete_names_raw_inputs_and_partitions_with_the_ledgers_counts(night) -> None:
    event = _publish_complete(night["text"])  # type: ignore[arg-type]
    ledger: dict[str, dict] = night["ledger"]  # type: ignore[assignment]
    data: Path = night["data"]  # type: ignore[assignment]
    assert event["job"]["namespace"] == "xforce"

    raw = {str(data / "raw" / f["raw"]) for row in ledger.values() for f in json.loads(row["files"] or "[]")}
    inputs = {i["name"]: i for i in event["inputs"]}
    assert {i["namespace"] for i in event["inputs"]} == {"file"}
    assert set(inputs) == raw
    for row in ledger.values():
        files = json.loads(row["files"])
        stats = inputs[str(data / "raw" / files[0]["raw"])]["inputFacets"]["inputStatistics"]
        assert stats["size"] == files[0]["bytes"]
        assert stats["rowCount"] == row["rows_in"]  # one file per extract from the generator

    outputs = {o["name"]: o for o in event["outputs"]}
    for dataset in DATASETS:
        row = ledger[dataset]
        assert row["status"] == "published", row
        part = f"dataset={dataset}/date={NIGHT}/force={FORCE}/part-0.parquet"
        curated = outputs[str(data / "curated" / part)]
        assert curated["outputFacets"]["outputStatistics"]["rowCount"] == row["rows_published"]
        fields = curated["facets"]["schema"]["fields"]
        assert [f["name"] for f in fields] == CANONICAL[dataset].names
        assert all(f["type"] for f in fields)
        quarantine = outputs.get(str(data / "quarantine" / part))
        if row["rows_quarantined"]:
            assert quarantine is not None, sorted(outputs)
            assert quarantine["outputFacets"]["outputStatistics"]["rowCount"] == row["rows_quarantined"]
            assert [f["name"] for f in quarantine["facets"]["schema"]["fields"]] == quarantine_schema(dataset).names
        else:
            assert quarantine is None
    assert sum(o["outputFacets"]["outputStatistics"]["rowCount"] for o in event["outputs"]) == sum(
        r["rows_in"] for r in ledger.values()
    )


def test_no_plate_is_in_the_events_file(night) -> None:
    from test_no_plate_leaks import plates_in_landing

    needles = plates_in_landing(night["landing"], NIGHT)  # type: ignore[arg-type]
    assert len(needles.all()) > 20  # the plates of the fleet the generator drives
    assert needles.find(night["text"]) == set()  # type: ignore[arg-type]


def test_each_curated_asset_event_carries_the_night_forces_and_counts(night) -> None:
    assets: dict[str, dict] = night["assets"]  # type: ignore[assignment]
    ledger: dict[str, dict] = night["ledger"]  # type: ignore[assignment]
    for dataset in DATASETS:
        extra = assets[f"xforce_curated_{dataset}"]
        assert extra["night"] == NIGHT
        assert extra["published_forces"] == [FORCE]
        assert extra["suite_version"].startswith("sha256:")
        counts = extra["forces"][FORCE]
        row = ledger[dataset]
        assert counts == {
            "status": "published",
            "rows_in": row["rows_in"],
            "rows_published": row["rows_published"],
            "rows_quarantined": row["rows_quarantined"],
        }
        assert extra["totals"]["rows_published"] == row["rows_published"]
