"""The run ledger (SQLAlchemy; SQLite by default, PostgreSQL by URL): the record of what happened.

Every SQL statement on the ledger's tables lives in this module; callers use its query methods.
The DDL lives in ``sql/ledger.sql`` and is applied by :meth:`Ledger.migrate` (idempotent).
:func:`open_ledger` gives each process one engine per URL, migrated once.

The re-identification audit is a hash chain (:func:`chain_hash`, :meth:`Ledger.verify_audit`), and
:func:`volatility` says whether a ledger URL would outlive the process (re-identification needs one
that does).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import socket
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from xforce.errors import NightBusyError, XforceError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from xforce.outcome import Outcome

EXTRACT_COLUMNS = (
    "status",
    "received_at",
    "files",
    "sha256",
    "bytes",
    "rows_in",
    "rows_published",
    "rows_quarantined",
    "reasons",
    "error",
    "warning",
    "run_id",
    "staged",
)
_JSON_COLUMNS = ("files", "reasons", "staged")
#: ``ALTER TABLE t ADD COLUMN c ...`` in ``sql/ledger.sql``: run only when ``t`` lacks ``c``.
_ADD_COLUMN = re.compile(r"^ALTER\s+TABLE\s+(\w+)\s+ADD\s+COLUMN\s+(\w+)\s", re.IGNORECASE)
#: The fields of an audit row that its hash covers, in the order they are written.
AUDIT_FIELDS = ("audit_id", "seq", "at", "requested_by", "os_user", "purpose", "token", "key_version", "outcome")
#: The "previous hash" of the first row of the chain.
GENESIS = "0" * 64


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _chain_head(conn: sa.Connection) -> tuple[int, str]:
    """The audit chain's last position and row hash (``0`` and the genesis hash when it is empty)."""
    last = conn.execute(
        sa.text("SELECT seq, row_hash FROM xforce_reidentifications WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1")
    ).first()
    return (int(last[0]), str(last[1])) if last else (0, GENESIS)


class Ledger:
    def __init__(self, url: str, sql_dir: str, *, migrate: bool = True) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 60}
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, **kwargs)
        self._ddl = (Path(sql_dir) / "ledger.sql").read_text(encoding="utf-8")
        if migrate:
            self.migrate()

    def migrate(self) -> None:
        """Create the ledger's tables, columns and indexes where missing (``sql/ledger.sql``; idempotent).

        ``ALTER TABLE ... ADD COLUMN`` statements run only on a table without that column (a ledger
        made by an older version). When that adds the audit's hash chain, the rows already there are
        chained once, oldest first (:meth:`_chain_unchained`).
        """
        try:
            self._migrate()
        except sa.exc.OperationalError as exc:  # SQLite: another process added the column meanwhile
            if "duplicate column" not in str(exc).lower():
                raise
            self._migrate()

    def _migrate(self) -> None:
        statements = [s.strip() for s in _strip_comments(self._ddl).split(";") if s.strip()]
        added: set[tuple[str, str]] = set()
        with self.engine.begin() as conn:
            for stmt in statements:
                if m := _ADD_COLUMN.match(stmt):
                    table, column = m.group(1).lower(), m.group(2).lower()
                    if column in {c["name"].lower() for c in sa.inspect(conn).get_columns(table)}:
                        continue
                    if conn.dialect.name == "postgresql":  # a concurrent migration may have added it
                        stmt = stmt[: m.end(2)].replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS", 1) + stmt[m.end(2) :]
                    added.add((table, column))
                conn.execute(sa.text(stmt))
            if ("xforce_reidentifications", "row_hash") in added:
                self._chain_unchained(conn)

    # ------------------------------------------------------------------ extracts
    def get(self, night: str, force: str, dataset: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.text("SELECT * FROM xforce_extracts WHERE night = :n AND force = :f AND dataset = :d"),
                    {"n": night, "f": force, "d": dataset},
                )
                .mappings()
                .first()
            )
        return _decode(dict(row)) if row else None

    def extracts(self, night: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM xforce_extracts"
        params: dict[str, Any] = {}
        if night:
            sql += " WHERE night = :n"
            params["n"] = night
        sql += " ORDER BY night, force, dataset"
        with self.engine.connect() as conn:
            return [_decode(dict(r)) for r in conn.execute(sa.text(sql), params).mappings()]

    def record(self, night: str, force: str, dataset: str, *, replace: bool = False, **fields: Any) -> None:
        """Update an extract's row (merging with what is there unless ``replace``)."""
        unknown = set(fields) - set(EXTRACT_COLUMNS)
        if unknown:
            raise ValueError(f"unknown ledger columns {sorted(unknown)}")
        key = {"night": night, "force": force, "dataset": dataset}
        lock = " FOR UPDATE" if self.engine.dialect.name == "postgresql" else ""  # SQLite locks the file
        with self.engine.begin() as conn:
            old = (
                conn.execute(
                    sa.text(
                        "SELECT * FROM xforce_extracts WHERE night = :night AND force = :force AND dataset = :dataset"
                        + lock
                    ),
                    key,
                )
                .mappings()
                .first()
            )
            row: dict[str, Any] = {c: None for c in EXTRACT_COLUMNS}
            if old and not replace:
                row.update({c: old[c] for c in EXTRACT_COLUMNS})
            for name, value in fields.items():
                row[name] = json.dumps(value, sort_keys=True) if name in _JSON_COLUMNS and value is not None else value
            row.update(key, updated_at=utcnow())
            cols = ", ".join(row)
            updates = ", ".join(f"{c} = excluded.{c}" for c in row if c not in key)
            # one statement, safe against a concurrent writer inserting the same extract first
            conn.execute(
                sa.text(
                    f"INSERT INTO xforce_extracts ({cols}) VALUES ({', '.join(':' + c for c in row)}) "
                    f"ON CONFLICT (night, force, dataset) DO UPDATE SET {updates}"
                ),
                row,
            )

    def latest_night(self) -> str | None:
        """The newest night with any extract row."""
        with self.engine.connect() as conn:
            value = conn.execute(sa.text("SELECT max(night) FROM xforce_extracts")).scalar()
        return str(value) if value else None

    def extract_rows(self, first: str, last: str) -> list[dict[str, Any]]:
        """The extract rows of the nights ``first``..``last`` (inclusive), as shown to people (no file lists)."""
        with self.engine.connect() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT night, force, dataset, status, received_at, rows_in, rows_published, "
                        "rows_quarantined, error, warning FROM xforce_extracts WHERE night >= :a AND night <= :b"
                    ),
                    {"a": first, "b": last},
                ).mappings()
            ]

    def published_volumes(self, force: str, dataset: str, first: str, before: str) -> list[int]:
        """``rows_in`` of the force's published extracts of the nights ``first`` <= night < ``before``.

        One bounded query on the ledger's key: the cost does not grow with the nights stored.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT rows_in FROM xforce_extracts WHERE night >= :lo AND night < :n AND force = :f "
                    "AND dataset = :d AND status = 'published' AND rows_in IS NOT NULL"
                ),
                {"lo": first, "n": before, "f": force, "d": dataset},
            ).all()
        return [int(r[0]) for r in rows]

    def record_outcome(self, outcome: Outcome, run_id: str) -> None:
        """Record what a step concluded about an extract (merged with what earlier steps recorded)."""
        self.record(
            outcome.night,
            outcome.force,
            outcome.dataset,
            status=outcome.status,
            rows_in=outcome.rows_in,
            rows_published=outcome.rows_published,
            rows_quarantined=outcome.rows_quarantined,
            reasons=dict(sorted(outcome.reasons.items())),
            error=outcome.error,
            warning=outcome.warning,
            staged=outcome.staged,
            run_id=run_id,
        )

    # ------------------------------------------------------------------ events
    def event(
        self,
        event: str,
        *,
        night: str | None = None,
        force: str | None = None,
        dataset: str | None = None,
        detail: Any = None,
        run_id: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO xforce_events (event_id, at, night, force, dataset, event, detail, run_id) "
                    "VALUES (:id, :at, :night, :force, :dataset, :event, :detail, :run_id)"
                ),
                {
                    "id": uuid.uuid4().hex,
                    "at": utcnow(),
                    "night": night,
                    "force": force,
                    "dataset": dataset,
                    "event": event,
                    "detail": json.dumps(detail, sort_keys=True, default=str) if detail else None,
                    "run_id": run_id,
                },
            )

    def events(self, night: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM xforce_events" + (" WHERE night = :n" if night else "") + " ORDER BY at, event_id"
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), {"n": night} if night else {}).mappings()]

    def published_nights(self, run_ids: Iterable[str] | None = None) -> set[str]:
        """Nights with a ``night_published`` event (only those of ``run_ids`` when given)."""
        sql = "SELECT DISTINCT night FROM xforce_events WHERE event = 'night_published'"
        params: dict[str, Any] = {}
        stmt = sa.text(sql)
        if run_ids is not None:
            ids = sorted(set(run_ids))
            if not ids:
                return set()
            stmt = sa.text(sql + " AND run_id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
            params["ids"] = ids
        with self.engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(stmt, params) if r[0]}

    def latest_published_night(self) -> str | None:
        with self.engine.connect() as conn:
            value = conn.execute(
                sa.text("SELECT max(night) FROM xforce_events WHERE event = 'night_published'")
            ).scalar()
        return str(value) if value else None

    def has_alert(self, night: str, force: str, dataset: str) -> bool:
        """Whether a missing-extract alert was already raised for this extract."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT 1 FROM xforce_events WHERE event = 'alert' AND night = :n AND force = :f AND dataset = :d"
                ),
                {"n": night, "f": force, "d": dataset},
            ).first()
        return found is not None

    def has_night_alert(self, night: str) -> bool:
        """Whether a night-level alert (no force and dataset: nothing landed at all) was raised."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.text("SELECT 1 FROM xforce_events WHERE event = 'alert' AND night = :n AND force IS NULL"),
                {"n": night},
            ).first()
        return found is not None

    def alert_counts(self, first: str, last: str) -> dict[str, int]:
        """Missing-extract alerts per force over the nights ``first``..``last`` (inclusive)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT force, count(*) FROM xforce_events WHERE event = 'alert' AND force IS NOT NULL "
                    "AND night >= :a AND night <= :b GROUP BY force"
                ),
                {"a": first, "b": last},
            ).all()
        return {str(f): int(n) for f, n in rows}

    # ------------------------------------------------------------------ one run per night
    def acquire_lease(self, night: str, run_id: str, seconds: int, holder: str | None = None) -> None:
        """Take (or renew) the night for ``run_id`` for ``seconds``; another run's live lease refuses it.

        One statement: whichever of two racing runs writes first holds the night, the other sees
        the holder and gets :class:`~xforce.errors.NightBusyError`.
        """
        now = datetime.now(UTC)
        row = {
            "night": night,
            "run_id": run_id,
            "holder": holder or f"{socket.gethostname()}:{os.getpid()}",
            "now": now.isoformat(timespec="seconds"),
            "expires": (now + timedelta(seconds=seconds)).isoformat(timespec="seconds"),
        }
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO xforce_leases (night, run_id, holder, acquired_at, expires_at) "
                    "VALUES (:night, :run_id, :holder, :now, :expires) "
                    "ON CONFLICT (night) DO UPDATE SET run_id = excluded.run_id, holder = excluded.holder, "
                    "acquired_at = CASE WHEN xforce_leases.run_id = excluded.run_id "
                    "THEN xforce_leases.acquired_at ELSE excluded.acquired_at END, expires_at = excluded.expires_at "
                    "WHERE xforce_leases.run_id = excluded.run_id OR xforce_leases.expires_at < :now"
                ),
                row,
            )
            held = conn.execute(
                sa.text("SELECT run_id, holder, expires_at FROM xforce_leases WHERE night = :night"), row
            ).first()
        if held is None or held[0] != run_id:
            other = ("another run", "?", "?") if held is None else tuple(held)
            raise NightBusyError(
                f"night {night} is being run by {other[0]} ({other[1]}, lease until {other[2]} UTC): "
                "wait for it to finish, or after a crash for its lease to expire"
            )

    def release_lease(self, night: str, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM xforce_leases WHERE night = :n AND run_id = :r"), {"n": night, "r": run_id}
            )

    def lease(self, night: str) -> dict[str, Any] | None:
        """The night's lease as recorded (live or expired), or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM xforce_leases WHERE night = :n"), {"n": night}).mappings().first()
        return dict(row) if row else None

    def live_lease_runs(self) -> set[str]:
        """Run ids holding a lease that has not expired."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT run_id FROM xforce_leases WHERE expires_at >= :now"), {"now": utcnow()})
            return {str(r[0]) for r in rows}

    # ------------------------------------------------------------------ the publish journal
    def begin_publish(self, night: str, run_id: str, plan: Any) -> None:
        """Journal a night's publish before anything is copied into place (replacing a committed one)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO xforce_publishes (night, run_id, state, plan, begun_at, committed_at) "
                    "VALUES (:n, :r, 'begun', :plan, :at, NULL) ON CONFLICT (night) DO UPDATE SET "
                    "run_id = excluded.run_id, state = 'begun', plan = excluded.plan, begun_at = excluded.begun_at, "
                    "committed_at = NULL"
                ),
                {"n": night, "r": run_id, "plan": json.dumps(plan, sort_keys=True), "at": utcnow()},
            )

    def commit_publish(self, night: str, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE xforce_publishes SET state = 'committed', committed_at = :at "
                    "WHERE night = :n AND run_id = :r"
                ),
                {"n": night, "r": run_id, "at": utcnow()},
            )

    def unfinished_publishes(self, night: str | None = None) -> list[dict[str, Any]]:
        """Publishes begun and never committed (a crash), with their plans."""
        sql = "SELECT * FROM xforce_publishes WHERE state = 'begun'" + (" AND night = :n" if night else "")
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(sa.text(sql), {"n": night} if night else {}).mappings()]
        for r in rows:
            r["plan"] = json.loads(r["plan"])
        return rows

    # ------------------------------------------------------------------ re-identification audit
    def audit_reidentification(
        self,
        *,
        requested_by: str,
        purpose: str,
        outcome: str,
        token: str | None = None,
        key_version: str | None = None,
        os_user: str | None = None,
    ) -> str:
        """Append one audit row (``xforce_reidentifications``), committed, chained to the last; returns its id.

        The row takes the next position (``seq``) and ``row_hash = chain_hash(last row's hash, row)``.
        Two writers racing for one position: on PostgreSQL they queue on a transaction-scoped advisory
        lock; on SQLite the unique index refuses the second, which retries after a short random pause.
        """
        row: dict[str, Any] = {
            "audit_id": uuid.uuid4().hex,
            "requested_by": requested_by,
            "os_user": os_user,
            "purpose": purpose,
            "token": token,
            "key_version": key_version,
            "outcome": outcome,
        }
        for attempt in range(20):
            try:
                with self.engine.begin() as conn:
                    if self.engine.dialect.name == "postgresql":  # appenders queue here: no lost race
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('xforce_reidentifications'))"))
                    seq, prev = _chain_head(conn)
                    row["seq"] = seq + 1
                    row["at"] = datetime.now(UTC).isoformat(timespec="microseconds")
                    row["row_hash"] = chain_hash(prev, row)
                    conn.execute(sa.text(_AUDIT_INSERT), row)
                return str(row["audit_id"])
            except sa.exc.IntegrityError:
                if attempt == 19:
                    raise
                time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # SQLite: another writer won; again
        raise AssertionError("unreachable")  # pragma: no cover

    def _chain_unchained(self, conn: sa.Connection) -> int:
        """Chain the audit rows that have no position yet (a ledger older than the chain), oldest first."""
        seq, prev = _chain_head(conn)
        rows = conn.execute(
            sa.text("SELECT * FROM xforce_reidentifications WHERE seq IS NULL ORDER BY at, audit_id")
        ).mappings()
        for r in [dict(r) for r in rows]:
            seq += 1
            r["seq"] = seq
            prev = r["row_hash"] = chain_hash(prev, r)
            conn.execute(
                sa.text(
                    "UPDATE xforce_reidentifications SET seq = :seq, row_hash = :row_hash WHERE audit_id = :audit_id"
                ),
                r,
            )
        return seq

    def audit_chain(self) -> list[dict[str, Any]]:
        """Every audit row with its chain columns, in chain order (rows without a position last)."""
        with self.engine.connect() as conn:
            rows = [
                dict(r)
                for r in conn.execute(
                    sa.text(
                        "SELECT * FROM xforce_reidentifications "
                        "ORDER BY CASE WHEN seq IS NULL THEN 1 ELSE 0 END, seq, at, audit_id"
                    )
                ).mappings()
            ]
        return rows

    def verify_audit(self) -> AuditCheck:
        """Check the audit's hash chain: which rows were changed or removed (:func:`verify_chain`)."""
        return verify_chain(self.audit_chain())

    def reidentifications(self, token: str | None = None) -> list[dict[str, Any]]:
        """The audit rows, oldest first (optionally for one token)."""
        sql = "SELECT * FROM xforce_reidentifications" + (" WHERE token = :t" if token else "")
        sql += " ORDER BY at, audit_id"
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), {"t": token} if token else {}).mappings()]

    # ------------------------------------------------------------------ one key per key version
    def claim_key_version(self, version: str, fingerprint: str) -> dict[str, Any]:
        """Record ``version``'s key fingerprint unless it has one; the row recorded (the first claim's).

        One statement then a read: of two processes first using a version at once, the second reads
        the first's fingerprint (``xforce.privacy.tokens.claim_key_version`` compares them)."""
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO xforce_key_versions (key_version, fingerprint, first_seen_at) "
                    "VALUES (:v, :f, :at) ON CONFLICT (key_version) DO NOTHING"
                ),
                {"v": version, "f": fingerprint, "at": utcnow()},
            )
            row = (
                conn.execute(sa.text("SELECT * FROM xforce_key_versions WHERE key_version = :v"), {"v": version})
                .mappings()
                .one()
            )
        return dict(row)

    def key_versions(self) -> list[dict[str, Any]]:
        """Every key version the ledger knows, with its fingerprint and first use, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM xforce_key_versions ORDER BY first_seen_at, key_version"))
            return [dict(r) for r in rows.mappings()]


_AUDIT_INSERT = (
    "INSERT INTO xforce_reidentifications "
    "(audit_id, at, requested_by, os_user, purpose, token, key_version, outcome, seq, row_hash) "
    "VALUES (:audit_id, :at, :requested_by, :os_user, :purpose, :token, :key_version, :outcome, :seq, :row_hash)"
)


def chain_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """``sha256(prev_hash + "\\n" + canonical JSON of the row's AUDIT_FIELDS)``, hex.

    Canonical: keys sorted, no spaces, ASCII only (non-ASCII as ``\\uXXXX``), absent fields as null,
    so the same row hashes the same on SQLite and PostgreSQL.
    """
    fields = {name: row.get(name) for name in AUDIT_FIELDS}
    fields["seq"] = None if fields["seq"] is None else int(fields["seq"])
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode("ascii")).hexdigest()


class AuditCheck:
    """What :func:`verify_chain` found: ``problems`` (one line each; empty when the chain is whole)."""

    def __init__(self, rows: int, head_seq: int, head_hash: str, problems: list[str], bad_ids: list[str]) -> None:
        self.rows, self.head_seq, self.head_hash = rows, head_seq, head_hash
        self.problems, self.bad_ids = problems, bad_ids

    @property
    def whole(self) -> bool:
        return not self.problems


def verify_chain(rows: list[dict[str, Any]]) -> AuditCheck:
    """Walk the audit rows in chain order and say which were changed or removed.

    * a row whose ``row_hash`` is not ``chain_hash(previous row's row_hash, row)``: changed (or the row
      before it was changed and re-hashed);
    * a gap in the positions (``seq``), or a first position other than 1: rows removed;
    * a row with no position or hash: added or altered outside the project.

    Removing the newest rows leaves a whole, shorter chain: compare ``head_seq``/``head_hash`` with a
    head recorded elsewhere (docs/privacy.md).
    """
    problems: list[str] = []
    bad: list[str] = []
    prev_seq, prev_hash = 0, GENESIS
    for r in rows:
        seq, stored = r.get("seq"), r.get("row_hash")
        if seq is None or not stored:
            problems.append(f"row with audit id {r['audit_id']} has no position or hash in the chain (added outside)")
            bad.append(str(r["audit_id"]))
            continue
        seq = int(seq)
        if seq != prev_seq + 1:
            gone = f"{prev_seq + 1}" if seq == prev_seq + 2 else f"{prev_seq + 1}-{seq - 1}"
            problems.append(f"row(s) at position {gone} removed (the chain jumps from {prev_seq} to {seq})")
        elif chain_hash(prev_hash, r) != stored:
            problems.append(
                f"row at position {seq} (audit id {r['audit_id']}) changed: its hash does not match its fields "
                "and the row before it"
            )
            bad.append(str(r["audit_id"]))
        prev_seq, prev_hash = seq, str(stored)
    return AuditCheck(len(rows), prev_seq, prev_hash, problems, bad)


def volatility(url: str) -> str | None:
    """Why a ledger at ``url`` would not outlive this process or the machine's clean-up, or None.

    Volatile: SQLite in memory (``:memory:``, ``mode=memory``, no path), a SQLite file under the
    system's temporary folder (``tempfile.gettempdir()``, i.e. ``TMPDIR`` or ``/tmp``) or on a RAM
    disk (``/dev/shm``, ``/run/shm``, ``/run/user``). Any other database (PostgreSQL) is durable.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise XforceError("XFORCE_LEDGER_URL is not a database URL (e.g. postgresql://host/db)") from None
    if not parsed.drivername.startswith("sqlite"):
        return None
    database = (parsed.database or "").strip()
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return "an in-memory SQLite database"
    if str(parsed.query.get("mode", "")) == "memory" or "mode=memory" in database:
        return "an in-memory SQLite database (mode=memory)"
    path = os.path.realpath(database.removeprefix("file:").split("?", 1)[0])
    temp = os.path.realpath(tempfile.gettempdir())
    if path == temp or path.startswith(temp.rstrip(os.sep) + os.sep):
        return f"a SQLite file in the temporary folder {temp}"
    for ram in _RAM_DIRS:
        if path == ram or path.startswith(ram + os.sep):
            return f"a SQLite file on a RAM disk ({ram})"
    return None


#: Folders that are RAM file systems on Linux (emptied at every boot).
_RAM_DIRS = ("/dev/shm", "/run/shm", "/run/user")


_OPEN_LOCK = threading.Lock()
_OPEN: dict[tuple[str, str], Ledger] = {}


def open_ledger(url: str, sql_dir: str) -> Ledger:
    """This process's ledger at ``url``: one engine per URL, its schema migrated once.

    A SQLite file that has disappeared since (a test's data folder removed, ``make clean``) is
    opened and migrated afresh.
    """
    path = url.split(":///", 1)[-1] if url.startswith("sqlite") else ""
    with _OPEN_LOCK:
        ledger = _OPEN.get((url, sql_dir))
        if ledger is None or (path and path != ":memory:" and not os.path.exists(path)):
            if ledger is not None:
                ledger.engine.dispose()
            ledger = _OPEN[(url, sql_dir)] = Ledger(url, sql_dir)
        return ledger


def _dispose_after_fork() -> None:
    """A forked child (Celery, LocalExecutor) must not reuse its parent's pooled connections."""
    for ledger in _OPEN.values():
        ledger.engine.dispose(close=False)


os.register_at_fork(after_in_child=_dispose_after_fork)


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for name in _JSON_COLUMNS:
        if row.get(name):
            row[name] = json.loads(row[name])
    return row
