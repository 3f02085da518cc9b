"""``xforce`` as people and scripts meet it, driven as a subprocess (issue #19).

Each expected failure is one line on stderr with its exit code (2: asked wrongly, 1: the work failed)
and no traceback; ``--json`` parses and carries the counts; a closed pipe ends quietly with 0; the
progress bar is drawn under a pseudo-terminal and never in captured output. To keep the cost down
(three runs of the nightly DAG) the force registry is cut to one force.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
XFORCE = str(Path(sys.executable).parent / "xforce")
FORCE = "norfolk"
NIGHT, EMPTY, BUSY, INGESTED = "2026-11-27", "2026-11-20", "2026-11-21", "2026-11-22"


def _env(base: Path) -> dict[str, str]:
    config = base / "config"
    if not config.exists():
        shutil.copytree(ROOT / "config", config)
        registry = yaml.safe_load((config / "forces.yaml").read_text(encoding="utf-8"))
        registry["forces"] = {f: v for f, v in registry["forces"].items() if f == FORCE}
        (config / "forces.yaml").write_text(yaml.safe_dump(registry, sort_keys=False), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW", "AWS_"))}
    env["XFORCE_SETTLE_SECONDS"] = "0"  # files the test writes are landed at once
    env.update(
        {
            "XFORCE_DATA_DIR": str(base / "data"),
            "XFORCE_CONFIG_DIR": str(config),
            "AIRFLOW_HOME": str(base / "airflow_home"),
            "XFORCE_HMAC_KEY": os.environ["XFORCE_HMAC_KEY"],
            "AIRFLOW__API__BASE_URL": "http://127.0.0.1:9",  # no UI answers here
        }
    )
    return env


def xforce(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XFORCE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def under_pty(env: dict[str, str], *args: str, timeout: int = 600) -> tuple[int, str]:
    """Run ``xforce`` with a pseudo-terminal as stdout and stderr; (exit code, all it drew)."""
    main, child = pty.openpty()
    proc = subprocess.Popen([XFORCE, *args], env=env, stdin=subprocess.DEVNULL, stdout=child, stderr=child)
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(main)
    return proc.wait(timeout=timeout), b"".join(chunks).decode("utf-8", "replace")


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-2000:]
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith(f"xforce {result.args[1]}:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("cli")
    env = _env(base)
    landing = base / "data" / "landing"
    empty = xforce(env, "run", "--date", EMPTY, "--json")  # before anything was generated
    gen = xforce(env, "generate", "--date", NIGHT, "--out", str(landing), "--anpr-reads", "2000", "--forces", FORCE)
    assert gen.returncode == 0, gen.stderr
    code, drawn = under_pty(env, "run", "--date", NIGHT)
    backfill = xforce(env, "backfill", "--from", NIGHT, "--to", NIGHT, "--json")
    return {"base": base, "env": env, "landing": landing, "empty": empty, "pty": (code, drawn), "backfill": backfill}


# ---------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("args", "extra_env", "code", "needles"),
    [
        (["generate", "--date", NIGHT, "--out", "x", "--forces", "yorkshire"], {}, 2, ["unknown force 'yorkshire'"]),
        (["run", "--date", "2026-13-01"], {}, 2, ["not a date", "--help"]),
        (["status", "--date", "yesterday"], {}, 2, ["not a date"]),
        (["ingest", "--force", FORCE, "--dataset", "crimes", "--file", "x", "--date", NIGHT], {}, 2, ["crimes"]),
        (
            ["ingest", "--force", FORCE, "--dataset", "incidents", "--file", "/no/such.csv", "--date", NIGHT],
            {},
            2,
            ["no such file"],
        ),
        (["backfill", "--from", NIGHT, "--to", EMPTY], {}, 2, ["before --from"]),
        (
            ["run", "--date", NIGHT],
            {"XFORCE_HMAC_KEY": "short"},
            2,
            ["no plate pseudonymisation key", "XFORCE_HMAC_KEY"],
        ),
        (
            ["status", "--date", NIGHT],
            {"XFORCE_LEDGER_URL": "postgresql+psycopg://xforce:pw@127.0.0.1:9/ledger"},
            1,
            ["cannot use the database", "XFORCE_LEDGER_URL"],
        ),
        (
            [
                "ingest",
                "--force",
                FORCE,
                "--dataset",
                "incidents",
                "--file",
                str(ROOT / "Makefile"),
                "--date",
                "2026-11-23",
            ],
            {
                "XFORCE_LANDING_URI": "s3://xforce/landing",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                "AWS_ACCESS_KEY_ID": "x",
                "AWS_SECRET_ACCESS_KEY": "y",
                "AWS_DEFAULT_REGION": "eu-west-2",
                "XFORCE_S3_MAX_ATTEMPTS": "1",
            },
            1,
            ["cannot reach S3", "AWS_ENDPOINT_URL"],
        ),
    ],
    ids=[
        "unknown-force",
        "bad-date",
        "bad-date-status",
        "unknown-dataset",
        "no-file",
        "reversed-range",
        "short-key",
        "database-down",
        "s3-down",
    ],
)
def test_each_expected_failure_is_one_line_with_its_exit_code(
    tmp_path: Path, args: list[str], extra_env: dict[str, str], code: int, needles: list[str]
) -> None:
    env = {**_env(tmp_path), **extra_env}
    one_line_error(xforce(env, *args, timeout=120), code, *needles)


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "XFORCE_LEDGER_URL": "postgresql+psycopg://xforce:pw@127.0.0.1:9/ledger"}
    result = xforce(env, "status", "--date", NIGHT, "-v", timeout=120)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_run_with_an_empty_landing_fails_with_the_hint_and_json_counts(world) -> None:
    empty = world["empty"]
    assert empty.returncode == 1, empty.stderr[-3000:]
    doc = json.loads(empty.stdout)  # stdout is the JSON document alone
    assert doc["night"] == EMPTY and doc["extracts"] == 3 and doc["statuses"]["missing"] == 3
    one_line_error(empty, 1, "nothing to process", "xforce generate --date")
    assert "Traceback" not in empty.stderr and Path(doc["log"]).is_file()


def test_a_night_already_running_is_refused_in_one_line(world) -> None:
    from xforce.store.ledger import open_ledger

    env = world["env"]
    ledger = open_ledger(f"sqlite:///{Path(env['XFORCE_DATA_DIR']) / 'ledger.sqlite'}", str(ROOT / "sql"))
    ledger.acquire_lease(BUSY, "scheduled__elsewhere", 600, holder="worker-1:42")
    one_line_error(xforce(env, "run", "--date", BUSY), 1, f"night {BUSY} is being run by scheduled__elsewhere")
    status = xforce(env, "status", "--date", BUSY, "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["state"] == "running"


# ---------------------------------------------------------------------------------- a night
def test_run_on_a_terminal_draws_progress_then_the_table_once_and_next_steps(world) -> None:
    code, drawn = world["pty"]
    assert code == 0, drawn[-3000:]
    assert f"xforce_nightly {NIGHT}" in drawn and "extracts" in drawn  # the bar's description and counter
    assert f"xforce_nightly for {NIGHT}: run success" in drawn
    assert len(re.findall(r"^force +dataset +received", drawn, flags=re.M)) == 1  # the table, once
    assert "Data Docs" in drawn and f"xforce status --date {NIGHT}" in drawn and "Traceback" not in drawn
    assert "[info" not in drawn and "DAG TEST" not in drawn  # Airflow's logs went to the log file


def test_status_tells_never_ran_from_each_final_state(world) -> None:
    env = world["env"]
    never = xforce(env, "status", "--date", "2020-01-01")
    assert never.returncode == 0 and "never ran" in never.stdout
    assert json.loads(xforce(env, "status", "--date", "2020-01-01", "--json").stdout)["state"] == "never_ran"
    status = xforce(env, "status", "--date", NIGHT, "--json")
    doc = json.loads(status.stdout)
    assert doc["state"] == "published" and doc["statuses"]["published"] == 3 and doc["records"]["received"] > 2000
    assert {r["force"] for r in doc["table"]} == {FORCE}


def test_backfill_json_carries_each_nights_counts_and_no_progress_when_captured(world) -> None:
    backfill = world["backfill"]
    assert backfill.returncode == 0, backfill.stderr[-3000:]
    doc = json.loads(backfill.stdout)
    assert doc["failed"] == [] and [n["night"] for n in doc["nights"]] == [NIGHT]
    assert doc["nights"][0]["statuses"]["published"] == 3
    assert f"xforce_nightly {NIGHT}" not in backfill.stdout + backfill.stderr  # no progress bar off a terminal
    assert "Traceback" not in backfill.stderr and "[info" not in backfill.stderr


def test_output_piped_to_head_ends_with_0_and_no_traceback(world) -> None:
    env = world["env"]
    piped = subprocess.run(
        ["bash", "-c", f"set -o pipefail; {XFORCE} status --date {NIGHT} | head -n 1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0 and "Traceback" not in piped.stderr and piped.stdout.count("\n") == 1
    closed = subprocess.Popen([XFORCE, "audit"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert closed.stdout is not None and closed.stderr is not None
    closed.stdout.close()  # the reader went away before a line was written
    err = closed.stderr.read().decode()
    assert closed.wait(timeout=120) == 0 and err == ""


def test_ingest_draws_records_with_rate_only_on_a_terminal(world) -> None:
    env = world["env"]
    src = world["landing"] / FORCE / "anpr_reads" / NIGHT / "anpr_reads.csv"
    code, drawn = under_pty(
        env, "ingest", "--force", FORCE, "--dataset", "anpr_reads", "--file", str(src), "--date", INGESTED
    )
    assert code == 0, drawn[-3000:]
    assert "records" in drawn and "rec/s" in drawn and "Traceback" not in drawn
    again = xforce(
        env, "ingest", "--force", FORCE, "--dataset", "anpr_reads", "--file", str(src), "--date", INGESTED, "--json"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    doc = json.loads(again.stdout)
    assert doc["status"] == "published" and doc["received"] == 2000 and doc["published"] + doc["quarantined"] == 2000
    assert "rec/s" not in again.stdout + again.stderr


def test_version_and_help() -> None:
    version = subprocess.run([XFORCE, "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("xforce ")
    helped = subprocess.run([XFORCE, "run", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "example:" in helped.stdout and "--json" in helped.stdout


# ---------------------------------------------------------------------------------- two at once
def test_two_runs_of_one_night_at_once_one_publishes_the_other_refuses(tmp_path: Path) -> None:
    """Two ``xforce run`` of one night started together on a fresh install (one data folder, one
    Airflow home): the race is decided by the night's lease in the ledger, taken before any Airflow
    work; exactly one publishes, the other exits 1 at once saying who holds the night."""
    from xforce.context import Context

    env = _env(tmp_path)
    gen = xforce(env, "generate", "--date", NIGHT, "--out", str(tmp_path / "data" / "landing"), "--forces", FORCE)
    assert gen.returncode == 0, gen.stderr
    runs = [
        subprocess.Popen(
            [XFORCE, "run", "--date", NIGHT, "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    done = [(p.wait(timeout=900), *p.communicate()) for p in runs]
    codes = sorted(code for code, _, _ in done)
    assert codes == [0, 1], [(c, err[-2000:]) for c, _, err in done]
    (won,) = [json.loads(out) for code, out, _ in done if code == 0]
    (_, _, refused) = next(d for d in done if d[0] == 1)
    lines = [ln for ln in refused.splitlines() if ln.startswith("xforce run:")]
    assert len(lines) == 1 and f"night {NIGHT} is being run by" in lines[0], refused[-3000:]
    assert "Traceback" not in refused
    old = {k: os.environ.get(k) for k in ("XFORCE_DATA_DIR", "XFORCE_CONFIG_DIR")}
    os.environ.update({k: env[k] for k in old})
    try:
        ctx = Context.from_env()
        for dataset in ("incidents", "anpr_reads", "seizures"):
            row = ctx.ledger.get(NIGHT, FORCE, dataset)
            assert row is not None and row["status"] == "published", (dataset, row)
            assert row["rows_in"] == row["rows_published"] + row["rows_quarantined"] > 0
            manifest = ctx.zones.curated.read_json(f"dataset={dataset}/date={NIGHT}/_manifest.json")
            assert (
                manifest["state"] == "published"
                and manifest["forces"][FORCE]["rows_published"] == row["rows_published"]
            )
        assert won["statuses"]["published"] == 3
        busy = [e for e in ctx.ledger.events(NIGHT) if e["event"] == "night_busy"]
        assert busy and {e["run_id"] for e in busy}.isdisjoint({manifest["run_id"]})
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_in_process_runs_write_each_task_trys_log_file_with_the_summary_and_no_plate(world) -> None:
    """`xforce run` (dag.test, in this process) leaves each task try's log where Airflow's UI reads it,
    as an executor would: the land, validate and publish logs carry the extract's summary, and no
    task log holds a plate of the landed files."""
    import sqlite3

    from helpers import landing_plates

    env = world["env"]
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as con:
        run_ids = [r[0] for r in con.execute("SELECT run_id FROM dag_run WHERE dag_id = 'xforce_nightly'")]
    logs = Path(env["AIRFLOW_HOME"]) / "logs" / "dag_id=xforce_nightly"
    for run_id in run_ids:  # every run, the backfill's too
        tasks = {
            p.parent.name if p.parent.name.startswith("task_id=") else p.parent.parent.name
            for p in (logs / f"run_id={run_id}").rglob("attempt=1.log")
        }
        assert {
            "task_id=plan_night",
            "task_id=land_anpr_reads",
            "task_id=validate_anpr_reads",
            "task_id=publish_night",
        } <= tasks
    night_run = logs / f"run_id={run_ids[-1]}"
    validate = "\n".join(p.read_text(encoding="utf-8") for p in night_run.glob("task_id=validate_anpr_reads/*/*.log"))
    assert re.search(rf"{FORCE}/anpr_reads {NIGHT}: validated; received \d+, published \d+, quarantined \d+", validate)
    assert re.search(r"Great Expectations, row-level suite: \d+ of \d+ expectations met", validate)
    assert "Done. Returned value was" in validate
    land = "\n".join(p.read_text(encoding="utf-8") for p in night_run.glob("task_id=land_anpr_reads/*/*.log"))
    assert "land_anpr_reads" not in validate and "Task started" in land  # each file holds its own task's part
    plates = landing_plates(world["landing"])
    assert len(plates) >= 50
    leaks = [(str(p), plate) for p in logs.rglob("*.log") for plate in plates if plate in p.read_text(encoding="utf-8")]
    assert leaks == []


def test_runs_are_dated_by_their_night_and_started_when_they_started(world) -> None:
    """In Airflow's grid a run's logical date is its night (02:30 local on it) and its start the real one
    (``dag.test()`` would date it at the logical date, days before it ran)."""
    import sqlite3
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    db = Path(world["env"]["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(db) as con:
        rows = con.execute(
            "SELECT run_id, logical_date, start_date, end_date, conf, run_after FROM dag_run "
            "WHERE dag_id = 'xforce_nightly' ORDER BY run_after"
        ).fetchall()
    assert len(rows) >= 3  # the empty night's run, NIGHT's run and its backfill
    nights = []
    for run_id, logical, start, end, conf, run_after in rows:
        night = json.loads(conf)["night"]
        nights.append(night)
        local = datetime.fromisoformat(logical).replace(tzinfo=UTC).astimezone(ZoneInfo("Europe/London"))
        assert (local.date().isoformat(), local.strftime("%H:%M")) == (night, "02:30"), run_id
        began, ended = (datetime.fromisoformat(t).replace(tzinfo=UTC) for t in (start, end))
        assert timedelta(0) <= ended - began < timedelta(minutes=10), run_id  # real: minutes, not days
        assert began > datetime.fromisoformat(run_after).replace(tzinfo=UTC), run_id
    assert nights == sorted(nights)  # ordered by when they may run: the grid reads in night order


def test_a_killed_run_is_marked_failed_and_its_night_taken_back_at_once(tmp_path: Path) -> None:
    """kill -9 of an in-process `xforce run` mid-night leaves its DAG run `running` and its night's lease
    held. The next `xforce run` of the night does not wait out the lease (900 s): it sees the holder's
    process is gone, marks that run failed with a note saying why, records `run_abandoned`, takes the
    night and publishes every record once."""
    import sqlite3

    from helpers import kill_run_once_landed

    env = _env(tmp_path)
    data = tmp_path / "data"
    gen = xforce(env, "generate", "--date", NIGHT, "--out", str(data / "landing"), "--forces", FORCE)
    assert gen.returncode == 0, gen.stderr
    killed, pid = kill_run_once_landed([XFORCE, "run", "--date", NIGHT], env, data / "ledger.sqlite", NIGHT)

    again = xforce(env, "run", "--date", NIGHT, "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"marked failed xforce_nightly run {killed}" in again.stderr, again.stderr[-3000:]
    assert "is being run by" not in again.stderr
    doc = json.loads(again.stdout)
    assert doc["statuses"]["published"] == 3
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as con:
        (state,) = con.execute("SELECT state FROM dag_run WHERE run_id = ?", (killed,)).fetchone()
        notes = con.execute(
            "SELECT content FROM dag_run_note JOIN dag_run ON dag_run.id = dag_run_note.dag_run_id "
            "WHERE dag_run.run_id = ?",
            (killed,),
        ).fetchall()
        unfinished = con.execute(
            "SELECT count(*) FROM task_instance WHERE run_id = ? AND (state IS NULL OR state NOT IN "
            "('success', 'failed', 'skipped', 'upstream_failed', 'removed'))",
            (killed,),
        ).fetchone()[0]
    assert state == "failed" and unfinished == 0
    assert notes and f"(pid {pid}) ended without finishing it" in notes[0][0]
    with sqlite3.connect(data / "ledger.sqlite") as con:
        abandoned = con.execute(
            "SELECT run_id FROM xforce_events WHERE night = ? AND event = 'run_abandoned'", (NIGHT,)
        ).fetchall()
        rows = con.execute(
            "SELECT rows_in, rows_published, rows_quarantined, status FROM xforce_extracts WHERE night = ?", (NIGHT,)
        ).fetchall()
    assert abandoned == [(killed,)]
    assert len(rows) == 3 and all(s == "published" and n == p + q > 0 for n, p, q, s in rows), rows
