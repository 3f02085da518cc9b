"""Re-identification only with a durable, tamper-evident audit (issue 16, item 2).

A ledger that would not last is refused; purpose and requester are normalised and must hold
letters; the audit row is committed before the plate is returned; the audit is a hash chain that
``xforce audit --verify`` checks; the token map and the key are private files whatever the umask;
``xforce doctor`` and the start of a night report local folders other accounts could read.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from xforce import cli
from xforce.errors import ReidentificationRefused, VolatileLedgerError
from xforce.privacy import tokenmap as privacy
from xforce.privacy.tokens import tokenise
from xforce.settings import Settings
from xforce.store import layout
from xforce.store.ledger import Ledger, chain_hash, verify_chain, volatility
from xforce.store.zones import Zone

pytestmark = pytest.mark.unit

KEY = b"unit-test-key-not-a-secret-0123456789"
PURPOSE, WHO = "Op Lepus: seizure 2026/117 follow-up", "DS Patel"


@pytest.fixture
def systemp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's temporary folder, moved beside (not above) the test's data folder."""
    elsewhere = tmp_path / "systemp"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    return elsewhere


@pytest.fixture
def settings(data_dir: Path, systemp: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("XFORCE_RESTRICTED_URI", raising=False)
    monkeypatch.delenv("XFORCE_HMAC_KEY_FILE", raising=False)
    return Settings.from_env()


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger(settings.ledger_url, settings.sql_dir)


@pytest.fixture
def umask0() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _seed(settings: Settings) -> list[str]:
    plates = pa.array(["AB12CDE", "XY34FGH"], pa.string())
    tokens = tokenise(plates, KEY)
    privacy.write_map(settings.restricted, "k1", "anpr_reads", "2026-10-25", "norfolk", plates, tokens)
    return tokens.to_pylist()


def _db(settings: Settings) -> sqlite3.Connection:
    return sqlite3.connect(settings.ledger_url.split(":///", 1)[1])


def _no_read(*args: object, **kwargs: object) -> None:
    raise AssertionError("the token map was read")


# ---------------------------------------------------------------------------- durable ledgers only
@pytest.mark.parametrize(
    "url",
    [
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:///",
        "sqlite:///file:audit?mode=memory&uri=true",
        "sqlite:///file::memory:",
    ],
)
def test_in_memory_ledgers_are_volatile(url: str) -> None:
    assert volatility(url) is not None and "memory" in str(volatility(url))


def test_durable_ledgers(tmp_path: Path, systemp: Path) -> None:
    assert volatility("postgresql://postgres@127.0.0.1:5432/test") is None
    assert volatility(f"sqlite:///{tmp_path / 'data' / 'ledger.sqlite'}") is None
    assert "temporary folder" in str(volatility(f"sqlite:///{systemp / 'ledger.sqlite'}"))
    assert "RAM disk" in str(volatility("sqlite:////dev/shm/xforce/ledger.sqlite"))


def test_an_in_memory_ledger_is_refused_before_anything_is_read(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tok, _ = _seed(settings)
    monkeypatch.setattr(privacy, "lookup", _no_read)
    memory = Ledger("sqlite:///:memory:", settings.sql_dir)
    with pytest.raises(VolatileLedgerError, match="in-memory"):
        privacy.reidentify(settings.restricted, memory, tok, purpose=PURPOSE, requested_by=WHO)
    # Through the command line, as the issue reports it: exit 2, no plate on stdout.
    monkeypatch.setenv("XFORCE_LEDGER_URL", "sqlite:///:memory:")
    assert cli.main(["reidentify", "--token", tok, "--purpose", PURPOSE, "--requested-by", WHO]) == 2
    got = capsys.readouterr()
    assert got.out == "" and "not last" in got.err and "AB12CDE" not in got.err


def test_a_ledger_in_the_temporary_folder_is_refused(
    settings: Settings, systemp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok, _ = _seed(settings)
    monkeypatch.setattr(privacy, "lookup", _no_read)
    temp = Ledger(f"sqlite:///{systemp / 'ledger.sqlite'}", settings.sql_dir)
    with pytest.raises(VolatileLedgerError, match="temporary folder"):
        privacy.reidentify(settings.restricted, temp, tok, purpose=PURPOSE, requested_by=WHO)
    assert temp.reidentifications() == []


# ------------------------------------------------------------------------ purpose and requester
@pytest.mark.parametrize(
    ("purpose", "requested_by", "which"),
    [
        ("\u200b", WHO, "purpose"),  # a zero-width space only: the case
        ("\u200b\u200c\u2060\ufeff \u00a0\t", WHO, "purpose"),
        (PURPOSE, "\u200b", "requested-by"),
        ("ab", WHO, "purpose"),  # two letters: too few
        ("2026/117 12:00 -- ##", WHO, "purpose"),  # no letters at all
        (PURPOSE, "X\u200b", "requested-by"),  # one letter once the invisible one is gone
        ("x" * 2001, WHO, "longer than 2000"),
    ],
)
def test_a_purpose_or_requester_without_letters_is_refused_before_the_map_is_read(
    settings: Settings, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, purpose: str, requested_by: str, which: str
) -> None:
    tok, _ = _seed(settings)
    monkeypatch.setattr(privacy, "lookup", _no_read)
    with pytest.raises(ReidentificationRefused, match=which) as refused:
        privacy.reidentify(settings.restricted, ledger, tok, purpose=purpose, requested_by=requested_by)
    assert "sha-256" in str(refused.value) and purpose not in str(refused.value)  # described, not quoted
    (row,) = ledger.reidentifications()
    assert row["outcome"] == "refused" and row["token"] == tok
    assert "\u200b" not in row["purpose"] + row["requested_by"]


def test_purpose_and_requester_are_nfkc_normalised_and_stripped(settings: Settings, ledger: Ledger) -> None:
    tok, _ = _seed(settings)
    found = privacy.reidentify(
        settings.restricted,
        ledger,
        tok,
        # zero-width space and joiner, full-width letters, ideographic and no-break spaces, a newline
        purpose="\u200b\uff2f\uff50\u3000\uff2c\uff45\uff50\uff55\uff53\u200d  log\n123\u00a0",
        requested_by="\ufeff DS\u00a0Pa\u00adtel \u2028",  # BOM, no-break space, soft hyphen, line separator
    )
    assert found.plate == "AB12CDE"
    (row,) = ledger.reidentifications()
    assert (row["purpose"], row["requested_by"], row["outcome"]) == ("Op Lepus log 123", "DS Patel", "disclosed")
    assert privacy.normalise_text("\ufb01le \u2460") == "file 1"  # compatibility forms: ligature, circled digit


# --------------------------------------------------------------------- audit before disclosure
def test_a_failing_lookup_still_leaves_an_audit_row(
    settings: Settings, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    tok, _ = _seed(settings)

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("the restricted zone cannot be read")

    monkeypatch.setattr(privacy, "lookup", broken)
    with pytest.raises(OSError, match="cannot be read"):
        privacy.reidentify(settings.restricted, ledger, tok, purpose=PURPOSE, requested_by=WHO)
    (row,) = ledger.reidentifications()
    assert (row["outcome"], row["token"], row["purpose"]) == ("lookup_failed", tok, PURPOSE)
    assert ledger.verify_audit().whole


def test_no_audit_row_no_plate(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tok, _ = _seed(settings)

    def cannot_write(self: Ledger, **kwargs: object) -> str:
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(Ledger, "audit_reidentification", cannot_write)
    assert cli.main(["reidentify", "--token", tok, "--purpose", PURPOSE, "--requested-by", WHO]) == 1
    got = capsys.readouterr()
    assert got.out == "" and "AB12CDE" not in got.err and "cannot use the database" in got.err


def test_the_audit_row_is_committed_when_the_plate_is_returned(settings: Settings, ledger: Ledger) -> None:
    tok, _ = _seed(settings)
    found = privacy.reidentify(settings.restricted, ledger, tok, purpose=PURPOSE, requested_by=WHO)
    # Another connection (another process) sees the row: it is committed, not pending.
    with _db(settings) as con:
        rows = con.execute("SELECT audit_id, outcome, seq FROM xforce_reidentifications").fetchall()
    assert rows == [(found.audit_id, "disclosed", 1)]


# ------------------------------------------------------------------------------ the hash chain
def _requests(settings: Settings, ledger: Ledger) -> list[str]:
    tok, other = _seed(settings)
    privacy.reidentify(settings.restricted, ledger, tok, purpose=PURPOSE, requested_by=WHO)
    for given in ("f" * 64, "XY34 FGH"):  # unknown, malformed
        with pytest.raises(Exception, match="audited"):
            privacy.reidentify(settings.restricted, ledger, given, purpose=PURPOSE, requested_by=WHO)
    with pytest.raises(ReidentificationRefused):
        privacy.reidentify(settings.restricted, ledger, tok, purpose="\u200b", requested_by=WHO)
    privacy.reidentify(settings.restricted, ledger, other, purpose="Op Lepus: second vehicle", requested_by="DC Smith")
    return [r["audit_id"] for r in ledger.audit_chain()]


def test_every_row_is_chained_and_the_chain_verifies(settings: Settings, ledger: Ledger) -> None:
    ids = _requests(settings, ledger)
    rows = ledger.audit_chain()
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5] and len(set(ids)) == 5
    assert [r["outcome"] for r in rows] == ["disclosed", "unknown_token", "malformed_token", "refused", "disclosed"]
    prev = "0" * 64
    for r in rows:  # each hash covers the previous hash and the row's own fields
        assert r["row_hash"] == chain_hash(prev, r)
        prev = r["row_hash"]
    check = ledger.verify_audit()
    assert check.whole and (check.rows, check.head_seq, check.head_hash) == (5, 5, prev)


@pytest.mark.parametrize(
    ("tamper", "expect"),
    [
        ("UPDATE xforce_reidentifications SET purpose = 'routine check' WHERE seq = 2", "position 2"),
        ("UPDATE xforce_reidentifications SET outcome = 'refused' WHERE seq = 1", "position 1"),
        ("UPDATE xforce_reidentifications SET at = '2020-01-01T00:00:00.000000+00:00' WHERE seq = 4", "position 4"),
        ("DELETE FROM xforce_reidentifications WHERE seq = 3", "position 3 removed"),
        ("DELETE FROM xforce_reidentifications WHERE seq IN (2, 3)", "position 2-3 removed"),
        ("DELETE FROM xforce_reidentifications WHERE seq = 1", "position 1 removed"),
        ("UPDATE xforce_reidentifications SET row_hash = NULL WHERE seq = 5", "no position or hash"),
    ],
)
def test_a_changed_or_removed_row_is_detected(
    settings: Settings, ledger: Ledger, capsys: pytest.CaptureFixture[str], tamper: str, expect: str
) -> None:
    ids = _requests(settings, ledger)
    assert cli.main(["audit", "--verify"]) == 0
    assert "audit chain whole: 5 row(s)" in capsys.readouterr().out
    with _db(settings) as con:
        con.execute(tamper)
    check = ledger.verify_audit()
    assert not check.whole and any(expect in p for p in check.problems), check.problems
    assert cli.main(["audit", "--verify"]) == 1
    err = capsys.readouterr().err
    assert expect in err
    if "UPDATE" in tamper:  # the changed row is named by its audit id
        seq = 5 if "seq = 5" in tamper else int(tamper.rsplit("seq = ", 1)[1])
        assert ids[seq - 1] in err and ids[seq - 1] in check.bad_ids


def test_a_changed_row_re_hashed_is_caught_at_the_next_row(settings: Settings, ledger: Ledger) -> None:
    _requests(settings, ledger)
    rows = ledger.audit_chain()
    forged = dict(rows[1], purpose="routine check")
    forged_hash = chain_hash(rows[0]["row_hash"], forged)
    with _db(settings) as con:
        con.execute(
            "UPDATE xforce_reidentifications SET purpose = ?, row_hash = ? WHERE seq = 2",
            ("routine check", forged_hash),
        )
    problems = ledger.verify_audit().problems
    assert len(problems) == 1 and "position 3" in problems[0]


def test_verify_chain_of_nothing_is_whole() -> None:
    check = verify_chain([])
    assert check.whole and (check.rows, check.head_seq) == (0, 0)


OLD_TABLE = """CREATE TABLE xforce_reidentifications (
    audit_id VARCHAR(32) NOT NULL PRIMARY KEY, at VARCHAR(32) NOT NULL, requested_by VARCHAR(200) NOT NULL,
    os_user VARCHAR(200), purpose TEXT NOT NULL, token VARCHAR(64), key_version VARCHAR(32),
    outcome VARCHAR(16) NOT NULL)"""


def test_an_audit_table_from_before_the_chain_is_migrated_and_chained(settings: Settings) -> None:
    path = Path(settings.ledger_url.split(":///", 1)[1])
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as con:
        con.execute(OLD_TABLE)
        con.executemany(
            "INSERT INTO xforce_reidentifications VALUES (?, ?, 'DS Patel', NULL, 'old purpose', NULL, NULL, ?)",
            [
                ("b" * 32, "2026-01-02T00:00:00.000000+00:00", "refused"),
                ("a" * 32, "2026-01-01T00:00:00.000000+00:00", "disclosed"),
            ],
        )
    ledger = Ledger(settings.ledger_url, settings.sql_dir)
    rows = ledger.audit_chain()
    assert [(r["audit_id"], r["seq"]) for r in rows] == [("a" * 32, 1), ("b" * 32, 2)]  # oldest first
    assert ledger.verify_audit().whole
    # Migrating again changes nothing; new requests continue the chain.
    Ledger(settings.ledger_url, settings.sql_dir)
    with pytest.raises(ReidentificationRefused):
        privacy.reidentify(settings.restricted, ledger, "0" * 64, purpose="", requested_by=WHO)
    assert [r["seq"] for r in ledger.audit_chain()] == [1, 2, 3]
    assert [r["row_hash"] for r in ledger.audit_chain()][:2] == [r["row_hash"] for r in rows]
    assert ledger.verify_audit().whole
    with sqlite3.connect(path) as con:
        indexes = {r[1] for r in con.execute("PRAGMA index_list(xforce_reidentifications)")}
    assert "xforce_reidentifications_seq" in indexes


# ------------------------------------------------------------------------------- private files
def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_token_map_is_private_whatever_the_umask(settings: Settings, umask0: None) -> None:
    plates = pa.array(["AB12CDE"], pa.string())
    rel = privacy.write_map(
        settings.restricted, "k1", "anpr_reads", "2026-10-25", "norfolk", plates, tokenise(plates, KEY)
    )
    assert rel is not None
    root = Path(settings.restricted)
    path = root / rel
    assert _mode(path) == 0o600
    folders = [path.parent, *(p for p in path.parent.parents if p.is_relative_to(root))]
    assert folders[-1] == root and len(folders) == 6  # root, token_map, key_version, dataset, date, force
    assert {str(f): _mode(f) for f in folders} == {str(f): 0o700 for f in folders}
    # A plain zone is unchanged: files as the umask says (0666 with umask 0).
    curated = Path(settings.curated)
    Zone(str(curated)).write_bytes("x/y.json", b"{}")
    assert _mode(curated / "x" / "y.json") == 0o666


def test_the_restricted_zone_writes_private_files_through_every_path(settings: Settings, umask0: None) -> None:
    from xforce.context import Context

    zone = Context.from_env().zones.restricted
    assert zone.private
    with zone.parquet_writer("a/p.parquet", pa.schema([("x", pa.int64())])) as w:
        w.write_table(pa.table({"x": [1]}))
    zone.write_bytes("b/c.bin", b"1")
    staged = Path(settings.staging) / "s.bin"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"2")
    zone.copy_from(Zone(settings.staging), "s.bin", "d/copied.bin")
    zone.move_from(Zone(settings.staging), "s.bin", "d/moved.bin")
    root = Path(settings.restricted)
    assert {p.name: _mode(p) for p in root.rglob("*") if p.is_file()} == {
        "p.parquet": 0o600,
        "c.bin": 0o600,
        "copied.bin": 0o600,
        "moved.bin": 0o600,
    }
    assert {_mode(p) for p in [root, *root.rglob("*")] if p.is_dir()} == {0o700}


def test_key_rotation_writes_a_private_map_and_leaves_curated_readable(settings: Settings, umask0: None) -> None:
    plates = pa.array(["AB12CDE", "XY34FGH"], pa.string())
    old = tokenise(plates, KEY)
    privacy.write_map(settings.restricted, "k1", "anpr_reads", "2026-10-25", "norfolk", plates, old)
    rel = layout.part_file("anpr_reads", "2026-10-25", "norfolk")
    table = pa.table({"record_id": ["r1", "r2"], "plate_token": old, "plate_key_version": ["k1", "k1"]})
    Zone(settings.curated).write_bytes(rel, privacy._parquet_bytes(table))
    zones = {"curated": settings.curated, "quarantine": settings.quarantine, "restricted": settings.restricted}
    report = privacy.rotate_key(
        zones, Ledger(settings.ledger_url, settings.sql_dir), new_version="k2", new_key=KEY[::-1]
    )
    assert len(report.partitions) == 1 and report.retired == ["k1"]
    assert _mode(Path(settings.curated) / rel) == 0o666  # analysts' zone: as the umask says
    (new_map,) = (Path(settings.restricted) / "token_map").rglob("*.parquet")
    assert "key_version=k2" in str(new_map) and _mode(new_map) == 0o600 and _mode(new_map.parent) == 0o700


def test_the_development_key_is_private_whatever_the_umask(
    settings: Settings, umask0: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("XFORCE_HMAC_KEY", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_XFORCE_HMAC", raising=False)
    cli.ensure_dev_key(settings.data_dir)
    key = Path(settings.data_dir) / "secrets" / "hmac.key"
    assert os.environ["XFORCE_HMAC_KEY_FILE"] == str(key)
    assert (_mode(key), _mode(key.parent)) == (0o600, 0o700) and len(key.read_text()) == 64


# ------------------------------------------------------------------------------ xforce doctor
def test_doctor_reports_zones_and_key_others_could_read(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    raw, restricted = Path(settings.raw), Path(settings.restricted)
    (raw / "norfolk").mkdir(parents=True)
    (restricted / "token_map").mkdir(parents=True)
    key = Path(settings.data_dir) / "secrets" / "hmac.key"
    key.parent.mkdir()
    key.write_text("k" * 64)
    for path, mode in ((raw, 0o700), (raw / "norfolk", 0o755), (restricted, 0o750), (restricted / "token_map", 0o700)):
        path.chmod(mode)
    key.chmod(0o644)
    Path(settings.curated).mkdir()
    Path(settings.curated).chmod(0o755)  # analysts' zone: not looked at
    assert cli.main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert f"{raw / 'norfolk'} is 0755, should be 0700" in err
    assert f"{restricted} is 0750, should be 0700" in err
    assert f"key file: {key} is 0644, should be 0600" in err
    assert "curated" not in err and "token_map" not in err and f"{raw} is" not in err

    # The start of every night records the same as warning events.
    from xforce.airflow.tasks import warn_loose_permissions
    from xforce.context import Context

    ctx = Context.from_env()
    found = warn_loose_permissions(ctx, "2026-11-27", "run-1")
    events = [e for e in ctx.ledger.events("2026-11-27") if e["event"] == "loose_permissions"]
    assert len(found) == len(events) == 3 and all(e["run_id"] == "run-1" for e in events)

    (raw / "norfolk").chmod(0o700)
    restricted.chmod(0o700)
    key.chmod(0o600)
    assert cli.main(["doctor"]) == 0
    assert "private" in capsys.readouterr().out
    assert warn_loose_permissions(ctx, "2026-11-28", "run-2") == []


def test_a_new_installation_lands_raw_copies_private_and_doctor_passes(
    settings: Settings, umask0: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The raw zone holds the forces' files as sent (clear plates): the hub makes it private itself, so
    a fresh install is not reported (nor warned about every night) whatever the umask."""
    from datetime import date

    from xforce.context import Context
    from xforce.exchange import land
    from xforce_tools.generate import generate_night

    generate_night(date(2026, 11, 27), Path(settings.landing), anpr_reads=20, seed=5, forces=["kent"])
    ctx = Context.from_env()
    ref = land.land_extract(ctx, "2026-11-27", "kent", "anpr_reads", "run-1", settle=False)
    copy = Path(settings.raw) / ref["files"][0]["raw"]
    assert _mode(copy) == 0o600
    folder = copy.parent
    while folder != Path(settings.raw).parent:
        assert _mode(folder) == 0o700, folder
        folder = folder.parent
    Path(settings.data_dir, "secrets").mkdir(mode=0o700)
    key = Path(settings.data_dir, "secrets", "hmac.key")
    key.write_text("k" * 64)
    key.chmod(0o600)
    assert cli.main(["doctor"]) == 0, capsys.readouterr().err
