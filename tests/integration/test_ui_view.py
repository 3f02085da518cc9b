"""The "Data exchange" view in the real Airflow api-server, opened in headless Chromium.

A night is seeded with the pipeline's own functions (generated extracts for six forces, Suffolk
delivering nothing, Kent's ANPR extract empty, so quarantined by its table-level suite); then
``airflow db migrate`` and two ``airflow api-server`` processes with the plugin from ``plugins/``:

* one with ``SIMPLE_AUTH_MANAGER_ALL_ADMINS`` (tests only) for the browser: the grid's DOM must show
  the statuses the ledger holds, and a screenshot of the view inside the Airflow UI is saved under
  ``test-artifacts/``;
* one with auth on (a ``viewer`` user): the plugin's routes refuse a request without a token or with
  a bad one, and answer one with a token from ``POST /auth/token``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import need_service

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
NIGHT = "2026-11-27"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "reader-password-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def wait_up(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"api-server exited: {log.read_text()[-3000:]}")
        try:
            if get(f"http://127.0.0.1:{port}/api/v2/monitor/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"api-server on {port} not up after {timeout} s: {log.read_text()[-3000:]}")


def seed(data_dir: Path) -> dict[tuple[str, str], str]:
    """One night through land/process/publish: Suffolk missing, Kent's ANPR quarantined."""
    from xforce import context
    from xforce.exchange import land, process, publish
    from xforce_tools.generate import generate_night

    landing = data_dir / "landing"
    forces = ["norfolk", "cambridgeshire", "bedfordshire", "hertfordshire", "essex", "kent"]
    generate_night(dt.date.fromisoformat(NIGHT), landing, anpr_reads=60, forces=forces)
    kent_anpr = landing / "kent" / "anpr_reads" / NIGHT / "anpr_reads.csv"
    kent_anpr.write_text(kent_anpr.read_text(encoding="cp1252").splitlines()[0] + "\n", encoding="cp1252")
    ctx = context.Context.from_env()
    run_id = f"test__{uuid.uuid4().hex[:8]}"
    for wave in (("incidents", "anpr_reads"), ("seizures",)):
        for item in land.plan_night(ctx, NIGHT):
            if item["dataset"] in wave:
                ref = land.land_extract(ctx, NIGHT, item["force"], item["dataset"], run_id)
                process.process_extract(ctx, ref, run_id)
    publish.publish_night(ctx, NIGHT, run_id)
    from xforce.quality.deadlines import alert_missing_extract

    for r in ctx.ledger.extracts(NIGHT):  # delivered by 00:30, before the 02:00 cut-off; Essex at 03:10, late
        if r["received_at"]:
            at = "2026-11-28T03:10:00+00:00" if r["force"] == "essex" else "2026-11-28T00:30:00+00:00"
            ctx.ledger.record(NIGHT, r["force"], r["dataset"], received_at=at)
    for dataset in ("incidents", "anpr_reads", "seizures"):  # what the skip callback does in a DAG run
        assert alert_missing_extract(ctx, NIGHT, "suffolk", dataset, run_id) is not None
    return {(r["force"], r["dataset"]): r["status"] for r in ctx.ledger.extracts(NIGHT)}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    need_service(Path(CHROMIUM).exists(), f"headless Chromium not found at {CHROMIUM} (apt-get install chromium)")
    base = tmp_path_factory.mktemp("ui")
    data_dir, home = base / "data", base / "airflow"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps({"reader": PASSWORD}))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(base / "no-dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-jwt-secret-not-a-secret-0123456789",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "reader:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API__WORKERS": "1",
        "SCARF_ANALYTICS": "false",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "XFORCE_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(ROOT / "plugins"),
    }
    for var in [v for v in env if v.startswith("XFORCE_") and v.endswith("_URI")] + ["XFORCE_LEDGER_URL"]:
        env.pop(var, None)
    airflow = str(Path(sys.executable).parent / "airflow")
    migrate = subprocess.Popen([airflow, "db", "migrate"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    saved = {k: os.environ.get(k) for k in ("XFORCE_DATA_DIR", "XFORCE_LEDGER_URL", "XFORCE_DOCS_URI")}
    os.environ["XFORCE_DATA_DIR"] = str(data_dir)
    for k in ("XFORCE_LEDGER_URL", "XFORCE_DOCS_URI"):
        os.environ.pop(k, None)
    try:
        statuses = seed(data_dir)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    _, err = migrate.communicate(timeout=300)
    assert migrate.returncode == 0, err.decode()[-2000:]
    procs: list[subprocess.Popen[bytes]] = []
    ports = {}
    try:
        for name, admins in (("admins", "True"), ("auth", "False")):
            port = free_port()
            log = base / f"api-{name}.log"
            proc = subprocess.Popen(
                [airflow, "api-server", "--port", str(port), "--host", "127.0.0.1", "--workers", "1"],
                env={**env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": admins},
                stdout=log.open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole below
            )
            procs.append(proc)
            ports[name] = (port, proc, log)
        for port, proc, log in ports.values():
            wait_up(port, proc, log)
        yield {"ports": {k: v[0] for k, v in ports.items()}, "statuses": statuses, "base": base}
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def chromium(base: Path, *args: str) -> str:
    profile = base / f"chromium-{uuid.uuid4().hex[:6]}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return out.stdout


def test_seeded_night_has_a_missing_and_a_quarantined_force(servers: dict[str, Any]) -> None:
    statuses = servers["statuses"]
    assert {statuses[("suffolk", d)] for d in ("incidents", "anpr_reads", "seizures")} == {"missing"}
    assert statuses[("kent", "anpr_reads")] == "quarantined"
    assert statuses[("norfolk", "anpr_reads")] == "published"


def test_grid_in_chromium_shows_the_ledger_statuses(servers: dict[str, Any]) -> None:
    port = servers["ports"]["admins"]
    # the UI's all-admins login sets the session cookie, then the browser follows to the view's page
    url = f"http://127.0.0.1:{port}/auth/token/login?next={quote('/xforce/grid?nights=3')}"
    dom = chromium(servers["base"], "--dump-dom", url)
    cells = dict(re.findall(r'data-cell="([^"]+)" data-status="([^"]+)"', dom))
    assert len(cells) == 7 * 3 * 3  # seven forces x three datasets x three nights
    for (force, dataset), status in servers["statuses"].items():
        assert cells[f"{NIGHT}/{force}/{dataset}"] == status, (force, dataset)
    assert cells[f"{NIGHT}/suffolk/anpr_reads"] == "missing"
    assert cells[f"{NIGHT}/kent/anpr_reads"] == "quarantined"
    assert cells["2026-11-26/norfolk/anpr_reads"] == "none"  # a night never run
    assert 'href="docs/date=2026-11-27/index.html#kent-anpr_reads"' in dom
    assert 'href="extract/2026-11-27/kent/anpr_reads"' in dom
    assert "Supplier scorecard" in dom
    card = {f: re.sub(r"<[^>]+>", "|", row) for f, row in re.findall(r'<tr data-force="(\w+)">(.*?)</tr>', dom)}
    assert len(card) == 7
    # force | nights | on time | completeness | rejection | rows | quarantined whole | warnings | alerts
    cols = {f: [c.strip() for c in row.split("|") if c.strip()] for f, row in card.items()}
    assert cols["norfolk"][2:4] == ["100.0% (3/3)", "100.0% (3/3)"]
    assert cols["essex"][2:4] == ["0.0% (0/3)", "100.0% (3/3)"]  # delivered, but after the cut-off
    assert cols["suffolk"][2:4] == ["0.0% (0/3)", "0.0% (0/3)"] and cols["suffolk"][-1] == "3"
    assert cols["kent"][-3] == "1"  # one extract quarantined whole


def test_view_inside_the_airflow_ui_screenshot(servers: dict[str, Any]) -> None:
    port = servers["ports"]["admins"]
    code, body = get(f"http://127.0.0.1:{port}/api/v2/plugins", token=_all_admins_token(port))
    assert code == 200
    views = [v for p in json.loads(body)["plugins"] for v in p["external_views"]]
    assert {"name": "Data exchange", "href": "/xforce/grid", "url_route": "data-exchange"}.items() <= views[0].items()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "data_exchange_view.png"
    shot.unlink(missing_ok=True)
    url = f"http://127.0.0.1:{port}/auth/token/login?next={quote('/plugin/data-exchange')}"
    chromium(servers["base"], "--window-size=1500,1900", f"--screenshot={shot}", url)
    assert shot.exists() and shot.stat().st_size > 20_000


def _all_admins_token(port: int) -> str:
    code, body = get(f"http://127.0.0.1:{port}/auth/token")
    assert code == 201, body
    return str(json.loads(body)["access_token"])


def test_routes_need_airflow_auth(servers: dict[str, Any]) -> None:
    port = servers["ports"]["auth"]
    base = f"http://127.0.0.1:{port}/xforce"
    for path in ("/grid", "/scorecard", f"/extract/{NIGHT}/kent/anpr_reads", f"/docs/date={NIGHT}/index.html"):
        assert get(base + path)[0] == 401, path  # no token, no session cookie
        assert get(base + path, token="not-a-jwt")[0] in (401, 403), path
    assert get(f"http://127.0.0.1:{port}/auth/token")[0] == 403  # no all-admins token here
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/auth/token",
        data=json.dumps({"username": "reader", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        token = json.loads(r.read())["access_token"]
    code, page = get(base + "/grid?nights=1", token=token)
    assert code == 200 and f'data-cell="{NIGHT}/kent/anpr_reads" data-status="quarantined"' in page
    code, page = get(base + f"/extract/{NIGHT}/kent/anpr_reads", token=token)
    assert code == 200 and "empty_extract" in page
    code, page = get(base + f"/docs/date={NIGHT}/index.html", token=token)
    assert code == 200 and 'id="kent-anpr_reads"' in page
    assert get(base + "/docs/..%2F..%2Fledger.sqlite", token=token)[0] == 404


def test_plugin_import_is_cheap(tmp_path: Path) -> None:
    """Airflow loads plugins in every component: this one defers FastAPI and the xforce package to the
    first request; only the nightly timetable and the task links it registers (small modules over
    Airflow's own) load."""
    code = (
        "import sys, json; sys.path.insert(0, sys.argv[1]); import xforce_ui_plugin\n"
        "print(json.dumps([m for m in sys.modules if m in ('fastapi', 'pandas', 'great_expectations', 'pyarrow') "
        "or (m.startswith('xforce') and m not in ('xforce', 'xforce.airflow', 'xforce.airflow.timetable', "
        "'xforce.airflow.links', 'xforce_ui_plugin'))]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT / "plugins")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
