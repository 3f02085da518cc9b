"""A local deployment of the exchange on embedded defaults: ``xforce up`` / ``xforce down`` (``make up``).

Four Airflow processes (api-server, scheduler, dag-processor, triggerer) on SQLite and the
LocalExecutor, started in the background with the environment ``xforce run`` uses
(:func:`xforce.airflow.env.airflow_env`: the project's DAGs and plugins, no examples, telemetry off,
the plate key file, the zones under the data dir), after ``airflow db migrate`` and the hub's pools
(:mod:`xforce.airflow.pools`). Only the UI listens, on ``127.0.0.1:<port>``
(``XFORCE_UI_PORT``, default 8080); the task log servers are off, since the api-server reads the
task logs from the same folder. Login: Airflow's simple auth manager with one user, ``admin``, whose
password Airflow generates into ``<AIRFLOW_HOME>/simple_auth_manager_passwords.json.generated``.

Each process leads its own session (and process group); its pid and start time are written to
``<AIRFLOW_HOME>/deploy/<name>.pid``, its output to ``<AIRFLOW_HOME>/deploy/<name>.log``. :func:`down`
stops exactly those sessions (every process in them: the task supervisors that moved to a process
group of their own too), checks they are gone, and removes stale pid files (a dead process, or a
pid reused by another program, which is left alone).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xforce.airflow.env import airflow_env

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from xforce.settings import Settings

DEFAULT_PORT = 8080
#: The processes of a deployment and their arguments (``{port}`` filled in).
PROCESSES: dict[str, tuple[str, ...]] = {
    "api-server": ("api-server", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1"),
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
    # Great Expectations imported once for the host: each validate task's requests are answered by a
    # forked copy of it (xforce.quality.gxworker.serve_host), not by a GX import of its own
    "validation-service": ("-m", "xforce.quality.gxworker", "--host", "{socket}"),
}
#: The local login (simple auth manager ``user:role``); Airflow generates the password.
USERS = "admin:admin"
PASSWORD_FILE = "simple_auth_manager_passwords.json.generated"
READY_TIMEOUT = 300.0
#: Creates the hub's pools (:func:`xforce.airflow.pools.ensure_pools`) in the deployment's metadata database.
# Run after the migration, before the scheduler starts: the hub's pools (it queues nothing without
# them), and in-process runs whose `xforce run` was killed marked failed (it would adopt them half-done).
PREPARE = (
    "import json; from xforce.airflow.pools import ensure_pools; from xforce.airflow.orphans import fail_dead_runs; "
    "from xforce.context import Context; ctx = Context.from_env(); print(ensure_pools(ctx.registry)); "
    "print(json.dumps({'abandoned': fail_dead_runs(ctx.ledger)}))"
)
STOP_TIMEOUT = 30.0


class DeployError(RuntimeError):
    """A deployment that could not be started or stopped; ``code`` 2 when it was asked wrongly."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Deployment:
    """A running deployment, as :func:`up` started or found it."""

    home: Path
    port: int
    data_dir: str
    pids: dict[str, int]
    already_up: bool = False
    seconds: float = 0.0
    user: str = "admin"
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def password_file(self) -> Path:
        return self.home / PASSWORD_FILE

    @property
    def task_logs(self) -> Path:
        return self.home / "logs"

    @property
    def process_logs(self) -> Path:
        return run_dir(self.home)


@dataclass(frozen=True)
class Status:
    """What the pid files under a home say: processes alive, and the files whose process is gone."""

    home: Path
    alive: dict[str, int]
    stale: list[str]
    port: int | None

    @property
    def up(self) -> bool:
        return set(self.alive) == set(PROCESSES)


def ui_port(env: dict[str, str] | None = None) -> int:
    """``XFORCE_UI_PORT`` (default 8080), checked."""
    raw = ((os.environ if env is None else env).get("XFORCE_UI_PORT") or "").strip() or str(DEFAULT_PORT)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise DeployError(f"XFORCE_UI_PORT={raw!r} is not a port number (1-65535, e.g. 8080)", code=2)
    return int(raw)


def home_of(settings: Settings, env: dict[str, str] | None = None) -> Path:
    """The Airflow home of the deployment (as :func:`airflow_env` chooses it), without creating it."""
    named = (os.environ if env is None else env).get("AIRFLOW_HOME")
    return Path(named or Path(settings.data_dir) / "airflow").absolute()


def gx_socket(home: Path) -> str:
    """The validation service's Unix socket: in the deployment's folder, or (a path too long for a
    socket's 107 bytes) in the temporary folder under a name derived from it."""
    path = str(run_dir(home) / "gx.sock")
    if len(path.encode()) <= 100:
        return path
    import hashlib
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"xforce-gx-{hashlib.sha256(path.encode()).hexdigest()[:16]}.sock")


def run_dir(home: Path) -> Path:
    return home / "deploy"


def deploy_env(settings: Settings, port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """:func:`airflow_env` plus what a deployment on ``port`` needs; the UI's address and the execution
    API follow the port, the executor is always the LocalExecutor (nothing else runs tasks here)."""
    env = airflow_env(settings, base)
    url = f"http://127.0.0.1:{port}"
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        }
    )
    env.setdefault("XFORCE_GX_SOCKET", gx_socket(home_of(settings, env)))
    for key, value in {
        "AIRFLOW__API__WORKERS": "1",
        # Four task processes at a time (validations: at most the xforce_validate pool's slots): on two
        # cores a night of 7 x 5000 reads took 75-77 s with 4, 92-113 s with 2; SQLite was never locked.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": USERS,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    }.items():
        env.setdefault(key, value)
    return env


# ------------------------------------------------------------------------------------ processes
def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after ``pid (comm)``: state, ppid, pgrp, session, ... (None: no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), which tells it from a later one with its pid."""
    fields = _stat(pid)
    return fields[19] if fields else None


def _running(pid: int) -> bool:
    fields = _stat(pid)
    if fields is not None:
        return fields[0] not in ("Z", "X")
    if Path("/proc/self/stat").exists():
        return False
    try:  # no /proc (macOS): the kernel's word
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_alive(pid: int, start: str | None) -> bool:
    """Whether ``pid`` still runs and is the process that had it (its start time ``start``, when known)."""
    if not _running(pid):
        return False
    now = _start_time(pid)
    return start is None or now is None or now == start


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """This process (or ``pid``) as :func:`process_alive` recognises it later: host, pid, start time."""
    pid = os.getpid() if pid is None else pid
    return {"host": socket.gethostname(), "pid": pid, "start": _start_time(pid)}


def _members(sid: int) -> list[int]:
    """Live processes of session ``sid``: what one started process became, grandchildren included."""
    if not Path("/proc/self/stat").exists():
        return [sid] if _running(sid) else []
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] not in ("Z", "X"):
            if int(fields[3]) == sid:
                out.append(int(entry.name))
    return out


def _read_pidfile(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) and isinstance(doc.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _ours(doc: dict[str, Any]) -> bool:
    """Whether the recorded session still has a process of ours.

    The leader with its recorded start time, or (leader gone) any process left in its session: the
    kernel does not give a pid to a new process while a session still bears it. A pid now held by
    another program is not ours."""
    pid = int(doc["pid"])
    started = _start_time(pid)
    if started is not None and doc.get("start") not in (None, started):
        return False  # the pid was reused
    return bool(_members(pid))


def status(home: Path) -> Status:
    """The processes the pid files under ``home`` name that are still running."""
    alive: dict[str, int] = {}
    stale: list[str] = []
    for name in PROCESSES:
        path = run_dir(home) / f"{name}.pid"
        if not path.exists():
            continue
        doc = _read_pidfile(path)
        if doc is not None and _ours(doc):
            alive[name] = int(doc["pid"])
        else:
            stale.append(name)
    state = _read_state(home)
    return Status(home, alive, stale, int(state["port"]) if state else None)


def _read_state(home: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((run_dir(home) / "deployment.json").read_text(encoding="utf-8"))
        return doc if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One ``up`` or ``down`` at a time on a home."""
    run_dir(home).mkdir(parents=True, exist_ok=True)
    with open(run_dir(home) / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _airflow() -> str:
    return shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"


def _start(name: str, port: int, env: dict[str, str], home: Path) -> subprocess.Popen[bytes]:
    args = [a.format(port=port, socket=env.get("XFORCE_GX_SOCKET", "")) for a in PROCESSES[name]]
    program = sys.executable if args[0] == "-m" else _airflow()  # a module of the hub's, or an airflow command
    with open(run_dir(home) / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(
            [program, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session and process group: stopped as a whole, and alone
        )
    doc = {"pid": proc.pid, "start": _start_time(proc.pid), "command": [Path(program).name, *args]}
    (run_dir(home) / f"{name}.pid").write_text(json.dumps(doc) + "\n", encoding="utf-8")
    return proc


def _reap(pid: int) -> None:
    """Collect a stopped child of this process (when ``up`` ran in it), so that it is not left a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _stop(home: Path, timeout: float = STOP_TIMEOUT) -> tuple[dict[str, int], list[str]]:
    """SIGTERM to every recorded session, SIGKILL to what is left after ``timeout``; pid files removed.

    ``(stopped name -> pid, stale names)``. Raises :class:`DeployError` naming what would not die."""
    sessions: dict[str, int] = {}
    stale: list[str] = []
    left: dict[str, list[int]] = {}
    for name in PROCESSES:
        path = run_dir(home) / f"{name}.pid"
        doc = _read_pidfile(path) if path.exists() else None
        if doc is not None and _ours(doc):
            sessions[name] = int(doc["pid"])
        elif path.exists():
            stale.append(name)
            path.unlink()
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        for sid in sessions.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(sid, sig)
            for pid in _members(sid):  # members that moved to a process group of their own
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while True:
            for sid in sessions.values():
                _reap(sid)
            left = {name: _members(sid) for name, sid in sessions.items()}
            if not any(left.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not any(left.values()):
            break
    if any(left.values()):
        raise DeployError(f"processes still running after SIGKILL: {left}")
    for name in sessions:
        (run_dir(home) / f"{name}.pid").unlink(missing_ok=True)
    (run_dir(home) / "deployment.json").unlink(missing_ok=True)
    return sessions, stale


def down(home: Path) -> tuple[dict[str, int], list[str]]:
    """Stop the deployment under ``home``: ``(stopped name -> pid, names of stale pid files removed)``."""
    with _locked(home):
        return _stop(home)


# ------------------------------------------------------------------------------------ readiness
def _http(
    url: str, *, token: str | None = None, body: dict[str, Any] | None = None, method: str | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except OSError:
        return 0, b""


def password(home: Path, user: str = "admin") -> str | None:
    """The password Airflow generated for ``user`` (None until the api-server has written it)."""
    try:
        doc = json.loads((home / PASSWORD_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return None
    value = doc.get(user) if isinstance(doc, dict) else None
    return str(value) if value else None


def token(url: str, user: str, secret: str) -> str | None:
    """A JWT from the api-server for ``user`` (None when refused or not answering)."""
    code, body = _http(f"{url}/auth/token", body={"username": user, "password": secret})
    return str(json.loads(body)["access_token"]) if code == 201 else None


def _ready(url: str, home: Path, dag_ids: set[str], socket_path: str = "") -> str | None:
    """None when ready; else what is still awaited. Raises :class:`DeployError` on a DAG import error."""
    if socket_path and not os.path.exists(socket_path):
        return "the validation service (Great Expectations imported once for the host)"
    code, body = _http(f"{url}/api/v2/monitor/health")
    if code != 200:
        return "the api-server to answer"
    health = json.loads(body)
    sick = [
        k
        for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        if health.get(k, {}).get("status") != "healthy"
    ]
    if sick:
        return f"{', '.join(sick)} to report healthy"
    secret = password(home)
    jwt = token(url, "admin", secret) if secret else None
    if jwt is None:
        return "the admin login"
    code, body = _http(f"{url}/api/v2/importErrors", token=jwt)
    errors = json.loads(body).get("import_errors", []) if code == 200 else []
    if errors:
        first = errors[0]
        raise DeployError(f"DAG import error in {first.get('filename')}: {str(first.get('stack_trace'))[-500:]}")
    code, body = _http(f"{url}/api/v2/dags?limit=100", token=jwt)
    found = {d["dag_id"] for d in json.loads(body).get("dags", [])} if code == 200 else set()
    if not dag_ids <= found:
        return f"the DAGs to be serialised ({', '.join(sorted(dag_ids - found))})"
    if _http(f"{url}/xforce/grid?nights=1", token=jwt)[0] != 200:
        return "the Data exchange view (/xforce/grid)"
    return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the api-server binds (SO_REUSEADDR): the connections of a deployment just stopped,
        # left in TIME-WAIT, do not hold the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def up(
    settings: Settings,
    port: int,
    base: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    timeout: float = READY_TIMEOUT,
) -> Deployment:
    """Start the deployment (or find it running) and return once the UI, the DAGs and the view answer.

    ``base``: the environment to start from (default ``os.environ``); its ``AIRFLOW_HOME`` is the home.
    A deployment already running under the home is returned as it is (``already_up``); one partly
    running, or a port taken by another program, raises :class:`DeployError`."""
    say = progress or (lambda _text: None)
    env = deploy_env(settings, port, base)
    home = Path(env["AIRFLOW_HOME"]).absolute()
    with _locked(home):
        now = status(home)
        if now.up:
            return Deployment(home, now.port or port, settings.data_dir, now.alive, already_up=True)
        if now.alive:
            missing = ", ".join(sorted(set(PROCESSES) - set(now.alive)))
            raise DeployError(
                f"the deployment under {home} is partly up ({missing} not running): `xforce down`, then up"
            )
        _stop(home)  # stale pid files only
        if not _port_free(port):
            raise DeployError(
                f"port {port} on 127.0.0.1 is in use by another program: set XFORCE_UI_PORT to a free one"
            )
        secrets_file = home / PASSWORD_FILE
        if not secrets_file.exists():  # created private; Airflow writes the generated password into it
            os.close(os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        start = time.monotonic()
        say(f"xforce up: migrating Airflow's metadata database ({env['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN']})")
        with open(home / ".xforce-migrate.lock", "a") as lock, open(run_dir(home) / "migrate.log", "ab") as log:
            fcntl.flock(lock, fcntl.LOCK_EX)  # not while an `xforce run` on this home migrates
            migrated = subprocess.run([_airflow(), "db", "migrate"], env=env, stdout=log, stderr=subprocess.STDOUT)
            if migrated.returncode == 0:
                migrated = subprocess.run([sys.executable, "-c", PREPARE], env=env, stdout=subprocess.PIPE, stderr=log)
                log.write(migrated.stdout or b"")
        if migrated.returncode != 0:
            raise DeployError(
                f"migrating or making the pools failed (exit {migrated.returncode}): see {run_dir(home)}/migrate.log"
            )
        said = [ln for ln in (migrated.stdout or b"").splitlines() if ln.startswith(b'{"abandoned"')]
        for gone in json.loads(said[-1])["abandoned"] if said else []:
            say(
                f"xforce up: marked failed {gone['dag_id']} run {gone['run_id']}: its `xforce run` process "
                f"(pid {gone['pid']}) ended without finishing it; run night {gone['night']} again"
            )
        procs = {name: _start(name, port, env, home) for name in PROCESSES}
        state = {"port": port, "url": f"http://127.0.0.1:{port}", "data_dir": settings.data_dir}
        (run_dir(home) / "deployment.json").write_text(json.dumps(state) + "\n", encoding="utf-8")
        say(f"xforce up: started {', '.join(f'{n} ({p.pid})' for n, p in procs.items())}; waiting for them")
        dag_ids = {p.stem for p in Path(env["AIRFLOW__CORE__DAGS_FOLDER"]).glob("*.py") if not p.name.startswith("_")}
        url = f"http://127.0.0.1:{port}"
        try:
            while (awaited := _ready(url, home, dag_ids, env["XFORCE_GX_SOCKET"])) is not None:
                dead = [n for n, p in procs.items() if p.poll() is not None]
                if dead:
                    output = run_dir(home) / f"{dead[0]}.log"
                    raise DeployError(f"{dead[0]} exited at start; the end of {output}:\n{_tail(output)}")
                if time.monotonic() - start > timeout:
                    raise DeployError(
                        f"not ready after {timeout:.0f} s, waiting for {awaited}: see {run_dir(home)}/*.log"
                    )
                time.sleep(1.0)
        except BaseException:
            _stop(home)
            raise
        return Deployment(
            home,
            port,
            settings.data_dir,
            {n: p.pid for n, p in procs.items()},
            seconds=time.monotonic() - start,
            password=password(home),
        )


def describe(dep: Deployment) -> list[str]:
    """What ``xforce up`` prints: the UI, the login, where data and logs are, how to stop it."""
    secret = dep.password or password(dep.home)
    head = (
        f"already up under {dep.home} (pids {', '.join(f'{n} {p}' for n, p in dep.pids.items())})"
        if dep.already_up
        else f"up in {dep.seconds:.0f} s: api-server, scheduler, dag-processor, triggerer, validation service "
        "(SQLite, LocalExecutor)"
    )
    return [
        f"xforce up: {head}",
        f"  UI            {dep.url}   (Data exchange: {dep.url}/plugin/data-exchange)",
        f"  login         user admin, password {secret or '(not generated yet)'}  (kept in {dep.password_file})",
        f"  data          {dep.data_dir}  (landing, raw, curated, quarantine, docs, the ledger)",
        f"  task logs     {dep.task_logs}",
        f"  process logs  {dep.process_logs}/<process>.log",
        "  run a night   xforce run --date YYYY-MM-DD  (runs on this deployment and waits; `xforce backfill "
        "--from D --to D` is Airflow's backfill)",
        "  DAGs start paused: trigger a night from the UI (xforce_nightly > Trigger, param night) or unpause them",
        "  stop          make down  (xforce down)",
    ]


# ------------------------------------------------------------------------------------ runs on it
@dataclass(frozen=True)
class Client:
    """The REST API of a running deployment, logged in as its local admin."""

    url: str
    token: str

    @classmethod
    def of(cls, home: Path) -> Client | None:
        """The deployment under ``home`` when it is up and answers its login, else None."""
        now = status(home)
        secret = password(home)
        if not now.up or now.port is None or secret is None:
            return None
        url = f"http://127.0.0.1:{now.port}"
        jwt = token(url, "admin", secret)
        return cls(url, jwt) if jwt else None

    def _call(self, path: str, body: dict[str, Any] | None = None, method: str | None = None) -> dict[str, Any]:
        code, raw = _http(f"{self.url}/api/v2/{path}", token=self.token, body=body, method=method)
        if code not in (200, 201):
            raise DeployError(f"the deployment's API refused {method or ('POST' if body else 'GET')} {path}: {code}")
        doc: dict[str, Any] = json.loads(raw or b"{}")
        return doc

    def exists(self, dag_id: str, run_id: str) -> bool:
        code, _ = _http(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", token=self.token)
        return code == 200

    def trigger(self, dag_id: str, run_id: str, logical_date: str, conf: dict[str, Any]) -> str:
        """Unpause ``dag_id`` (a fresh deployment's DAGs start paused) and create a run; its id."""
        self._call(f"dags/{dag_id}", {"is_paused": False}, method="PATCH")
        doc = self._call(f"dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf})
        return str(doc["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self._call(f"dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait(self, dag_id: str, run_id: str, timeout: float, poll: Callable[[str], None] | None = None) -> str:
        """Wait for the run to end: ``success`` or ``failed`` (``timeout`` when it has not ended);
        ``poll`` is given the run's state at every look."""
        deadline = time.monotonic() + timeout
        while (state := self.run_state(dag_id, run_id)) not in ("success", "failed"):
            if time.monotonic() > deadline:
                return "timeout"
            if poll is not None:
                poll(state)
            time.sleep(1.0)
        return state

    def running(self, dag_id: str) -> list[str]:
        """Ids of the DAG's runs now running."""
        doc = self._call(f"dags/{dag_id}/dagRuns?state=running&limit=20")
        return [str(r["dag_run_id"]) for r in doc["dag_runs"]]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The run's task instances (``task_id``, ``map_index``, ``state``, ``start_date``, ...)."""
        found: list[dict[str, Any]] = self._call(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1000")[
            "task_instances"
        ]
        return found

    def backfill(self, dag_id: str, first: str, last: str) -> int:
        """Airflow's own backfill of the nights ``first``..``last`` (runs one at a time); its id.

        Airflow picks the runs whose trigger time falls in the range; a night's run triggers at 02:30
        the morning after it (:class:`~xforce.airflow.timetable.NightlyTimetable`), so the range
        asked for is the mornings after the first and the last night."""
        from datetime import date, timedelta

        after = [(date.fromisoformat(n) + timedelta(days=1)).isoformat() for n in (first, last)]
        self._call(f"dags/{dag_id}", {"is_paused": False}, method="PATCH")
        doc = self._call(
            "backfills",
            {
                "dag_id": dag_id,
                "from_date": f"{after[0]}T00:00:00+00:00",
                "to_date": f"{after[1]}T23:59:59+00:00",
                "max_active_runs": 1,
                "reprocess_behavior": "completed",
                "run_backwards": False,
            },
        )
        return int(doc["id"])

    def backfill_runs(self, dag_id: str, backfill_id: int, timeout: float) -> list[dict[str, Any]]:
        """Wait for a backfill to complete; then every backfill run of the DAG (``run_id``, ``state``,
        ``logical_date``), the latest last."""
        deadline = time.monotonic() + timeout
        while not self._call(f"backfills/{backfill_id}").get("completed_at"):
            if time.monotonic() > deadline:
                break
            time.sleep(2.0)
        query = f"dags/{dag_id}/dagRuns?run_type=backfill&limit=100&order_by=run_after"
        runs: list[dict[str, Any]] = self._call(query)["dag_runs"]
        return runs
