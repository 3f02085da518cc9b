"""One key story, at the Airflow edge: a configuration error (no plate key, another key under a known
key version) fails the task at once instead of being retried, and the key can come from the Airflow
Connection ``xforce_hmac_key``. (The resolution order and the fingerprints: tests/unit/test_key_story.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from xforce import settings as settings_mod
from xforce.context import Context
from xforce.errors import ConfigError
from xforce.quality import gxworker

pytestmark = pytest.mark.dags

KEY_A = "key-a-not-a-secret-0123456789abcdef"
KEY_B = "key-b-not-a-secret-fedcba9876543210"
NIGHT, RUN = "2026-11-27", "manual__key_story"
REF = {"night": NIGHT, "force": "kent", "dataset": "incidents", "status": "landed", "files": []}


@pytest.fixture
def bare(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No key configured anywhere; the GX worker is not needed (the key is asked before any row is read)."""
    for var in ("XFORCE_HMAC_KEY", "XFORCE_HMAC_KEY_FILE", "XFORCE_HMAC_KEY_VERSION", "AIRFLOW_CONN_XFORCE_HMAC_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(gxworker, "start", lambda: None)
    settings_mod._connection_key.cache_clear()
    yield data_dir
    settings_mod._connection_key.cache_clear()


def test_a_new_key_under_k1_fails_the_validate_task_at_once(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from xforce.airflow import tasks

    monkeypatch.setenv("XFORCE_HMAC_KEY", KEY_A)
    ctx = Context.from_env()
    ctx.plate_key()  # an earlier night under k1, with key A
    monkeypatch.setenv("XFORCE_HMAC_KEY", KEY_B)
    with pytest.raises(AirflowFailException, match=r"KeyMismatchError: .*not the key of version 'k1'") as caught:
        tasks.process_extract(dict(REF), RUN)
    assert isinstance(caught.value.__cause__, ConfigError)
    assert KEY_A not in str(caught.value) and KEY_B not in str(caught.value)
    row = ctx.ledger.get(NIGHT, "kent", "incidents")
    assert row is not None and row["status"] == "failed" and "KeyMismatchError" in row["error"]


def test_no_key_fails_the_validate_task_at_once_saying_where_it_looked(bare: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from xforce.airflow import tasks

    with pytest.raises(AirflowFailException) as caught:
        tasks.process_extract(dict(REF), RUN)
    message = str(caught.value)
    assert message.startswith("ConfigError: no plate pseudonymisation key")
    for named in ("XFORCE_HMAC_KEY ", "XFORCE_HMAC_KEY_FILE", str(bare.resolve() / "secrets" / "hmac.key")):
        assert named in message, named


def test_other_failures_are_still_retried(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only configuration errors skip the retries: a database or storage hiccup is still retried."""
    from xforce.airflow import tasks
    from xforce.exchange import late

    def flaky(ctx: Context) -> list:
        raise OSError("connection reset")

    monkeypatch.setattr(late, "find_late_nights", flaky)
    with pytest.raises(OSError, match="connection reset"):
        tasks.find_late_nights()


def test_the_key_can_come_from_the_airflow_connection(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "generic", "password": KEY_B, "extra": {"version": "k3"}}
    monkeypatch.setenv("AIRFLOW_CONN_XFORCE_HMAC_KEY", json.dumps(conn))
    assert settings_mod.hmac_key() == ("k3", KEY_B.encode())
    # the development key file comes after the Connection; a file named by XFORCE_HMAC_KEY_FILE before it
    key_file = bare / "secrets" / "hmac.key"
    key_file.parent.mkdir(parents=True)
    key_file.write_text(KEY_A)
    assert settings_mod.hmac_key() == ("k3", KEY_B.encode())
    monkeypatch.setenv("XFORCE_HMAC_KEY_FILE", str(key_file))
    assert settings_mod.hmac_key() == ("k1", KEY_A.encode())


def test_the_connection_is_asked_only_inside_a_task_process(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a task (the CLI, a DAG parse) no Connection lookup; inside one (the Task SDK's runner has
    its supervisor channel) the Connection ``xforce_hmac_key`` is asked, once per process."""
    from airflow.sdk import Connection
    from airflow.sdk.execution_time import context as sdk_context
    from airflow.sdk.execution_time import task_runner

    token = sdk_context._preset_connections.set(
        {"xforce_hmac_key": Connection(conn_id="xforce_hmac_key", conn_type="generic", password=KEY_A)}
    )
    try:
        with pytest.raises(ConfigError, match="no plate pseudonymisation key"):
            settings_mod.hmac_key()
        monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", object(), raising=False)
        assert settings_mod.hmac_key() == ("k1", KEY_A.encode())
        assert settings_mod._connection_key.cache_info().currsize == 1
    finally:
        sdk_context._preset_connections.reset(token)
