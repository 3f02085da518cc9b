"""Real services for the integration tests: S3 (moto's standalone server), PostgreSQL, Redis, processes.

Everything listens on 127.0.0.1 only. Each helper cleans up after itself (servers and process
groups are killed, databases dropped) even when a test fails. Import the fixtures you need::

    from services import moto_s3  # noqa: F401  (a pytest fixture)
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

BIN = Path(sys.executable).parent
MOTO_SERVER = shutil.which("moto_server", path=str(BIN)) or shutil.which("moto_server")
PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REGION = "eu-west-2"


# ------------------------------------------------------------------------------------ basics
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        socket.create_connection((host, port), timeout).close()
        return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def start_group(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` as the leader of a new process group, output to ``log``."""
    out = log.open("ab")
    try:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


def session_members(sid: int) -> list[int]:
    """Processes of session ``sid`` (Linux ``/proc``): what :func:`start_group` started, grandchildren too."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()  # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == sid:
            out.append(int(entry.name))
    return out


def kill_group(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL) -> None:
    """Kill everything started by :func:`start_group` and reap the leader.

    The process group, and every process of the session it leads: a child that moved to its own
    process group (Airflow's task supervisors do) dies with it, as on a machine that goes down.
    """
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    for pid in session_members(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


# ------------------------------------------------------------------------------------ S3 (moto)
@dataclass
class S3Server:
    """A moto S3 server in its own process (its own state: two servers are two separate endpoints)."""

    endpoint: str
    proc: subprocess.Popen[bytes]
    access_key: str = "hub-access-key"
    secret_key: str = field(default="hub-secret-key", repr=False)

    def client(self, service: str = "s3", access_key: str | None = None, secret_key: str | None = None) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=REGION,
        )

    def create_bucket(self, name: str, client: Any = None) -> None:
        (client or self.client()).create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})

    def env(self) -> dict[str, str]:
        """The standard AWS settings pointing at this server (as boto3 and pyarrow read them)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


@contextlib.contextmanager
def moto_server(log_dir: Path, auth_after: int | None = None) -> Iterator[S3Server]:
    """Start ``moto_server`` on a free port of 127.0.0.1.

    ``auth_after``: after that many unauthenticated set-up calls, moto checks every request's
    signature and IAM policy (so credentials really matter).
    """
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    if auth_after is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(auth_after)
    assert MOTO_SERVER is not None
    proc = start_group([MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)], env, log_dir / f"moto-{port}.log")
    try:
        wait_for(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 30, "moto_server")
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited: see {log_dir}/moto-{port}.log")
        yield S3Server(f"http://127.0.0.1:{port}", proc)
    finally:
        kill_group(proc)


def create_s3_user(server: S3Server, name: str, buckets: list[str]) -> tuple[str, str]:
    """An IAM user allowed everything on ``buckets`` only; returns its (access key, secret key)."""
    iam = server.client("iam")
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    resources = [r for b in buckets for r in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")]
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": resources}]}
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-s3", PolicyDocument=json.dumps(policy))
    return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server for the module (no authentication)."""
    from conftest import need_service

    need_service(MOTO_SERVER is not None, "moto_server not installed (pip install 'moto[server]')")
    with moto_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


def all_objects(client: Any) -> list[tuple[str, str]]:
    """(bucket, key) of every object on a server."""
    out = []
    for bucket in client.list_buckets()["Buckets"]:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            out.extend((bucket["Name"], o["Key"]) for o in page.get("Contents") or ())
    return out


def upload_tree(client: Any, root: Path, bucket: str, prefix: str) -> int:
    """Upload every file under ``root`` to ``s3://bucket/prefix/<relative path>``."""
    n = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        key = "/".join(x for x in (prefix, path.relative_to(root).as_posix()) if x)
        client.upload_file(str(path), bucket, key)
        n += 1
    return n


class FlakyProxy:
    """An HTTP proxy in front of an S3 endpoint that answers 503 SlowDown to chosen requests.

    ``fail(n, match)``: the next ``n`` requests whose path contains ``match`` get a 503 (n = -1:
    every one). ``hits[match]`` counts the requests that matched, failed or not.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.split("://", 1)[1]
        self.rules: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy.lock:
                    for match, left in proxy.rules.items():
                        if match in self.path:
                            proxy.hits[match] = proxy.hits.get(match, 0) + 1
                            if left != 0:
                                proxy.rules[match] = left - 1 if left > 0 else -1
                                fail = True
                                break
                    else:
                        fail = False
                if fail:
                    payload = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                        b"<Message>Please reduce your request rate.</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":  # a HEAD answer has no body
                        self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                head = self.command == "HEAD"  # a HEAD answer keeps the object's Content-Length
                for k, v in resp.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection") and (head or k.lower() != "content-length"):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if not head:
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fail(self, n: int, match: str) -> None:
        with self.lock:
            self.rules[match] = n
            self.hits[match] = 0

    def __enter__(self) -> FlakyProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------ PostgreSQL
def _pg_connect(dbname: str = "test") -> Any:
    import psycopg

    last: Exception | None = None
    for user in ("postgres", "root"):
        try:
            return psycopg.connect(
                host=PG_HOST, port=PG_PORT, user=user, dbname=dbname, connect_timeout=3, autocommit=True
            )
        except psycopg.OperationalError as exc:
            last = exc
    raise last or RuntimeError("no PostgreSQL user")


def postgres_available() -> bool:
    if not port_open(PG_HOST, PG_PORT):
        return False
    try:
        _pg_connect().close()
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class Database:
    name: str
    user: str

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3)."""
        return f"postgresql+psycopg://{self.user}@{PG_HOST}:{PG_PORT}/{self.name}"

    def connection(self) -> dict[str, Any]:
        """The fields of an Airflow ``postgres`` Connection to this database."""
        return {"conn_type": "postgres", "host": PG_HOST, "port": PG_PORT, "login": self.user, "schema": self.name}


@contextlib.contextmanager
def fresh_database(prefix: str = "xforce_test") -> Iterator[Database]:
    """A new, empty database ``<prefix>_<random>`` on the local server, dropped afterwards."""
    from conftest import need_service

    need_service(postgres_available(), f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT} (trust auth, db 'test')")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with _pg_connect() as admin:
        user = str(admin.info.user)
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Database(name, user)
    finally:
        with _pg_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# ------------------------------------------------------------------------------------ Redis
def redis_available() -> bool:
    if not port_open(REDIS_HOST, REDIS_PORT):
        return False
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), 2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# ------------------------------------------------------------------------------------ config
def subset_config(dest: Path, forces: list[str], sources: dict[str, dict[str, Any]] | None = None) -> Path:
    """A copy of ``config/`` whose registry holds only ``forces`` (smaller, faster DAG runs).

    ``sources``: ``{force: {dataset: {conn_id, query}}}`` added as the forces' ``source:`` blocks.
    """
    import yaml

    root = Path(__file__).resolve().parents[1] / "config"
    shutil.copytree(root, dest)
    doc = yaml.safe_load((root / "forces.yaml").read_text(encoding="utf-8"))
    doc["forces"] = {f: dict(doc["forces"][f]) for f in forces}
    for force, spec in (sources or {}).items():
        doc["forces"][force]["source"] = spec
    (dest / "forces.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return dest


# ------------------------------------------------------------------------------------ SQL source
ANPR_SOURCE_DDL = """
CREATE TABLE anpr_reads (
    row_no     bigserial PRIMARY KEY,
    read_id    text,
    read_at    timestamptz,
    camera_id  text,
    latitude   double precision,
    longitude  double precision,
    vrm        text,
    loaded_at  timestamptz NOT NULL
)
"""


def seed_anpr_source(db: Database, csv_path: Path, night: str, extra_nights: bool = True) -> int:
    """Load a generated ``shared_csv`` ANPR file into ``anpr_reads`` of ``db`` as loaded during ``night``.

    With ``extra_nights``, reads loaded the night before and the night after are added too
    (ids ``OTHER-NIGHT-*``): a pull of ``night`` must not see them. Returns the rows of ``night``.
    """
    import csv
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    import psycopg

    utc, london = ZoneInfo("UTC"), ZoneInfo("Europe/London")
    day = datetime.fromisoformat(night)
    start = day.replace(tzinfo=london).astimezone(utc)  # the night's window in UTC (23 to 25 hours long)
    span = (day + timedelta(days=1)).replace(tzinfo=london).astimezone(utc) - start
    with csv_path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))

    def ts(value: str) -> datetime | None:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=ZoneInfo("UTC")) if value else None

    def num(value: str) -> float | None:
        return float(value) if value else None

    values = [
        (
            r["read_id"] or None,
            ts(r["read_at"]),
            r["camera_id"] or None,
            num(r["latitude"]),
            num(r["longitude"]),
            r["vrm"] or None,
            start + span * (i + 1) / (len(rows) + 2),
        )
        for i, r in enumerate(rows)
    ]
    if extra_nights:
        for k, when in enumerate((start - timedelta(hours=3), start - timedelta(minutes=1), start + span)):
            values.append((f"OTHER-NIGHT-{k}", when, "NFK-CAM-0001", 52.6, 1.0, "AB12CDE", when))
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=db.user, dbname=db.name, autocommit=True) as conn:
        conn.execute(ANPR_SOURCE_DDL)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO anpr_reads (read_id, read_at, camera_id, latitude, longitude, vrm, loaded_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                values,
            )
    return len(rows)


def headless_screenshot(url: str, shot: Path, size: tuple[int, int] = (1200, 1600)) -> bytes:
    """A PNG of ``url`` taken by headless Chromium (skips, or fails under CI's flag, without it)."""
    import shutil
    import tempfile

    from conftest import need_service

    chromium = shutil.which("chromium")
    need_service(chromium is not None, "chromium not installed (apt-get install chromium)")
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = subprocess.run(
            [
                str(chromium),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={shot}",
                f"--window-size={size[0]},{size[1]}",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    return shot.read_bytes()
