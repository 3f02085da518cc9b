"""Test tiers, settings and the service policy.

Every test carries one tier marker; collection fails otherwise:

* ``unit``: plain Python in this process; no subprocess, no network connection, no Airflow
  (enforced: a unit test that starts a process, the GX worker, or connects a socket fails);
* ``component``: the pipeline in-process with its GX worker subprocess, or S3 on moto;
* ``dags``: DAG integrity and policy (imports Airflow);
* ``integration``: Airflow runs the DAGs (``dag.test()`` or the scheduler) or real services.

Tests that need a service call :func:`need_service`: it skips with a one-line reason, or fails
when ``XFORCE_REQUIRE_SERVICES=1`` (as ``.ci/run`` sets), so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
POLICE_UK = SHARED / "realdata" / "police-uk" / "2019-01"
TIERS = ("unit", "component", "dags", "integration")

# Test-only key: a fixed value so that tokens are reproducible inside a test run.
os.environ.setdefault("XFORCE_HMAC_KEY", "test-key-not-a-secret-0123456789")
# Tests write a landing file and land it at once: no settle interval (test_faults tests the interval itself).
os.environ.setdefault("XFORCE_SETTLE_SECONDS", "0")
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tests"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    untiered = [item.nodeid for item in items if not any(item.get_closest_marker(t) for t in TIERS)]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(TIERS)}): {untiered}")


@pytest.fixture(autouse=True)
def _unit_tier_stays_in_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``unit`` test that starts a process (the GX worker included) or opens a network connection fails."""
    if request.node.get_closest_marker("unit") is None:
        return
    from xforce.quality import gxworker

    def refuse(what: str) -> Any:
        def _refused(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"a unit test may not {what}: mark it component (tests/component/)")

        return _refused

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("start a subprocess"))
    monkeypatch.setattr(gxworker, "_get", refuse("use the GX worker process"))
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: Any) -> Any:
        if sock.family != socket.AF_UNIX:
            raise AssertionError("a unit test may not open a network connection: mark it component or integration")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def need_service(available: bool, reason: str) -> None:
    """Skip (or, under CI's flag, fail) when a service the test needs is absent."""
    if available:
        return
    if os.environ.get("XFORCE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data dir with every zone and the ledger inside it."""
    d = tmp_path / "data"
    monkeypatch.setenv("XFORCE_DATA_DIR", str(d))
    for var in (
        "XFORCE_LANDING_URI",
        "XFORCE_RAW_URI",
        "XFORCE_CURATED_URI",
        "XFORCE_QUARANTINE_URI",
        "XFORCE_STAGING_URI",
        "XFORCE_LEDGER_URL",
        "AIRFLOW_HOME",
    ):
        monkeypatch.delenv(var, raising=False)
    return d


@pytest.fixture(scope="session")
def police_uk() -> Path:
    need_service(POLICE_UK.is_dir(), f"real police.uk files not found at {POLICE_UK}")
    return POLICE_UK
