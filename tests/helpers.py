"""Shared test helpers: run a night without Airflow, and compare outputs with the generator's truth."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from xforce import context
from xforce.exchange import land, process, publish
from xforce.schemas import DATASETS
from xforce.store import layout

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    import pytest


def run_night_plain(ctx: context.Context, night: str) -> str:
    """The DAG's steps in the DAG's order, called directly (for unit tiers)."""
    run_id = f"test__{uuid.uuid4().hex[:8]}"
    land.scan_landing(ctx, night, run_id)
    items = land.plan_night(ctx, night)
    for wave in (("incidents", "anpr_reads"), ("seizures",)):
        for item in items:
            if item["dataset"] in wave:
                ref = land.land_extract(ctx, night, item["force"], item["dataset"], run_id)
                process.process_extract(ctx, ref, run_id)
    publish.publish_night(ctx, night, run_id)
    return run_id


def outputs(ctx: context.Context, dataset: str, night: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per force: published source ids (Counter) and quarantined source_id -> [reasons]."""
    published: dict[str, Counter[str]] = defaultdict(Counter)
    quarantined: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for force in ctx.registry.forces:
        part = layout.part_file(dataset, night, force)
        if ctx.zones.curated.exists(part):
            t = ctx.zones.curated.read_parquet(part)
            published[force].update(t.column("source_id").to_pylist())
        if ctx.zones.quarantine.exists(part):
            t = ctx.zones.quarantine.read_parquet(part)
            for sid, reason in zip(t.column("source_id").to_pylist(), t.column("reason").to_pylist(), strict=True):
                quarantined[force][sid].append(reason)
    return published, quarantined


def check_against_truth(
    ctx: context.Context, night: str, truth: dict[str, Any], skip: set[tuple[str, str]] = frozenset()
) -> None:  # type: ignore[assignment]
    """Every defect quarantined with its reason; every clean record published exactly once."""
    for dataset in DATASETS:
        published, quarantined = outputs(ctx, dataset, night)
        for force, per in truth.items():
            if force.startswith("_") or dataset not in per or (force, dataset) in skip:  # "_planted" etc.
                continue
            t = per[dataset]
            defective = t["defective"]
            pub, quar = published[force], quarantined[force]
            n_pub, n_quar = sum(pub.values()), sum(len(v) for v in quar.values())
            assert n_pub + n_quar == t["records"], (force, dataset, n_pub, n_quar, t["records"])
            for sid, kind in defective.items():
                if kind == "duplicate_id":
                    assert pub[sid] == 1, (force, dataset, sid, "first copy must publish once")
                    assert quar[sid] and set(quar[sid]) == {"duplicate_id"}, (force, dataset, sid, quar[sid])
                else:
                    assert pub[sid] == 0, (force, dataset, sid, kind, "defective record published")
                    assert quar[sid] == [kind], (force, dataset, sid, kind, quar[sid])
            extra = {sid: r for sid, r in quar.items() if sid not in defective}
            assert not extra, (force, dataset, "clean records quarantined", dict(list(extra.items())[:5]))
            multi = [sid for sid, c in pub.items() if c > 1]
            assert not multi, (force, dataset, "published more than once", multi[:5])
            ledger = ctx.ledger.get(night, force, dataset)
            assert ledger is not None and ledger["status"] == "published", (force, dataset, ledger)
            assert ledger["rows_in"] == t["records"]
            assert ledger["rows_published"] == n_pub and ledger["rows_quarantined"] == n_quar


def null_count(table: Any, column: str) -> int:
    return int(pc.sum(pc.is_null(table.column(column))).as_py() or 0)


@contextlib.contextmanager
def s3_in_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on loopback in this process, the standard AWS settings pointed at it.

    Yields its endpoint; skips (or fails under CI's flag) when moto is not installed.
    """
    from conftest import need_service

    try:
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover - moto is a dev dependency
        need_service(False, "moto is not installed (dev extra)")
        raise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for k, v in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-2",
            "AWS_REGION": "eu-west-2",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        yield endpoint
    finally:
        server.stop()


def kill_run_once_landed(argv: list[str], env: dict[str, str], ledger: Path, night: str) -> tuple[str, int]:
    """Start an in-process ``xforce run`` (``argv``) and kill -9 it once the first extract of ``night``
    is in the ledger (inside the DAG, its lease held); ``(run id holding the night, pid)``."""

    def landed() -> bool:
        try:
            with sqlite3.connect(ledger) as con:
                return bool(con.execute("SELECT count(*) FROM xforce_extracts WHERE night = ?", (night,)).fetchone()[0])
        except sqlite3.Error:  # not created yet
            return False

    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not landed() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    with sqlite3.connect(ledger) as con:
        (run_id,) = con.execute("SELECT run_id FROM xforce_leases WHERE night = ?", (night,)).fetchone()
    return str(run_id), proc.pid


def landing_plates(landing: Path) -> set[str]:
    """Every plate in the generated landing files (the contract's plate columns: ``vrm``, ``vehicle_reg``)."""
    plates: set[str] = set()
    for path in landing.rglob("*.csv"):
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            for row in csv.DictReader(f):
                for column in ("vrm", "vehicle_reg"):
                    value = (row.get(column) or "").strip()
                    if len(value) >= 5:  # a plate, not an empty or truncated defect
                        plates.add(value)
    return plates


@contextlib.contextmanager
def context_of(env: dict[str, str]) -> Iterator[context.Context]:
    """The exchange's context for another process's settings (its ``XFORCE_*`` variables), this
    process's environment restored after."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("XFORCE_")}
    for k in saved:
        del os.environ[k]
    os.environ.update({k: v for k, v in env.items() if k.startswith("XFORCE_")})
    try:
        yield context.Context.from_env()
    finally:
        for k in [k for k in os.environ if k.startswith("XFORCE_")]:
            del os.environ[k]
        os.environ.update(saved)
