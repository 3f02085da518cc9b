"""The re-identification audit's hash chain on PostgreSQL (a fresh database per run, dropped afterwards).

The same chain as on SQLite (tests/unit/test_reidentify_audit.py): rows hash the same on both,
a changed or removed row is found, an audit table from before the chain is migrated and chained,
and writers in parallel never fork the chain. Skipped when PostgreSQL is not reachable.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from services import fresh_database

from xforce.settings import PROJECT_ROOT
from xforce.store.ledger import Ledger, chain_hash, volatility

pytestmark = pytest.mark.integration

SQL_DIR = str(PROJECT_ROOT / "sql")


@pytest.fixture
def db():
    with fresh_database("xforce_test_audit") as database:
        yield database


def _append(ledger: Ledger, n: int, who: str = "DS Patel") -> None:
    for i in range(n):
        ledger.audit_reidentification(
            requested_by=who, purpose=f"Op Lepus, log {i}", outcome="unknown_token", token=f"{i:064x}", os_user="svc"
        )


def test_the_chain_verifies_and_finds_changed_and_removed_rows_on_postgresql(db) -> None:
    ledger = Ledger(db.url, SQL_DIR)
    assert ledger.engine.dialect.name == "postgresql" and volatility(db.url) is None
    _append(ledger, 5)
    rows = ledger.audit_chain()
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    prev = "0" * 64
    for r in rows:
        assert r["row_hash"] == chain_hash(prev, r)
        prev = r["row_hash"]
    assert ledger.verify_audit().whole
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE xforce_reidentifications SET purpose = 'routine' WHERE seq = 2"))
        conn.execute(sa.text("DELETE FROM xforce_reidentifications WHERE seq = 4"))
    check = ledger.verify_audit()
    assert len(check.problems) == 2, check.problems
    assert "position 2" in check.problems[0] and rows[1]["audit_id"] in check.problems[0]
    assert "position 4 removed" in check.problems[1]


def test_an_old_audit_table_is_migrated_and_chained_on_postgresql(db) -> None:
    engine = sa.create_engine(db.url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE xforce_reidentifications (audit_id VARCHAR(32) NOT NULL PRIMARY KEY, "
                "at VARCHAR(32) NOT NULL, requested_by VARCHAR(200) NOT NULL, os_user VARCHAR(200), "
                "purpose TEXT NOT NULL, token VARCHAR(64), key_version VARCHAR(32), outcome VARCHAR(16) NOT NULL)"
            )
        )
        for audit_id, at in (("b" * 32, "2026-01-02T00:00:00.000000+00:00"), ("a" * 32, "2026-01-01T00:00:00+00:00")):
            conn.execute(
                sa.text(
                    "INSERT INTO xforce_reidentifications "
                    "VALUES (:id, :at, 'DS Patel', NULL, 'old', NULL, NULL, 'refused')"
                ),
                {"id": audit_id, "at": at},
            )
    engine.dispose()
    ledger = Ledger(db.url, SQL_DIR)
    Ledger(db.url, SQL_DIR)  # a second migration changes nothing
    assert [(r["audit_id"], r["seq"]) for r in ledger.audit_chain()] == [("a" * 32, 1), ("b" * 32, 2)]
    _append(ledger, 1)
    assert [r["seq"] for r in ledger.audit_chain()] == [1, 2, 3] and ledger.verify_audit().whole


def test_parallel_requests_never_fork_the_chain_on_postgresql(db) -> None:
    ledger = Ledger(db.url, SQL_DIR)
    errors: list[BaseException] = []

    def work(who: str) -> None:
        try:
            _append(Ledger(db.url, SQL_DIR, migrate=False), 10, who)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"DC {c}",)) for c in "ABCD"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [r["seq"] for r in ledger.audit_chain()] == list(range(1, 41))
    assert ledger.verify_audit().whole
