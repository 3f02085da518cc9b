"""The run ledger on PostgreSQL (a fresh database on 127.0.0.1:5432 per run, dropped afterwards).

The nightly DAG end to end with Airflow's metadata DB *and* the ledger on PostgreSQL runs in
``test_s3.py`` (``xforce run``, compared with the SQLite default) and ``test_celery.py`` (scheduler
and Celery workers); here the ledger's own behaviour on PostgreSQL, including writers in parallel as
Celery workers are.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from services import fresh_database

from xforce.settings import PROJECT_ROOT
from xforce.store.ledger import Ledger

pytestmark = pytest.mark.integration

SQL_DIR = str(PROJECT_ROOT / "sql")


@pytest.fixture(scope="module")
def db():
    with fresh_database("xforce_test_ledger") as database:
        yield database


def test_the_schema_is_created_once_and_is_postgresql(db) -> None:
    first, second = Ledger(db.url, SQL_DIR), Ledger(db.url, SQL_DIR)  # the DDL runs again harmlessly
    assert first.engine.dialect.name == second.engine.dialect.name == "postgresql"
    tables = set(sa.inspect(first.engine).get_table_names())
    assert {"xforce_extracts", "xforce_events"} <= tables
    columns = {c["name"]: c for c in sa.inspect(first.engine).get_columns("xforce_extracts")}
    assert isinstance(columns["rows_in"]["type"], sa.BigInteger)


def test_records_merge_replace_and_keep_json_on_postgresql(db) -> None:
    ledger = Ledger(db.url, SQL_DIR)
    files = [{"name": "anpr_reads.csv", "sha256": "ab" * 32, "bytes": 12, "raw": "norfolk/x/ab/anpr_reads.csv"}]
    ledger.record("2026-11-27", "norfolk", "anpr_reads", replace=True, status="landed", files=files, rows_in=0)
    ledger.record("2026-11-27", "norfolk", "anpr_reads", status="validated", rows_in=3, reasons={"bad_plate": 1})
    row = ledger.get("2026-11-27", "norfolk", "anpr_reads")
    assert row is not None
    assert (row["status"], row["rows_in"], row["files"], row["reasons"]) == ("validated", 3, files, {"bad_plate": 1})
    ledger.record("2026-11-27", "norfolk", "anpr_reads", replace=True, status="missing")
    row = ledger.get("2026-11-27", "norfolk", "anpr_reads")
    assert row is not None and row["files"] is None and row["status"] == "missing"
    ledger.event("landed", night="2026-11-27", force="norfolk", dataset="anpr_reads", detail={"from": "sql"})
    assert [e["event"] for e in ledger.events("2026-11-27")] == ["landed"]


def test_parallel_writers_on_different_extracts_lose_nothing(db) -> None:
    """What happens when Celery workers land and validate many extracts at once."""
    ledger = Ledger(db.url, SQL_DIR)
    forces = [f"force{i}" for i in range(8)]
    errors: list[BaseException] = []

    def work(force: str) -> None:
        try:
            for dataset in ("incidents", "anpr_reads", "seizures"):
                ledger.record("2026-11-28", force, dataset, replace=True, status="landed", rows_in=0)
                ledger.event("landed", night="2026-11-28", force=force, dataset=dataset)
                ledger.record("2026-11-28", force, dataset, status="validated", rows_in=10, rows_published=9)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f,)) for f in forces]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    rows = ledger.extracts("2026-11-28")
    assert len(rows) == 24 and {(r["status"], r["rows_in"], r["rows_published"]) for r in rows} == {
        ("validated", 10, 9)
    }
    assert len(ledger.events("2026-11-28")) == 24


def test_parallel_writers_on_one_extract_do_not_fail(db) -> None:
    ledger = Ledger(db.url, SQL_DIR)
    ledger.record("2026-11-29", "norfolk", "anpr_reads", replace=True, status="landed")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        for k in range(20):
            try:
                ledger.record("2026-11-29", "norfolk", "anpr_reads", status="validated", rows_in=i * 100 + k)
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, f"{len(errors)} failed writes, first: {errors[0]!r}"
