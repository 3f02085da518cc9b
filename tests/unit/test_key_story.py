"""One key story (issue 17, item 4): every process resolves the plate key the same way, a missing key
says where it looked, and the ledger keeps each key version's fingerprint so that a new key under an
old version is refused instead of silently breaking the joins between nights."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from xforce import cli
from xforce.airflow.env import airflow_env
from xforce.context import Context
from xforce.errors import ConfigError, KeyMismatchError
from xforce.privacy import tokenmap
from xforce.privacy.tokens import claim_key_version, key_fingerprint, token
from xforce.settings import Settings, default_key_file, hmac_key
from xforce.store.ledger import Ledger

pytestmark = pytest.mark.unit

KEY_A = "key-a-not-a-secret-0123456789abcdef"
KEY_B = "key-b-not-a-secret-fedcba9876543210"


@pytest.fixture
def bare(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir and no key configured anywhere (tests/conftest.py sets XFORCE_HMAC_KEY for the others)."""
    for var in ("XFORCE_HMAC_KEY", "XFORCE_HMAC_KEY_FILE", "XFORCE_HMAC_KEY_VERSION", "AIRFLOW_CONN_XFORCE_HMAC_KEY"):
        monkeypatch.delenv(var, raising=False)
    return data_dir


@pytest.fixture
def ledger(data_dir: Path) -> Ledger:
    s = Settings.from_env()
    return Ledger(s.ledger_url, s.sql_dir)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ resolution order
def test_the_default_file_is_found_without_any_setting(bare: Path) -> None:
    """What a scheduler started by hand meets: only XFORCE_DATA_DIR, and the key `make run` made."""
    _write(bare / "secrets" / "hmac.key", KEY_A)
    assert default_key_file() == str((bare / "secrets" / "hmac.key").resolve())
    assert hmac_key() == ("k1", KEY_A.encode())


def test_the_named_file_wins_over_the_default_file(bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(bare / "secrets" / "hmac.key", KEY_A)
    monkeypatch.setenv("XFORCE_HMAC_KEY_FILE", str(_write(tmp_path / "mounted" / "key", KEY_B)))
    monkeypatch.setenv("XFORCE_HMAC_KEY_VERSION", "k7")
    assert hmac_key() == ("k7", KEY_B.encode())


def test_the_value_wins_over_both_files(bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(bare / "secrets" / "hmac.key", KEY_A)
    monkeypatch.setenv("XFORCE_HMAC_KEY_FILE", str(_write(tmp_path / "mounted" / "key", KEY_B)))
    monkeypatch.setenv("XFORCE_HMAC_KEY", "key-c-from-the-environment-000000")
    assert hmac_key() == ("k1", b"key-c-from-the-environment-000000")


def test_no_key_names_the_settings_and_the_file_it_looked_at(bare: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        hmac_key()
    message = str(caught.value)
    assert "no plate pseudonymisation key" in message
    for named in (
        "XFORCE_HMAC_KEY ",
        "XFORCE_HMAC_KEY_FILE",
        "xforce_hmac_key",
        str(bare.resolve() / "secrets" / "hmac.key"),
    ):
        assert named in message, named
    assert type(caught.value) is ConfigError  # not retried as a transient failure: see the tasks' glue


def test_a_named_file_that_is_missing_is_said_not_replaced(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret that failed to mount: neither the development key nor a new key takes its place."""
    _write(bare / "secrets" / "hmac.key", KEY_A)
    missing = tmp_path / "run" / "secrets" / "xforce-hmac-key"
    monkeypatch.setenv("XFORCE_HMAC_KEY_FILE", str(missing))
    cli.ensure_dev_key(str(bare))
    assert not missing.exists() and os.environ["XFORCE_HMAC_KEY_FILE"] == str(missing)
    with pytest.raises(ConfigError, match=r"XFORCE_HMAC_KEY_FILE names .*does not exist") as caught:
        hmac_key()
    assert str(missing) in str(caught.value)


@pytest.mark.parametrize("where", ["value", "file"])
def test_a_short_key_is_described_by_length_never_shown(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    short = "Sh0rtK3y"
    if where == "value":
        monkeypatch.setenv("XFORCE_HMAC_KEY", short)
    else:
        monkeypatch.setenv("XFORCE_HMAC_KEY_FILE", str(_write(tmp_path / "k", short)))
    with pytest.raises(ConfigError) as caught:
        hmac_key()
    message = str(caught.value)
    assert "8 character(s)" in message and "at least 16" in message and short not in message


def test_the_development_key_is_made_where_every_process_looks_last(bare: Path) -> None:
    cli.ensure_dev_key(str(bare))
    made = bare.resolve() / "secrets" / "hmac.key"
    assert os.environ["XFORCE_HMAC_KEY_FILE"] == str(made)
    version, key = hmac_key()
    del os.environ["XFORCE_HMAC_KEY_FILE"]  # another process, given only the data dir: the same key
    assert hmac_key() == (version, key) == ("k1", made.read_text().strip().encode())


# ------------------------------------------------------------------------------ the env builder
def test_the_airflow_env_names_the_key_file_absolutely(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env()
    base = {"PATH": os.environ.get("PATH", "")}
    assert "XFORCE_HMAC_KEY_FILE" not in airflow_env(settings, base)  # nothing to name yet
    _write(bare / "secrets" / "hmac.key", KEY_A)
    env = airflow_env(settings, base)
    assert env["XFORCE_HMAC_KEY_FILE"] == str(bare.resolve() / "secrets" / "hmac.key")
    assert env["XFORCE_DATA_DIR"] == settings.data_dir
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "mounted" / "key", KEY_B)
    named = airflow_env(settings, {**base, "XFORCE_HMAC_KEY_FILE": "mounted/key"})["XFORCE_HMAC_KEY_FILE"]
    assert named == str(tmp_path / "mounted" / "key") and os.path.isabs(named)
    # a process started with that environment, anywhere, finds the same key
    monkeypatch.chdir(bare)
    monkeypatch.setenv("XFORCE_HMAC_KEY_FILE", named)
    assert hmac_key() == ("k1", KEY_B.encode())


# ------------------------------------------------------------------------------ fingerprints
def test_the_fingerprint_is_the_documented_hmac_prefix_and_no_token() -> None:
    key = KEY_A.encode()
    expected = hmac.new(key, b"xforce key fingerprint v1", hashlib.sha256).hexdigest()[:16]
    assert key_fingerprint(key) == expected and len(expected) == 16
    assert key_fingerprint(KEY_B.encode()) != expected
    assert expected not in token("XFORCEKEYFINGERPRINTV1", key)
    assert KEY_A not in expected


def test_the_first_use_of_a_version_records_its_fingerprint_once(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    real = Ledger.claim_key_version

    def counting(self: Ledger, version: str, fingerprint: str) -> dict:
        asked.append(version)
        return real(self, version, fingerprint)

    monkeypatch.setattr(Ledger, "claim_key_version", counting)
    for _ in range(3):
        assert claim_key_version(ledger, "k1", KEY_A.encode()) == key_fingerprint(KEY_A.encode())
    assert asked == ["k1"]  # once per process per ledger, version and key
    (row,) = ledger.key_versions()
    assert row["key_version"] == "k1" and row["fingerprint"] == key_fingerprint(KEY_A.encode())
    # another process (another Ledger object on the same database) with the same key: same row
    other = Ledger(ledger.url, Settings.from_env().sql_dir)
    claim_key_version(other, "k1", KEY_A.encode())
    assert other.key_versions() == [row] and asked == ["k1", "k1"]
    with ledger.engine.connect() as conn:  # the key itself is nowhere in the ledger
        dump = " ".join(str(v) for r in conn.execute(sa.text("SELECT * FROM xforce_key_versions")) for v in r)
    assert KEY_A not in dump


def test_another_key_under_a_known_version_is_refused(ledger: Ledger) -> None:
    claim_key_version(ledger, "k1", KEY_A.encode())
    with pytest.raises(KeyMismatchError) as caught:
        claim_key_version(ledger, "k1", KEY_B.encode())
    message = str(caught.value)
    assert (
        "'k1'" in message and key_fingerprint(KEY_A.encode()) in message and key_fingerprint(KEY_B.encode()) in message
    )
    assert "xforce rotate-key" in message and "XFORCE_HMAC_KEY_VERSION=k2" in message
    assert KEY_A not in message and KEY_B not in message
    assert isinstance(caught.value, ConfigError) and caught.value.kind == "key_mismatch"
    # refused every time (a refusal is not remembered as a claim), and the record is unchanged
    with pytest.raises(KeyMismatchError):
        claim_key_version(ledger, "k1", KEY_B.encode())
    assert [r["fingerprint"] for r in ledger.key_versions()] == [key_fingerprint(KEY_A.encode())]
    # the new key under a new version is its first use
    claim_key_version(ledger, "k2", KEY_B.encode())
    assert [r["key_version"] for r in ledger.key_versions()] == ["k1", "k2"]


def test_processing_gets_the_key_through_the_ledger_check(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Context.plate_key`` is what ``process_extract`` tokenises with: a new key under k1 fails it."""
    monkeypatch.setenv("XFORCE_HMAC_KEY", KEY_A)
    ctx = Context.from_env()
    assert ctx.plate_key() == ("k1", KEY_A.encode())
    monkeypatch.setenv("XFORCE_HMAC_KEY", KEY_B)
    with pytest.raises(KeyMismatchError, match="not the key of version 'k1'"):
        Context.from_env().plate_key()


def test_an_older_ledger_gets_the_table_on_migration(ledger: Ledger) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE xforce_key_versions"))
    again = Ledger(ledger.url, Settings.from_env().sql_dir)
    assert again.key_versions() == []
    claim_key_version(again, "k1", KEY_A.encode())
    assert len(again.key_versions()) == 1


def test_rotate_key_records_the_new_versions_fingerprint(ledger: Ledger, data_dir: Path) -> None:
    s = Settings.from_env()
    zones = {"curated": s.curated, "quarantine": s.quarantine, "restricted": s.restricted}
    for z in zones.values():
        Path(z).mkdir(parents=True, exist_ok=True)
    tokenmap.rotate_key(zones, ledger, new_version="k2", new_key=KEY_B.encode())
    assert {r["key_version"]: r["fingerprint"] for r in ledger.key_versions()} == {
        "k2": key_fingerprint(KEY_B.encode())
    }
    # no token map under k2 to compare with: the ledger's fingerprint still refuses a relabelled key
    with pytest.raises(KeyMismatchError, match="not the key of version 'k2'"):
        tokenmap.rotate_key(zones, ledger, new_version="k2", new_key=KEY_A.encode())


def test_the_cli_refuses_a_new_key_under_an_old_version_before_any_work(
    bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = Settings.from_env()
    claim_key_version(Ledger(s.ledger_url, s.sql_dir), "k1", KEY_A.encode())
    monkeypatch.setenv("XFORCE_HMAC_KEY", KEY_B)
    extract = _write(tmp_path / "2019-01-kent-street.csv", "Crime ID,Month")
    argv = ["ingest", "--force", "kent", "--dataset", "incidents", "--file", str(extract), "--date", "2019-01-15"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "not the key of version 'k1'" in err and "xforce rotate-key" in err and KEY_B not in err
    assert not (bare / "landing" / "kent").exists()  # nothing landed
