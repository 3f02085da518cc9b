"""A force that delivers through its database instead of files.

A force's entry in ``config/forces.yaml`` may name, per dataset, a SQL source::

    norfolk:
      name: Norfolk Constabulary
      family: shared_csv
      source:
        anpr_reads: {conn_id: norfolk_anpr_db, query: norfolk_anpr_reads.sql}

``conn_id`` is an Airflow Connection (``postgres`` or ``sqlite``; extra ``sqlalchemy_driver``
overrides the driver), ``query`` a file in ``sql/extract/``. The query is run with the night's
window as bind parameters ``:window_start`` and ``:window_end`` (UTC, half-open: the local night
``D 00:00`` to ``D+1 00:00`` in the registry's time zone, so consecutive nights neither overlap
nor leave a gap: pull incrementally on the time a row reached the force's system, not on the
event time, or records with impossible timestamps would never arrive) and ``:night``
(``YYYY-MM-DD``). It must return the columns the force's file contract names, in a stable order
(``ORDER BY``).

The rows are written in the contract's own file format (delimiter, encoding, time format, JSON
nesting by dotted column names, gzip) and put into the raw zone like any landed file, so reading,
validation and publishing are unchanged. The same rows give the same bytes: a re-pull of an
unchanged night is an identical re-delivery. A query that returns no rows is a missing extract.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from xforce.errors import ConfigError
from xforce.intake.contracts import read_yaml
from xforce.schemas import DATASETS
from xforce.store.zones import Zone, safe_relpath

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from xforce.intake.contracts import DatasetContract, Registry

#: SQLAlchemy driver per Airflow connection type.
DRIVERS = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg", "sqlite": "sqlite"}
FETCH_ROWS = 10_000


@dataclass(frozen=True)
class SqlSource:
    force: str
    dataset: str
    conn_id: str
    query: str  # file name in sql/extract/

    @property
    def label(self) -> str:
        return f"sql:{self.conn_id}/{self.query}"


@functools.lru_cache(maxsize=8)
def load_sources(config_dir: str, sql_dir: str) -> dict[tuple[str, str], SqlSource]:
    """Every ``source:`` block of ``forces.yaml``, checked (force, dataset, Connection id, query file)."""
    path = Path(config_dir) / "forces.yaml"
    doc = read_yaml(path, "force registry")
    out: dict[tuple[str, str], SqlSource] = {}
    for force, entry in (doc.get("forces") or {}).items():
        for dataset, spec in ((entry or {}).get("source") or {}).items():
            where = f"{path.name}: forces.{force}.source.{dataset}"
            if dataset not in DATASETS:
                raise ConfigError(f"{where}: unknown dataset (known: {', '.join(DATASETS)})")
            if not isinstance(spec, dict) or not spec.get("conn_id") or not spec.get("query"):
                raise ConfigError(f"{where}: needs conn_id (an Airflow Connection) and query (a file in sql/extract/)")
            query = safe_relpath(str(spec["query"]))
            if not (Path(sql_dir) / "extract" / query).is_file():
                raise ConfigError(f"{where}: no query file sql/extract/{query}")
            out[(str(force), str(dataset))] = SqlSource(str(force), str(dataset), str(spec["conn_id"]), query)
    return out


def source_for(config_dir: str, sql_dir: str, force: str, dataset: str) -> SqlSource | None:
    return load_sources(config_dir, sql_dir).get((force, dataset))


def pull_window(registry: Registry, night: str) -> tuple[datetime, datetime]:
    """The night as a half-open UTC window ``[D 00:00, D+1 00:00)`` local time."""
    d = date.fromisoformat(night)
    tz = ZoneInfo(registry.timezone)
    start = datetime.combine(d, time(0), tz).astimezone(ZoneInfo("UTC"))
    end = datetime.combine(d + timedelta(days=1), time(0), tz).astimezone(ZoneInfo("UTC"))
    return start, end


def engine_url(conn: dict[str, Any]) -> Any:
    """A SQLAlchemy URL from an Airflow Connection's fields."""
    import sqlalchemy as sa

    extra = conn.get("extra") or {}
    conn_type = str(conn.get("conn_type") or "")
    driver = extra.get("sqlalchemy_driver") or DRIVERS.get(conn_type)
    if not driver:
        raise ConfigError(f"SQL source Connection type {conn_type!r} is not supported (known: {', '.join(DRIVERS)})")
    if driver.startswith("sqlite"):
        return sa.engine.URL.create(driver, database=conn.get("host") or conn.get("schema"))
    return sa.engine.URL.create(
        driver,
        username=conn.get("login") or None,
        password=conn.get("password") or None,
        host=conn.get("host") or None,
        port=int(conn["port"]) if conn.get("port") else None,
        database=conn.get("schema") or None,
    )


# ------------------------------------------------------------------------------ serialising
def format_value(value: Any, contract: DatasetContract) -> Any:
    """A database value as the force's file would carry it (times in the contract's format)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo("UTC"))  # a naive database time is taken as UTC
        if contract.timestamp_format == "epoch_ms":
            return round(value.timestamp() * 1000)
        return value.astimezone(ZoneInfo(contract.timezone)).strftime(contract.timestamp_format)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def check_columns(columns: Sequence[str], contract: DatasetContract, label: str) -> None:
    """The query must return every source column the contract maps (optional ones may be absent)."""
    needed = {col for name, col in contract.fields.items() if name not in contract.optional}
    missing = sorted(needed - set(columns))
    if missing:
        raise ConfigError(f"{label}: the query returns no column(s) {missing} that contract {contract.family} needs")


def write_rows(
    out: io.BufferedIOBase, columns: Sequence[str], rows: Iterable[Sequence[Any]], contract: DatasetContract
) -> int:
    """Write rows in the contract's file format; returns the number of records written."""
    n = 0
    raw: Any = gzip.GzipFile(fileobj=out, mode="wb", mtime=0) if contract.compression == "gzip" else out
    text = io.TextIOWrapper(raw, encoding=contract.encoding, newline="", write_through=True)
    try:
        if contract.format == "csv":
            writer = csv.writer(text, delimiter=contract.delimiter, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow(["" if v is None else format_value(v, contract) for v in row])
                n += 1
        elif contract.format == "jsonl":
            for row in rows:
                doc: dict[str, Any] = {}
                for col, v in zip(columns, row, strict=True):
                    _put(doc, col.split("."), format_value(v, contract))
                text.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
                n += 1
        else:
            raise ConfigError(f"contract {contract.family}/{contract.dataset}: cannot write format {contract.format!r}")
        text.flush()
    finally:
        text.detach()
        if raw is not out:
            raw.close()
    return n


def _put(doc: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        doc = doc.setdefault(key, {})
    doc[path[-1]] = value


def file_name(contract: DatasetContract) -> str:
    if contract.file:
        return contract.file
    ext = {"csv": "csv", "jsonl": "jsonl"}.get(contract.format, contract.format)
    return f"{contract.dataset}.{ext}" + (".gz" if contract.compression == "gzip" else "")


# ------------------------------------------------------------------------------------ pulling
def pull(
    source: SqlSource, registry: Registry, sql_dir: str, night: str, raw: Zone, folder: str
) -> dict[str, Any] | None:
    """Run the source's query for the night and put the result into ``raw/<folder>/<sha256>/<file>``.

    Returns the file entry the ledger keeps (``name``, ``sha256``, ``bytes``, ``raw``), or None when
    the query returned no rows. An unchanged night gives the same bytes and adds nothing to raw.
    """
    import sqlalchemy as sa

    from xforce.store.connections import connection_fields

    contract = registry.contract(source.force, source.dataset)
    query = (Path(sql_dir) / "extract" / source.query).read_text(encoding="utf-8")
    start, end = pull_window(registry, night)
    name = file_name(contract)
    engine = sa.create_engine(engine_url(connection_fields(source.conn_id)))
    tmpdir = tempfile.mkdtemp(prefix=".xforce-sql-")
    try:
        tmp = os.path.join(tmpdir, name)
        with engine.connect() as conn, open(tmp, "wb") as out:
            result = conn.execution_options(stream_results=True).execute(
                sa.text(query), {"window_start": start, "window_end": end, "night": night}
            )
            columns = list(result.keys())
            check_columns(columns, contract, source.label)
            n = write_rows(out, columns, _batches(result), contract)  # type: ignore[arg-type]
        if n == 0:
            return None
        digest = hashlib.sha256()
        with open(tmp, "rb") as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
        sha = digest.hexdigest()
        raw_rel = safe_relpath(folder, sha, name)
        if not raw.exists(raw_rel):
            raw.copy_from(Zone(tmpdir), name, raw_rel, metadata={"sha256": sha, "source": source.label})
        return {"name": name, "sha256": sha, "bytes": os.path.getsize(tmp), "raw": raw_rel}
    finally:
        engine.dispose()
        shutil.rmtree(tmpdir, ignore_errors=True)


def _batches(result: Any) -> Iterable[Sequence[Any]]:
    while rows := result.fetchmany(FETCH_ROWS):
        yield from rows
