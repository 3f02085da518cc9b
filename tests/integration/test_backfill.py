"""Backfills, corrections and late extracts through Airflow.

Seven nights are backfilled twice with ``xforce backfill`` (the second changes nothing); then a force
re-delivers a corrected extract for one night and another force's missing extract lands late for
another night, and ``xforce_late_extracts`` (through Airflow) triggers ``xforce_nightly`` for exactly
those two nights, once. The test then runs those two nights as the scheduler would run the triggered
runs, and checks the correction superseded the first delivery and the late extract was published.

To keep the cost down (16 runs of the nightly DAG) the force registry is cut to one force (the
backfill, supersede and late logic works per force x dataset and does not depend on how many forces
there are; the seven-force night through Airflow is tests/integration/test_nightly_e2e.py) and the
volumes are tiny.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from xforce import context
from xforce.exchange import late
from xforce.reports import queries as reports
from xforce.schemas import DATASETS
from xforce.store import layout
from xforce_tools.generate import extract_path, generate_night

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
XFORCE = str(Path(sys.executable).parent / "xforce")
FORCES = ("norfolk",)
FIRST = date.today() - timedelta(days=9)  # inside the late-extract look-back of 14 days
NIGHTS = [(FIRST + timedelta(days=i)).isoformat() for i in range(7)]
CORRECTED, LATE = NIGHTS[2], NIGHTS[4]

# One process for all the Airflow work (Airflow and Great Expectations are imported once): two
# backfills through the CLI's own code (`xforce backfill`), then, after the test has changed the landing
# zone, xforce_late_extracts twice (the second hour finds the same files) and, standing in for the
# scheduler, xforce_nightly for each night it triggered. It reports after each phase and waits for the test.
DRIVER = r"""
import contextlib, io, json, os, sys
from xforce.cli import main, run_dag_test

def say(obj):
    sys.__stdout__.write("RESULT " + json.dumps(obj) + "\n")
    sys.__stdout__.flush()

def backfill(first, last):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["backfill", "--from", first, "--to", last])
    return {"rc": rc, "stdout": out.getvalue()}

first, last = sys.argv[1], sys.argv[2]
say(backfill(first, last))
sys.stdin.readline()
say(backfill(first, last))
sys.stdin.readline()

from airflow.dag_processing.dagbag import DagBag
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from sqlalchemy import select

with contextlib.redirect_stdout(io.StringIO()):
    late_dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("xforce_late_extracts")
    states = [str(late_dag.test().state) for _ in range(2)]
with create_session() as s:
    rows = s.execute(select(DagRun).where(DagRun.dag_id == "xforce_nightly", DagRun.run_id.like("late__%")))
    runs = [{"run_id": r.run_id, "conf": r.conf, "state": str(r.state)} for (r,) in rows]
with contextlib.redirect_stdout(io.StringIO()):
    ran = {n: run_dag_test(n)[0] for n in sorted(r["conf"]["night"] for r in runs)}
with create_session() as s:
    nightly = [(r.run_id, str(r.state)) for (r,) in s.execute(select(DagRun).where(DagRun.dag_id == "xforce_nightly"))]
say({"late_dag": states, "triggered": runs, "ran": ran, "nightly_runs": nightly})
"""


class Driver:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.stderr = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER, NIGHTS[0], NIGHTS[-1]],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )

    def result(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT ") :])
        self.proc.wait(timeout=60)
        raise AssertionError(f"driver ended ({self.proc.returncode}): {self.log.read_text()[-4000:]}")

    def go(self) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.result()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)
        self.stderr.close()


def _config(base: Path) -> Path:
    """The project's config with the force registry cut to FORCES."""
    config = base / "config"
    shutil.copytree(ROOT / "config", config)
    registry = yaml.safe_load((config / "forces.yaml").read_text(encoding="utf-8"))
    registry["forces"] = {f: v for f, v in registry["forces"].items() if f in FORCES}
    (config / "forces.yaml").write_text(yaml.safe_dump(registry, sort_keys=False), encoding="utf-8")
    return config


def _snapshot(ctx: context.Context, nights: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for night in nights:
        for dataset in DATASETS:
            for force in FORCES:
                part = layout.part_file(dataset, night, force)
                for zone in ("curated", "quarantine"):
                    if ctx.zones.named(zone).exists(part):
                        t = ctx.zones.named(zone).read_parquet(part)
                        out[f"{zone}/{part}"] = t.sort_by(
                            [("source_file", "ascending"), ("source_record", "ascending")]
                        ).to_pylist()
            manifest = ctx.zones.curated.read_json(f"dataset={dataset}/date={night}/_manifest.json")
            out[f"manifest/{dataset}/{night}"] = {
                f: {
                    k: v
                    for k, v in m.items()
                    if k in ("status", "rows_in", "rows_published", "rows_quarantined", "sha256")
                }
                for f, m in manifest["forces"].items()
            }
        out[f"ledger/{night}"] = [
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
            for r in ctx.ledger.extracts(night)
        ]
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("backfill")
    data = base / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW"))}
    env.update(
        {
            "XFORCE_DATA_DIR": str(data),
            "XFORCE_CONFIG_DIR": str(_config(base)),
            "AIRFLOW_HOME": str(base / "airflow_home"),
            "XFORCE_HMAC_KEY": os.environ["XFORCE_HMAC_KEY"],
            # the correction below is written and checked at once: no settle interval here
            "XFORCE_SETTLE_SECONDS": "0",
            "PYTHONPATH": str(ROOT / "plugins"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            # as a deployment unpauses them: then publish's asset events queue xforce_reports
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        }
    )
    for night in NIGHTS:
        generate_night(
            date.fromisoformat(night), data / "landing", anpr_reads=50, incidents=8, seizures=3, seed=11, forces=FORCES
        )
    # norfolk's ANPR extract for LATE is held back: it lands after the night's run
    stash = base / "stash"
    shutil.move(data / "landing" / "norfolk" / "anpr_reads" / LATE, stash)
    driver = Driver(env, base / "driver.log")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XFORCE_DATA_DIR", str(data))
        mp.setenv("XFORCE_CONFIG_DIR", env["XFORCE_CONFIG_DIR"])
        for var in ("XFORCE_CURATED_URI", "XFORCE_QUARANTINE_URI", "XFORCE_LANDING_URI", "XFORCE_LEDGER_URL"):
            mp.delenv(var, raising=False)
        ctx = context.Context.from_env()
        try:
            first = driver.result()
            snap_first = _snapshot(ctx, NIGHTS)
            second = driver.go()
            snap_second = _snapshot(ctx, NIGHTS)
            yield {
                "base": base,
                "data": data,
                "ctx": ctx,
                "stash": stash,
                "driver": driver,
                "runs": (first, second),
                "snaps": (snap_first, snap_second),
            }
        finally:
            driver.close()


def _airflow_runs(world) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(world["base"] / "airflow_home" / "airflow.db")
    try:
        return con.execute(
            "SELECT run_id, state, conf FROM dag_run WHERE dag_id = 'xforce_nightly' ORDER BY id"
        ).fetchall()
    finally:
        con.close()


def test_backfill_runs_each_night_in_order_through_airflow(world) -> None:
    for run in world["runs"]:
        assert run["rc"] == 0, run["stdout"][-3000:]
        lines = [ln for ln in run["stdout"].splitlines() if ln.startswith("xforce_nightly for ")]
        assert [ln.split()[2].rstrip(":") for ln in lines] == NIGHTS
        assert all("run success" in ln for ln in lines)
        assert "7 of 7 nights succeeded" in run["stdout"]
    runs = _airflow_runs(world)
    assert len(runs) == 14 and {state for _, state, _ in runs} == {"success"}
    ctx = world["ctx"]
    for night in NIGHTS:
        rows = {(r["force"], r["dataset"]): r["status"] for r in ctx.ledger.extracts(night)}
        expected = {(f, d): "published" for f in FORCES for d in DATASETS}
        if night == LATE:
            expected[("norfolk", "anpr_reads")] = "missing"
        assert rows == expected, night


def test_second_backfill_of_seven_nights_changes_nothing(world) -> None:
    first, second = world["snaps"]
    assert len([k for k in first if k.startswith("curated/")]) == 7 * len(FORCES) * len(DATASETS) - 1
    assert first == second
    events = [e["event"] for night in NIGHTS for e in world["ctx"].ledger.events(night)]
    assert events.count("redelivered_identical") == 7 * len(FORCES) * len(DATASETS) - 1
    assert "superseded" not in events


def test_each_publish_emits_asset_events_that_queue_the_reports_dag(world) -> None:
    con = sqlite3.connect(world["base"] / "airflow_home" / "airflow.db")
    try:
        events = con.execute(
            "SELECT a.name, a.uri, e.source_dag_id, e.source_task_id, e.source_run_id FROM asset_event e "
            "JOIN asset a ON a.id = e.asset_id"
        ).fetchall()
        queued = con.execute(
            "SELECT a.name FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id "
            "WHERE q.target_dag_id = 'xforce_reports'"
        ).fetchall()
    finally:
        con.close()
    names = {f"xforce_curated_{d}" for d in DATASETS}
    runs = {run_id for run_id, _, _ in _airflow_runs(world)}
    for dataset in DATASETS:
        mine = [e for e in events if e[0] == f"xforce_curated_{dataset}"]
        assert len(mine) == 14, dataset  # one per published night, both backfills
        assert {e[1:4] for e in mine} == {(f"xforce://curated/dataset={dataset}", "xforce_nightly", "publish_night")}
        assert {e[4] for e in mine} == runs
    # all three assets are queued for xforce_reports: a running scheduler would start it now
    assert {q[0] for q in queued} == names
    # and it would report on the nights its triggering runs published
    first_run = next(e[4] for e in events if e[0] == "xforce_curated_incidents")
    assert reports.nights_to_report(world["ctx"].ledger, [first_run]) == [NIGHTS[0], NIGHTS[-1]]


def test_correction_and_late_extract_are_picked_up_by_the_hourly_dag(world) -> None:
    ctx, data = world["ctx"], world["data"]
    before = _snapshot(ctx, NIGHTS)
    old = ctx.ledger.get(CORRECTED, "norfolk", "incidents")
    assert old is not None
    # norfolk re-delivers a corrected incidents extract for CORRECTED (its last record withdrawn) ...
    path = extract_path(data / "landing", "norfolk", "incidents", date.fromisoformat(CORRECTED))
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    # ... and its ANPR extract for LATE arrives after that night's run.
    shutil.move(world["stash"], data / "landing" / "norfolk" / "anpr_reads" / LATE)
    found = {n.night: [(e.force, e.dataset, e.reason) for e in n.extracts] for n in late.find_late_nights(ctx)}
    assert found == {
        CORRECTED: [("norfolk", "incidents", "changed file")],
        LATE: [("norfolk", "anpr_reads", "missing at its run")],
    }

    result = world["driver"].go()
    assert result["late_dag"] == ["success", "success"]
    # one triggered run per night, not one per hour, each with the night as conf
    assert sorted(r["conf"]["night"] for r in result["triggered"]) == [CORRECTED, LATE]
    assert all(r["run_id"].startswith(f"late__{r['conf']['night']}__") for r in result["triggered"])
    assert result["ran"] == {CORRECTED: "success", LATE: "success"}
    # (the triggered runs themselves stay queued: there is no scheduler in a test)
    assert {r["state"] for r in result["triggered"]} == {"queued"}
    assert len(result["nightly_runs"]) == 14 + 2 + 2

    # The correction superseded the first delivery; its raw copy is kept; the night holds the new rows.
    new = ctx.ledger.get(CORRECTED, "norfolk", "incidents")
    assert new is not None and new["status"] == "published" and new["rows_in"] == old["rows_in"] - 1
    (event,) = [e for e in ctx.ledger.events(CORRECTED) if e["event"] == "superseded"]
    detail = json.loads(event["detail"])
    assert (detail["old_sha256"], detail["new_sha256"]) == (old["sha256"], new["sha256"])
    assert all(ctx.zones.raw.exists(p) for p in detail["old_raw"])
    part = layout.part_file("incidents", CORRECTED, "norfolk")
    zones = [ctx.zones.curated, ctx.zones.quarantine]
    rows = sum(z.read_parquet(part).num_rows for z in zones if z.exists(part))
    assert rows == new["rows_in"]
    # The late extract is published, and nothing is late any more.
    assert ctx.ledger.get(LATE, "norfolk", "anpr_reads")["status"] == "published"  # type: ignore[index]
    assert late.find_late_nights(ctx) == []
    # Every other night is exactly as it was.
    after = _snapshot(ctx, NIGHTS)
    untouched = [k for k in before if CORRECTED not in k and LATE not in k]
    assert untouched and all(after[k] == before[k] for k in untouched)
