"""The run ledger (SQLAlchemy; SQLite by default, PostgreSQL by URL): the record of what happened.

Every SQL statement on the ledger's tables lives in this module; callers use its query methods.
The DDL lives in ``sql/ledger.sql`` and is applied by :meth:`Ledger.migrate` (idempotent).
:func:`open_ledger` gives each process one engine per URL, migrated once.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from xforce.errors import NightBusyError

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


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        """Create the ledger's tables and indexes where missing (``sql/ledger.sql``; idempotent)."""
        statements = [s.strip() for s in _strip_comments(self._ddl).split(";") if s.strip()]
        with self.engine.begin() as conn:
            for stmt in statements:
                conn.execute(sa.text(stmt))

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

    def alert_counts(self, first: str, last: str) -> dict[str, int]:
        """Missing-extract alerts per force over the nights ``first``..``last`` (inclusive)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT force, count(*) FROM xforce_events WHERE event = 'alert' "
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
        """Append one audit row (``xforce_reidentifications``); returns its id."""
        audit_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO xforce_reidentifications "
                    "(audit_id, at, requested_by, os_user, purpose, token, key_version, outcome) "
                    "VALUES (:id, :at, :requested_by, :os_user, :purpose, :token, :key_version, :outcome)"
                ),
                {
                    "id": audit_id,
                    "at": datetime.now(UTC).isoformat(timespec="microseconds"),
                    "requested_by": requested_by,
                    "os_user": os_user,
                    "purpose": purpose,
                    "token": token,
                    "key_version": key_version,
                    "outcome": outcome,
                },
            )
        return audit_id

    def reidentifications(self, token: str | None = None) -> list[dict[str, Any]]:
        """The audit rows, oldest first (optionally for one token)."""
        sql = "SELECT * FROM xforce_reidentifications" + (" WHERE token = :t" if token else "")
        sql += " ORDER BY at, audit_id"
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.text(sql), {"t": token} if token else {}).mappings()]


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
