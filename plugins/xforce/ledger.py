"""The run ledger (SQLAlchemy; SQLite by default, PostgreSQL by URL). DDL lives in ``sql/ledger.sql``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

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
    def __init__(self, url: str, sql_dir: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 60}
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, **kwargs)
        self._ddl = (Path(sql_dir) / "ledger.sql").read_text(encoding="utf-8")
        self.ensure_schema()

    def ensure_schema(self) -> None:
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


def _strip_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for name in _JSON_COLUMNS:
        if row.get(name):
            row[name] = json.loads(row[name])
    return row
