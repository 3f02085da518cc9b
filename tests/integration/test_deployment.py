"""``make up`` / ``make down`` end to end: the local deployment, a night through it, and its stop.

``xforce up`` (what ``make up`` runs) starts api-server, scheduler, dag-processor and triggerer on a
temporary data dir and a free port, with no plate key configured (so the development key is made,
as ``make run`` makes it). A small Norfolk night is generated and ``xforce_nightly`` triggered for
it through the REST API with the admin login ``xforce up`` printed; the LocalExecutor runs its tasks.
Then: exact accounting in the ledger and the curated Parquet, task log files for land, validate and
publish with the validation summary and no plate, the Data exchange view behind the login, a
screenshot of the DAG page in headless Chromium, and ``xforce down`` leaving no process behind.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import pyarrow.parquet as pq
import pytest
from conftest import need_service
from services import free_port, subset_config, wait_for

from helpers import check_against_truth, context_of, kill_run_once_landed, landing_plates
from xforce.store.ledger import open_ledger

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
BIN = Path(sys.executable).parent
XFORCE = str(BIN / "xforce")
NIGHT = "2026-11-27"
KILLED = "2026-11-25"  # an in-process `xforce run` of it is killed before `xforce up`
FORCE = "norfolk"
PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer", "validation-service")


def _load(rel: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(rel).stem + "_for_deployment", ROOT / rel)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


UI = _load("tests/integration/test_ui_view.py")  # chromium(): the UI tests' headless Chromium
E2E = _load("tests/integration/test_reports_e2e.py")  # decode_png


# ------------------------------------------------------------------------------------ helpers
def call(url: str, token: str | None = None, body: Any = None, method: str | None = None) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def login(url: str, user: str, password: str) -> str:
    code, body = call(f"{url}/auth/token", body={"username": user, "password": password})
    assert code == 201, body
    return str(json.loads(body)["access_token"])


def trigger_night(url: str, token: str, night: str) -> str:
    """Start ``xforce_nightly`` for ``night`` on a running deployment; its run id.

    The one place this test starts a run: DAGs start paused, so it is unpaused first, then a manual
    run is created through the REST API with the night as its ``night`` param."""
    code, body = call(f"{url}/api/v2/dags/xforce_nightly", token, {"is_paused": False}, method="PATCH")
    assert code == 200, body
    code, body = call(
        f"{url}/api/v2/dags/xforce_nightly/dagRuns", token, {"logical_date": None, "conf": {"night": night}}
    )
    assert code == 200, body
    return str(json.loads(body)["dag_run_id"])


def live_members(sid: int) -> list[int]:
    """Processes of session ``sid`` that are not zombies (what ``xforce up`` started, grandchildren too)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            out.append(int(entry.name))
    return out


def pids(home: Path) -> dict[str, int]:
    out = {}
    for name in PROCESSES:
        path = home / "deploy" / f"{name}.pid"
        if path.exists():
            out[name] = int(json.loads(path.read_text())["pid"])
    return out


def generate(env: dict[str, str], data: Path, night: str, reads: int) -> dict[str, Any]:
    """A night of FORCE generated into landing; the generator's truth for it (the next one replaces the file)."""
    argv = ["generate", "--date", night, "--out", str(data / "landing"), "--forces", FORCE, "--anpr-reads", str(reads)]
    gen = subprocess.run([XFORCE, *argv], env=env, capture_output=True, text=True, timeout=300)
    assert gen.returncode == 0, gen.stderr
    truth: dict[str, Any] = json.loads((data / "landing" / "_truth.json").read_text())
    return truth


# ------------------------------------------------------------------------------------ the deployment
@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("deployment")
    data = base / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW"))}
    env.update(
        {
            "XFORCE_DATA_DIR": str(data),  # no AIRFLOW_HOME: <data>/airflow, as for `make up`
            "XFORCE_CONFIG_DIR": str(subset_config(base / "config", [FORCE])),
            "XFORCE_SETTLE_SECONDS": "0",  # files the test writes are landed at once
            "XFORCE_UI_PORT": str(port),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # only the run this test triggers
        }
    )
    home = data / "airflow"
    # Before the deployment: an in-process run killed mid-night on the same data folder and Airflow home.
    killed_truth = generate(env, data, KILLED, 200)
    killed = kill_run_once_landed([XFORCE, "run", "--date", KILLED], env, data / "ledger.sqlite", KILLED)
    started = time.monotonic()
    first = subprocess.run([XFORCE, "up"], env=env, capture_output=True, text=True, timeout=600)
    up_seconds = time.monotonic() - started
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        yield {
            "env": env,
            "data": data,
            "home": home,
            "url": f"http://127.0.0.1:{port}",
            "port": port,
            "up": first,
            "up_seconds": up_seconds,
            "pids": pids(home),
            "base": base,
            "killed": killed,
            "killed_truth": killed_truth,
        }
    finally:
        recorded = pids(home)
        subprocess.run([XFORCE, "down"], env=env, capture_output=True, text=True, timeout=120)
        for sid in recorded.values():  # cleanup only, should `down` have failed: the assertions are below
            for pid in live_members(sid):
                os.kill(pid, 9)


@pytest.fixture(scope="module")
def night(deployment: dict[str, Any]) -> dict[str, Any]:
    env, data, url = deployment["env"], deployment["data"], deployment["url"]
    truth = generate(env, data, NIGHT, 500)
    password = json.loads((deployment["home"] / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    token = login(url, "admin", password)
    started = time.monotonic()
    run_id = trigger_night(url, token, NIGHT)

    def finished() -> str | None:
        code, body = call(f"{url}/api/v2/dags/xforce_nightly/dagRuns/{quote(run_id, safe='')}", token)
        state = json.loads(body)["state"] if code == 200 else None
        return state if state in ("success", "failed") else None

    state = wait_for(finished, 420, "the triggered xforce_nightly run to finish", interval=2)
    ledger = open_ledger(f"sqlite:///{data / 'ledger.sqlite'}", str(ROOT / "sql"))
    return {
        "token": token,
        "password": password,
        "run_id": run_id,
        "state": state,
        "run_seconds": time.monotonic() - started,
        "extracts": ledger.extracts(NIGHT),
        "truth": truth,
    }


# ------------------------------------------------------------------------------------ tests
def test_up_prints_the_ui_the_login_and_where_things_are(deployment: dict[str, Any]) -> None:
    out, home, url = deployment["up"].stdout, deployment["home"], deployment["url"]
    password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    assert f"UI            {url}" in out
    assert (
        f"user admin, password {password}" in out and str(home / "simple_auth_manager_passwords.json.generated") in out
    )
    assert str(deployment["data"]) in out and str(home / "logs") in out
    assert (home / "simple_auth_manager_passwords.json.generated").stat().st_mode & 0o077 == 0
    assert set(deployment["pids"]) == set(PROCESSES)
    print(f"xforce up: {deployment['up_seconds']:.0f} s")


def test_up_marks_failed_an_in_process_run_killed_before_it(deployment: dict[str, Any]) -> None:
    """A run `xforce run` drove in-process and was killed is not adopted half-done by the scheduler (it
    would hold the night and queue every later run behind it): `xforce up` marks it failed, says so and
    notes why on the run; `xforce run` of its night then runs on the deployment (the test below)."""
    run_id, pid = deployment["killed"]
    out = deployment["up"].stdout + deployment["up"].stderr
    assert f"marked failed xforce_nightly run {run_id}" in out and f"(pid {pid})" in out, out
    password = json.loads((deployment["home"] / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    token = login(deployment["url"], "admin", password)
    code, body = call(f"{deployment['url']}/api/v2/dags/xforce_nightly/dagRuns/{quote(run_id, safe='')}", token)
    assert code == 200, body
    run = json.loads(body)
    assert run["state"] == "failed" and f"(pid {pid}) ended without finishing it" in (run.get("note") or ""), run


def test_processes_run_with_the_projects_settings(deployment: dict[str, Any]) -> None:
    key = deployment["data"] / "secrets" / "hmac.key"
    assert key.is_file()  # no key configured: the development key `make run` makes
    checked = []
    for name, pid in deployment["pids"].items():
        assert os.getpgid(pid) == pid and os.getsid(pid) == pid, name  # each leads its own group and session
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode("utf-8", "replace")
        environ = dict(kv.split("=", 1) for kv in raw.split("\0") if "=" in kv)
        if "AIRFLOW_HOME" not in environ:  # setproctitle (the api-server's) writes over the environment's memory
            continue
        checked.append(name)
        assert environ["XFORCE_HMAC_KEY_FILE"] == str(key), name
        assert environ["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags"), name
        assert environ["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(ROOT / "plugins"), name
        assert environ["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False", name
        assert environ["AIRFLOW__USAGE_DATA_COLLECTION__ENABLED"] == "False", name
        assert environ["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert environ["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{deployment['url']}/execution/", name
        assert environ["AIRFLOW__API__BASE_URL"] == deployment["url"], name
        assert environ["XFORCE_DATA_DIR"] == str(deployment["data"]), name
    assert {"scheduler", "dag-processor"} <= set(checked), checked


def test_a_second_up_starts_nothing(deployment: dict[str, Any]) -> None:
    again = subprocess.run([XFORCE, "up"], env=deployment["env"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "already up" in again.stdout
    assert pids(deployment["home"]) == deployment["pids"]


def test_the_api_needs_the_login(deployment: dict[str, Any]) -> None:
    url = deployment["url"]
    assert call(f"{url}/api/v2/dags")[0] == 401
    assert call(f"{url}/xforce/grid")[0] == 401
    assert call(f"{url}/auth/token", body={"username": "admin", "password": "not-the-password"})[0] == 401


def test_the_triggered_night_publishes_with_exact_accounting(deployment: dict[str, Any], night: dict[str, Any]) -> None:
    print(f"xforce_nightly run on the deployment: {night['state']} in {night['run_seconds']:.0f} s")
    assert night["state"] == "success", night["run_id"]
    extracts = {r["dataset"]: r for r in night["extracts"] if r["force"] == FORCE}
    assert set(extracts) == {"incidents", "anpr_reads", "seizures"}
    assert extracts["anpr_reads"]["rows_in"] == 500
    data = deployment["data"]
    for dataset, row in extracts.items():
        assert row["status"] == "published", (dataset, row)
        assert row["rows_in"] == row["rows_published"] + row["rows_quarantined"], (dataset, row)
        part = f"dataset={dataset}/date={NIGHT}/force={FORCE}/part-0.parquet"
        assert pq.read_metadata(data / "curated" / part).num_rows == row["rows_published"], dataset
        quarantined = data / "quarantine" / part
        assert (pq.read_metadata(quarantined).num_rows if quarantined.exists() else 0) == row["rows_quarantined"]
    with context_of(deployment["env"]) as ctx:  # every planted defect quarantined with its reason, the rest once
        check_against_truth(ctx, NIGHT, night["truth"])


def test_validations_were_answered_by_the_hosts_service(deployment: dict[str, Any], night: dict[str, Any]) -> None:
    """Great Expectations is imported once for the host: each validate task's requests went to the
    validation service (a forked copy of it), none started a worker of its own."""
    log = (deployment["home"] / "deploy" / "validation-service.log").read_text(encoding="utf-8", errors="replace")
    served = re.findall(r"gxworker: validating for process (\d+) in process (\d+)", log)
    validated = [r for r in night["extracts"] if r["force"] == FORCE and r["rows_in"]]
    assert len({peer for peer, _ in served}) >= len(validated) == 3, log[-2000:]
    assert deployment["pids"]["validation-service"] not in {int(copy) for _, copy in served}  # forked copies


def test_each_extracts_tasks_link_to_its_page_and_the_nights_data_docs(
    deployment: dict[str, Any], night: dict[str, Any]
) -> None:
    url, token, run_id = deployment["url"], night["token"], quote(night["run_id"], safe="")
    code, body = call(f"{url}/api/v2/dags/xforce_nightly/dagRuns/{run_id}/taskInstances?limit=100", token)
    assert code == 200, body
    mapped = [t for t in json.loads(body)["task_instances"] if t["task_id"].startswith(("land_", "validate_"))]
    assert mapped
    for ti in mapped:
        force, dataset = ti["rendered_map_index"].split("/")
        code, body = call(
            f"{url}/api/v2/dags/xforce_nightly/dagRuns/{run_id}/taskInstances/{ti['task_id']}/links"
            f"?map_index={ti['map_index']}",
            token,
        )
        assert code == 200, body
        links = json.loads(body)["extra_links"]
        assert links["Extract in Data exchange"] == f"{url}/xforce/extract/{NIGHT}/{force}/{dataset}", links
        assert links["Data Docs"] == f"{url}/xforce/docs/validation/date={NIGHT}/index.html", links
        code, page = call(links["Extract in Data exchange"], token)
        assert code == 200 and force in page, (code, page[:300])  # the link leads to the extract's page


def test_task_logs_are_written_with_the_summary_and_no_plate(deployment: dict[str, Any], night: dict[str, Any]) -> None:
    run_logs = deployment["home"] / "logs" / "dag_id=xforce_nightly" / f"run_id={night['run_id']}"
    files = {
        task: sorted((run_logs / f"task_id={task}").rglob("*.log"))
        for task in ("land_anpr_reads", "validate_anpr_reads", "publish_night")
    }
    for task, found in files.items():
        assert found, f"no log file for {task} under {run_logs}"
    anpr = next(r for r in night["extracts"] if r["force"] == FORCE and r["dataset"] == "anpr_reads")
    summary = (
        f"{FORCE}/anpr_reads {NIGHT}: validated; received {anpr['rows_in']}, "
        f"published {anpr['rows_published']}, quarantined {anpr['rows_quarantined']}"
    )
    validate = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files["validate_anpr_reads"])
    assert summary in validate
    assert re.search(r"Great Expectations, row-level suite: \d+ of \d+ expectations met", validate)
    plates = landing_plates(deployment["data"] / "landing")
    assert len(plates) >= 50  # the generator draws plates from a pool of vehicles
    logs = {p: p.read_text(encoding="utf-8", errors="replace") for p in (deployment["home"] / "logs").rglob("*.log")}
    logs.update(
        {p: p.read_text(encoding="utf-8", errors="replace") for p in (deployment["home"] / "deploy").glob("*.log")}
    )
    leaks = [(str(p), plate) for p, text in logs.items() for plate in plates if plate in text]
    assert leaks == []


def test_the_data_exchange_view_answers_with_the_login(deployment: dict[str, Any], night: dict[str, Any]) -> None:
    code, page = call(f"{deployment['url']}/xforce/grid?nights=1", night["token"])
    assert code == 200
    assert f'data-cell="{NIGHT}/{FORCE}/anpr_reads" data-status="published"' in page


class _Login(http.server.BaseHTTPRequestHandler):
    """A page on another port of 127.0.0.1 that gives the browser the UI's session cookie (cookies
    are per host, not per port), then goes to the page to capture: what the login form does."""

    token = ""
    target = ""

    def do_GET(self) -> None:
        page = (
            f'<script>document.cookie = "_token={self.token}; path=/; SameSite=Lax";'
            f"location.replace({json.dumps(self.target)});</script>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args: Any) -> None:
        return


def test_the_dag_page_in_chromium(deployment: dict[str, Any], night: dict[str, Any]) -> None:
    need_service(Path(UI.CHROMIUM).exists(), f"headless Chromium not found at {UI.CHROMIUM} (apt-get install chromium)")
    handler = type("Login", (_Login,), {"token": night["token"], "target": f"{deployment['url']}/dags/xforce_nightly"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    start = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        dom = UI.chromium(deployment["base"], "--dump-dom", start)
        assert "xforce_nightly" in dom and 'type="password"' not in dom  # the DAG's page, not the login form
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "deployment_dag_page.png"
        shot.unlink(missing_ok=True)
        UI.chromium(deployment["base"], "--window-size=1400,1000", f"--screenshot={shot}", start)
    finally:
        server.shutdown()
        server.server_close()
    img = E2E.decode_png(shot.read_bytes())[:, :, :3]
    assert img.shape[:2] == (1000, 1400)
    white = (img >= 250).all(axis=2).mean()
    colours = len({tuple(p) for p in img[::7, ::7].reshape(-1, 3).tolist()})
    assert white < 0.98 and colours > 20, (white, colours)


def test_the_data_exchange_view_in_the_ui_in_chromium(deployment: dict[str, Any], night: dict[str, Any]) -> None:
    """The Data exchange view inside Airflow's UI (its plugin page, the grid in the UI's frame), as an
    operator logged in sees it: the night's published cells are drawn in the published colour."""
    from xforce.html import STATUS_COLOURS

    need_service(Path(UI.CHROMIUM).exists(), f"headless Chromium not found at {UI.CHROMIUM} (apt-get install chromium)")
    target = f"{deployment['url']}/plugin/data-exchange"
    handler = type("Login", (_Login,), {"token": night["token"], "target": target})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "deployment_data_exchange.png"
        shot.unlink(missing_ok=True)
        start = f"http://127.0.0.1:{server.server_address[1]}/"
        UI.chromium(deployment["base"], "--window-size=1500,1100", f"--screenshot={shot}", start)
    finally:
        server.shutdown()
        server.server_close()
    img = E2E.decode_png(shot.read_bytes())[:, :, :3].astype(int)
    published = [int(STATUS_COLOURS["published"][i : i + 2], 16) for i in (1, 3, 5)]
    cells = (abs(img - published) <= 3).all(axis=2).sum()
    assert cells > 500, cells  # the grid's published cells (and its legend), inside the UI's frame


def test_xforce_run_and_backfill_run_on_the_deployment_when_it_is_up(
    deployment: dict[str, Any], night: dict[str, Any]
) -> None:
    """With a deployment up, `xforce run` triggers the night on it (named and dated by its night) and
    prints the same table; `xforce backfill` is Airflow's own backfill (run type backfill)."""
    env, data, url, token = deployment["env"], deployment["data"], deployment["url"], night["token"]
    ran, filled = KILLED, "2026-11-26"  # `ran`: generated, and killed in-process, before `xforce up`
    generate(env, data, filled, 200)
    run = subprocess.run([XFORCE, "run", "--date", ran], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"xforce_nightly for {ran}: run success" in run.stdout + run.stderr
    assert "on the deployment" in run.stdout + run.stderr
    assert re.search(r"^force +dataset +received", run.stdout, flags=re.M)  # the same table as in-process
    backfill = subprocess.run(
        [XFORCE, "backfill", "--from", filled, "--to", filled, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert backfill.returncode == 0, backfill.stdout[-3000:] + backfill.stderr[-3000:]
    assert [n["night"] for n in json.loads(backfill.stdout)["nights"]] == [filled]
    code, body = call(f"{url}/api/v2/dags/xforce_nightly/dagRuns?limit=50&order_by=run_after", token)
    assert code == 200, body
    runs = {r["dag_run_id"]: r for r in json.loads(body)["dag_runs"]}
    (mine,) = [r for r in runs.values() if r["dag_run_id"].startswith(f"night__{ran}__")]
    (filling,) = [r for r in runs.values() if r["run_type"] == "backfill"]
    assert mine["state"] == filling["state"] == "success"
    assert mine["logical_date"].startswith(ran) and filling["logical_date"].startswith(filled)  # dated on the night
    code, body = call(f"{url}/api/v2/backfills?dag_id=xforce_nightly", token)
    assert code == 200 and json.loads(body)["total_entries"] == 1  # in the Backfills view
    ledger = open_ledger(f"sqlite:///{data / 'ledger.sqlite'}", str(ROOT / "sql"))
    for day in (ran, filled):
        rows = ledger.extracts(day)
        assert {r["status"] for r in rows if r["force"] == FORCE} == {"published"}, day
    with context_of(env) as ctx:  # the night `xforce run` ran, after its in-process run was killed mid-night
        check_against_truth(ctx, ran, deployment["killed_truth"])


def test_down_stops_every_process_and_a_second_down_is_harmless(deployment: dict[str, Any]) -> None:
    home, started = deployment["home"], deployment["pids"]
    assert all(live_members(pid) for pid in started.values())
    down = subprocess.run([XFORCE, "down"], env=deployment["env"], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert all(f"{name} ({pid})" in down.stdout for name, pid in started.items()), down.stdout
    for name, pid in started.items():
        assert live_members(pid) == [], name  # the process, its group and everything else in its session
    assert pids(home) == {}
    # A stale pid file naming a pid now held by another program (this test): removed, that program left alone.
    (home / "deploy" / "scheduler.pid").write_text(json.dumps({"pid": os.getpid(), "start": "1"}))
    again = subprocess.run([XFORCE, "down"], env=deployment["env"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing was running" in again.stdout and "stale pid file of scheduler" in again.stdout
    assert not (home / "deploy" / "scheduler.pid").exists()
