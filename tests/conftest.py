"""Test tiers, settings and the service policy.

Every test carries one tier marker (unit, dags, integration); collection fails otherwise.
Tests that need a service call :func:`need_service`: it skips with a one-line reason, or fails
when ``XFORCE_REQUIRE_SERVICES=1`` (as ``.ci/run`` sets), so CI cannot pass by skipping.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
POLICE_UK = SHARED / "realdata" / "police-uk" / "2019-01"
TIERS = ("unit", "dags", "integration")

# Test-only key: a fixed value so that tokens are reproducible inside a test run.
os.environ.setdefault("XFORCE_HMAC_KEY", "test-key-not-a-secret-0123456789")
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
sys.path.insert(0, str(ROOT / "plugins"))
sys.path.insert(0, str(ROOT / "tests"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    untiered = [item.nodeid for item in items if not any(item.get_closest_marker(t) for t in TIERS)]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(TIERS)}): {untiered}")


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
