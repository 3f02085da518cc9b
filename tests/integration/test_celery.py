"""Scale-out on Airflow's CeleryExecutor: real api-server, scheduler, dag-processor and Celery worker.

Redis (127.0.0.1:6379) is the broker, PostgreSQL (127.0.0.1:5432, a fresh database) the metadata
DB, the result backend and the run ledger; Norfolk's ANPR reads come from Norfolk's own (seeded)
PostgreSQL database through its SQL source. ``xforce_nightly`` is triggered for a generated night;
while it runs, the worker is killed (its whole process group, SIGKILL, as when a machine dies) and a
new one is started. Airflow's heartbeat and queue timeouts and the DAG's retries must bring the run
to success with every mapped task executed by a Celery worker, and every record published or
quarantined exactly once.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import need_service
from services import (
    free_port,
    fresh_database,
    kill_group,
    redis_available,
    seed_anpr_source,
    start_group,
    subset_config,
    wait_for,
)

from helpers import check_against_truth
from xforce import context
from xforce.airflow.env import airflow_env
from xforce.settings import Settings
from xforce_tools.generate import generate_night

pytestmark = pytest.mark.integration

NIGHT = "2026-11-27"
FORCES = ["norfolk", "bedfordshire"]  # two families: 6 extracts, 12 mapped tasks
SOURCE = {"anpr_reads": {"conn_id": "norfolk_anpr_db", "query": "norfolk_anpr_reads.sql"}}
BIN = Path(sys.executable).parent
AIRFLOW = str(BIN / "airflow")
RUN_ID = f"celery_test_{secrets.token_hex(4)}"
DEADLINE = 420  # seconds for the whole run, worker restart included


class Cluster:
    """The Airflow processes of one test module, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.workers = 0

    def start(self, name: str, *args: str) -> None:
        self.procs[name] = start_group([AIRFLOW, *args], self.env, self.logs / f"{name}.log")

    def start_worker(self) -> str:
        self.workers += 1
        name = f"worker{self.workers}"
        self.start(
            name,
            "celery",
            "worker",
            "--queues",
            self.env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"],
            "--concurrency",
            "2",
            "--celery-hostname",
            f"xforce-test-{name}@%h",
            "--skip-serve-logs",
        )
        return name

    def kill(self, name: str) -> None:
        kill_group(self.procs.pop(name))

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name)

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _get(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _states(engine: sa.Engine) -> tuple[str | None, list[dict[str, Any]]]:
    with engine.connect() as conn:
        run = conn.execute(
            sa.text("SELECT state FROM dag_run WHERE dag_id = 'xforce_nightly' AND run_id = :r"), {"r": RUN_ID}
        ).scalar()
        tis = [
            dict(r)
            for r in conn.execute(
                sa.text(
                    "SELECT task_id, map_index, state, try_number, queue, external_executor_id, hostname "
                    "FROM task_instance WHERE dag_id = 'xforce_nightly' AND run_id = :r"
                ),
                {"r": RUN_ID},
            ).mappings()
        ]
    return run, tis


@pytest.fixture(scope="module")
def celery_run(tmp_path_factory: pytest.TempPathFactory):
    need_service(redis_available(), "Redis not reachable on 127.0.0.1:6379")
    base = tmp_path_factory.mktemp("celery")
    logs = base / "logs"
    logs.mkdir()
    data = base / "data"
    truth = generate_night(date.fromisoformat(NIGHT), data / "landing", anpr_reads=200, seed=23, forces=FORCES)
    delivered = data / "landing" / "norfolk" / "anpr_reads" / NIGHT / "anpr_reads.csv"
    with fresh_database("xforce_test_celery") as db, fresh_database("xforce_test_norfolk") as norfolk_db:
        seed_anpr_source(norfolk_db, delivered, NIGHT)
        delivered.unlink()  # Norfolk's reads now exist only in its database
        api_port = free_port()
        queue = f"xforce_test_{secrets.token_hex(4)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW"))}
        env["XFORCE_SETTLE_SECONDS"] = "0"  # files the test writes are landed at once
        env.update(
            {
                "XFORCE_DATA_DIR": str(data),
                "XFORCE_CONFIG_DIR": str(subset_config(base / "config", FORCES, {"norfolk": SOURCE})),
                "AIRFLOW_CONN_NORFOLK_ANPR_DB": json.dumps(norfolk_db.connection()),
                "XFORCE_LEDGER_URL": db.url,
                "XFORCE_HMAC_KEY": os.environ["XFORCE_HMAC_KEY"],
                "AIRFLOW_HOME": str(base / "airflow"),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db.url,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:6379/{secrets.randbelow(15) + 1}",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://{db.user}@127.0.0.1:5432/{db.name}",
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
                "AIRFLOW__API__PORT": str(api_port),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the run this test triggers
                # Two task slots on the worker and a few more tasks queued behind them in Redis.
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                # Recovery from a dead worker within the test's time: a running task without a
                # heartbeat for 20 s is failed (then retried); a task queued for 180 s is re-queued;
                # the DAG's retry delay (2 min, exponential) is capped at 3 s.
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "180",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
                "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "3",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            }
        )
        env = airflow_env(Settings.from_env(), env)  # dags, plugins, telemetry off; the values above win
        cluster = Cluster(env, logs)
        result: dict[str, Any] = {"truth": truth, "data": data, "env": env, "db": db, "cluster": cluster}
        try:
            _run(cluster, env, db, result)
            yield result
        finally:
            cluster.stop_all()


def _run(cluster: Cluster, env: dict[str, str], db: Any, result: dict[str, Any]) -> None:
    migrate = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    pools = subprocess.run([str(BIN / "xforce"), "pools"], env=env, capture_output=True, text=True, timeout=300)
    assert pools.returncode == 0 and "pool xforce_validate: 2 slot(s)" in pools.stdout, pools.stderr[-3000:]
    engine = sa.create_engine(db.url)
    cluster.start("api-server", "api-server", "--port", env["AIRFLOW__API__PORT"])
    cluster.start("scheduler", "scheduler")
    cluster.start("dag-processor", "dag-processor")
    cluster.start_worker()

    def dag_ready() -> bool:
        with engine.connect() as conn:
            return bool(
                conn.execute(sa.text("SELECT count(*) FROM serialized_dag WHERE dag_id = 'xforce_nightly'")).scalar()
            )

    wait_for(dag_ready, 180, "the dag-processor to serialise xforce_nightly")
    api = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
    wait_for(lambda: _get(f"{api}/api/v2/version"), 120, "the api-server")
    body = json.dumps({"dag_run_id": RUN_ID, "logical_date": None, "conf": {"night": NIGHT}}).encode()
    request = urllib.request.Request(
        f"{api}/api/v2/dags/xforce_nightly/dagRuns", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as resp:  # the REST API, as a user or a system would
        assert resp.status == 200, resp.read()
    started = time.monotonic()

    def mid_run() -> list[dict[str, Any]] | None:
        state, tis = _states(engine)
        assert state in ("queued", "running"), f"run ended ({state}) before the worker could be killed"
        done = [t for t in tis if t["map_index"] >= 0 and t["state"] == "success"]
        validating = [t for t in tis if t["task_id"].startswith("validate_") and t["state"] == "running"]
        # Not while the worker holds a task it has received but not yet started: Airflow would only
        # re-queue that one after [scheduler] task_queued_timeout, longer than this test should take.
        received = set(re.findall(r"execute_workload\[([0-9a-f-]+)\] received", cluster.log("worker1")))
        starting = [t for t in tis if t["state"] == "queued" and t["external_executor_id"] in received]
        return tis if done and validating and not starting else None

    at_kill = wait_for(mid_run, DEADLINE, "a validate task running", interval=0.5)
    cluster.kill("worker1")  # SIGKILL to the worker and every process it started: its running tasks die too
    result["at_kill"] = at_kill
    result["killed_after"] = time.monotonic() - started
    time.sleep(2)
    cluster.start_worker()
    # An operator runs the same night from the command line while the scheduler's run holds it.
    result["cli_beside"] = subprocess.run(
        [str(BIN / "xforce"), "run", "--date", NIGHT], env=env, capture_output=True, text=True, timeout=600
    )

    def finished() -> str | None:
        state, tis = _states(engine)
        result["last"] = tis
        return state if state in ("success", "failed") else None

    result["state"] = wait_for(finished, DEADLINE, "the DAG run to finish", interval=2)
    result["wall"] = time.monotonic() - started
    result["final"] = _states(engine)[1]
    result["logs"] = {name: cluster.log(name) for name in ("worker1", "worker2", "scheduler")}


def _mapped(tis: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tis if t["map_index"] >= 0]


def test_the_run_succeeds_after_the_worker_was_killed_mid_run(celery_run) -> None:
    assert celery_run["state"] == "success", celery_run["logs"]["scheduler"][-5000:]
    at_kill = celery_run["at_kill"]
    unfinished = [t for t in at_kill if t["state"] not in ("success", "skipped", "failed")]
    assert unfinished, "the worker was killed after everything had finished"
    running = [t for t in at_kill if t["state"] == "running"]
    assert running
    final = {(t["task_id"], t["map_index"]): t for t in celery_run["final"]}
    # The tasks that were running on the killed worker were run again (Airflow retries).
    assert all(final[(t["task_id"], t["map_index"])]["try_number"] > t["try_number"] for t in running), (
        running,
        [final[(t["task_id"], t["map_index"])] for t in running],
    )
    assert {t["state"] for t in celery_run["final"]} == {"success"}


def test_a_cli_run_beside_the_schedulers_run_is_refused_and_changes_nothing(celery_run) -> None:
    beside = celery_run["cli_beside"]
    assert beside.returncode == 1, beside.stdout[-2000:] + beside.stderr[-2000:]
    lines = [ln for ln in beside.stderr.splitlines() if ln.startswith("xforce run:")]
    assert len(lines) == 1 and f"night {NIGHT} is being run by {RUN_ID}" in lines[0], beside.stderr[-2000:]
    assert "Traceback" not in beside.stderr
    assert celery_run["state"] == "success"  # the scheduler's run went on, and published (test below)


def test_every_mapped_task_ran_on_a_celery_worker(celery_run) -> None:
    mapped = _mapped(celery_run["final"])
    assert len(mapped) == 2 * len(FORCES) * 3  # land + validate per force and dataset
    queue = celery_run["env"]["AIRFLOW__OPERATORS__DEFAULT_QUEUE"]
    assert {t["queue"] for t in mapped} == {queue}
    received = celery_run["logs"]["worker1"] + celery_run["logs"]["worker2"]
    for t in mapped:
        assert t["external_executor_id"], t  # the Celery task id the executor sent
        assert t["external_executor_id"] in received, t  # ... and a worker received
    late = [t for t in mapped if t["external_executor_id"] in celery_run["logs"]["worker2"]]
    assert late, "the restarted worker ran nothing"


def test_no_row_was_lost_or_duplicated(celery_run, monkeypatch: pytest.MonkeyPatch) -> None:
    env = celery_run["env"]
    for name in ("XFORCE_DATA_DIR", "XFORCE_CONFIG_DIR", "XFORCE_LEDGER_URL"):
        monkeypatch.setenv(name, env[name])
    ctx = context.Context.from_env()
    check_against_truth(ctx, NIGHT, celery_run["truth"])
    for dataset in ("incidents", "anpr_reads", "seizures"):
        manifest = ctx.zones.curated.read_json(f"dataset={dataset}/date={NIGHT}/_manifest.json")
        assert {f["status"] for f in manifest["forces"].values()} == {"published"}
        assert manifest["run_id"] == RUN_ID  # the scheduler's run published, not the CLI beside it
    landed = [e for e in ctx.ledger.events(NIGHT) if e["event"] == "landed" and e["force"] == "norfolk"]
    assert {json.loads(e["detail"])["from"] for e in landed if e["dataset"] == "anpr_reads"} == {"sql"}
