"""``xforce``: the same code paths the DAG uses, from the command line.

Examples (every subcommand has its own ``--help`` with more):

  xforce generate --date 2026-11-27 --out data/landing   # sample extracts for all seven forces
  xforce run --date 2026-11-27                           # the nightly DAG for that night, through Airflow
  xforce status --date 2026-11-27                        # never ran / running / how each extract ended
  xforce ingest --force kent --dataset incidents --file kent.csv --date 2019-01-15
  xforce backfill --from 2026-11-20 --to 2026-11-26 [--reports]
  xforce report --date 2026-11-27                        # the cross-force reports of a night
  xforce reidentify --token T --purpose "..." --requested-by NAME   # audited; see docs/privacy.md
  xforce audit [--verify] | retention [--dry-run] | policies --out DIR | rotate-key
  xforce doctor                                          # local folders holding plates, key file: permissions
  xforce up | down                                       # Airflow's UI and scheduler here, in the background

Quiet by default: Airflow's and Great Expectations' logs go to a log file (its path is printed);
-v/--verbose shows them and any traceback, -q/--quiet prints only the outcome, --json (run,
ingest, status, backfill) prints a machine-readable result. Exit codes: 0 done, 1 the work failed
(a failed extract, a night already running, an unreachable database or S3), 2 the command was
asked wrongly (unknown force or dataset, bad date, missing file or key), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time as clock
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from xforce.cli_console import (
    FAILED,
    FINAL,
    INTERRUPTED,
    OK,
    USAGE,
    CliError,
    Out,
    Poller,
    Progress,
    Rate,
    capture,
    explain,
    night_summary,
    summary_line,
    verdict,
)
from xforce.errors import NightBusyError
from xforce.schemas import DATASETS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from xforce.context import Context
    from xforce.settings import Settings

#: Seconds a run on the deployment may stay queued before `xforce run` says what it waits behind.
QUEUED_NOTICE = 30.0
#: An extract of a night is done with once it reaches one of these (``validated`` waits only for publish).
DONE = (*FINAL, "validated")


def _night(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD, e.g. 2026-11-27): {value!r}") from None


def ensure_dev_key(data_dir: str) -> None:
    """Without a configured key, make a local development key (0600) outside the repository.

    It lives where every process looks last (``<data dir>/secrets/hmac.key``, :func:`xforce.settings.hmac_key`)
    and is named in ``XFORCE_HMAC_KEY_FILE`` for the Airflow processes this one configures. A configured
    key (``XFORCE_HMAC_KEY``, ``XFORCE_HMAC_KEY_FILE``, ``AIRFLOW_CONN_XFORCE_HMAC_KEY``) is left alone: a
    named file that is missing is reported, never replaced by a new key."""
    if any(os.environ.get(v, "").strip() for v in ("XFORCE_HMAC_KEY", "XFORCE_HMAC_KEY_FILE")) or os.environ.get(
        "AIRFLOW_CONN_XFORCE_HMAC_KEY"
    ):
        return
    from xforce.settings import default_key_file

    path = Path(default_key_file(data_dir))
    if not path.exists():
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)  # a new folder 0700, the file 0600, whatever the umask
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(32))
        print(f"xforce: no XFORCE_HMAC_KEY set; created a development key in {path}", file=sys.stderr)
    os.environ["XFORCE_HMAC_KEY_FILE"] = str(path)


def _log_path(settings: Settings, command: str, what: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(settings.data_dir) / "logs" / f"xforce-{command}-{what}-{stamp}.log"


def _context(out: Out) -> Context:
    """The settings, registry and ledger (reached now, so that an unreachable database is said up front)."""
    from xforce import context

    return context.Context.from_env()


def _check_key(settings: Settings) -> None:
    """The plate key, before any work: a missing or short one, or another key under a version the ledger
    knows (``KeyMismatchError``), is a usage error, said once."""
    from xforce.privacy.tokens import claim_key_version
    from xforce.settings import hmac_key
    from xforce.store.ledger import open_ledger

    ensure_dev_key(settings.data_dir)
    claim_key_version(open_ledger(settings.ledger_url, settings.sql_dir), *hmac_key())


def _live_lease(ctx: Context, night: str) -> dict[str, Any] | None:
    """The night's lease when another run holds it now (``xforce.store.ledger.Ledger.lease``)."""
    from xforce.store.ledger import utcnow

    lease = getattr(ctx.ledger, "lease", None)
    row = lease(night) if lease is not None else None
    return row if row and str(row.get("expires_at") or "") >= utcnow() else None


def _refuse_if_running(ctx: Context, night: str) -> None:
    row = _live_lease(ctx, night)
    if row:
        raise NightBusyError(
            f"night {night} is being run by {row.get('run_id')} ({row.get('holder')}, lease until "
            f"{row.get('expires_at')} UTC): wait for it to finish, or after a crash for its lease to expire"
        )


def cmd_generate(args: argparse.Namespace, out: Out) -> int:
    try:  # a developer tool (tools/xforce_tools), not part of the runtime image
        from xforce_tools.generate import generate_night
    except ImportError as exc:
        raise CliError(
            f"the extract generator is a developer tool: install the project with `make install` ({exc})", USAGE
        ) from None
    from xforce.intake.contracts import load_registry
    from xforce.settings import Settings

    registry = load_registry(Settings.from_env().config_dir)
    for force in args.forces or ():
        registry.force(force)  # an unknown force: one line, exit 2
    truth = generate_night(
        date.fromisoformat(args.date),
        args.out,
        anpr_reads=args.anpr_reads,
        seed=args.seed,
        forces=args.forces,
        datasets=args.datasets,
        incidents=args.incidents,
        seizures=args.seizures,
        defect_rate=args.defect_rate,
        plant_crossing_vehicle=args.plant_crossing_vehicle,
    )
    total = sum(d["records"] for k, f in truth.items() if not k.startswith("_") for d in f.values())
    out.summary(f"wrote {total} records for {args.date} under {args.out}")
    return OK


def _configure_airflow(settings: Settings) -> dict[str, str]:
    """This process's environment set for Airflow on the project's settings; that environment."""
    from xforce.airflow.env import airflow_env

    env = airflow_env(settings)
    os.environ.update(env)
    return env


def prepare_airflow(ctx: Context | None = None, out: Out | None = None) -> Settings:
    """Configure this process for Airflow on the project's settings and migrate its metadata DB;
    with ``ctx``, mark failed the in-process runs whose process is gone (said on ``out``)."""
    from xforce.settings import Settings

    settings = Settings.from_env()
    ensure_dev_key(settings.data_dir)
    env = _configure_airflow(settings)
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    # The migration runs in its own process, and Great Expectations is imported in its worker
    # process (xforce.quality.gxworker), while this one imports Airflow's DagBag: on two cores the fixed
    # costs overlap instead of adding up.
    home = Path(env.get("AIRFLOW_HOME") or settings.data_dir)
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".xforce-migrate.lock", "a") as lock:  # two commands at once on one home: one migrates
        fcntl.flock(lock, fcntl.LOCK_EX)
        migrate = subprocess.Popen([airflow, "db", "migrate"], env=env, stdout=subprocess.DEVNULL)
        try:
            from xforce.quality import gxworker

            gxworker.start()
            from airflow.dag_processing.dagbag import DagBag  # noqa: F401
        except BaseException:
            migrate.wait()
            raise
        migrated = migrate.wait()
    if migrated != 0:
        raise CliError(
            f"Airflow's metadata database could not be migrated (`airflow db migrate` exit {migrate.returncode}): "
            "check AIRFLOW__DATABASE__SQL_ALCHEMY_CONN and that the database is up"
        )
    from xforce.airflow.pools import ensure_pools
    from xforce.intake.contracts import load_registry

    ensure_pools(load_registry(settings.config_dir))  # before any run: a scheduler queues nothing without it
    if ctx is not None:
        _fail_dead_runs(ctx, out)
    return settings


def _fail_dead_runs(ctx: Context, out: Out | None) -> None:
    """Mark failed the DAG runs whose in-process ``xforce run`` was killed (:mod:`xforce.airflow.orphans`):
    left ``running``, a scheduler would adopt them, and their night's lease would refuse the next run."""
    from xforce.airflow.orphans import fail_dead_runs

    _configure_airflow(ctx.settings)
    for gone in fail_dead_runs(ctx.ledger):
        if out is not None:
            out.stage(
                f"xforce: marked failed {gone['dag_id']} run {gone['run_id']} (night {gone['night']}): "
                f"its `xforce run` process (pid {gone['pid']}) ended without finishing it"
            )


@dataclass(frozen=True)
class NightRun:
    """One ``dag.test()`` run of ``xforce_nightly``, planned before Airflow starts so that its run id
    is known: the CLI takes the night's lease under that id first (a second run is refused at once,
    before any Airflow work), and the run's tasks renew it."""

    night: str
    logical_date: datetime
    run_after: datetime
    named: str | None = None  # a run created through a deployment's API carries the id given to it

    @classmethod
    def plan(cls, night: str) -> NightRun:
        """The night's run: its logical date on the night (02:30 local, as a scheduled run's), plus a
        fresh microsecond so that a re-run is a new DAG run; run after the night's 02:30 (now, when
        that is still to come), so that the grid reads in night order."""
        tz = ZoneInfo("Europe/London")
        at = datetime.combine(date.fromisoformat(night), time(2, 30), tz).astimezone(UTC)
        fresh = timedelta(microseconds=uuid.uuid4().int % 1_000_000)
        return cls(night, at + fresh, min(at + timedelta(days=1) + fresh, datetime.now(UTC)))

    @property
    def run_id(self) -> str:
        """The id given to the run, else the one Airflow gives a manual run with this ``run_after``
        (``DagRun.generate_run_id``)."""
        return self.named or f"manual__{self.run_after.isoformat()}"


def run_dag_test(night: str, run: NightRun | None = None) -> tuple[str, str]:
    """Run ``xforce_nightly`` for a night in this process with ``dag.test()`` (Airflow configured by
    env); ``(state, run_id)`` of the DAG run."""
    from airflow.dag_processing.dagbag import DagBag

    from xforce.airflow.deploy import process_identity
    from xforce.airflow.orphans import DRIVER_KEY

    run = run or NightRun.plan(night)
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise CliError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag("xforce_nightly")
    if dag is None:
        raise CliError("DAG xforce_nightly not found")
    started = datetime.now(UTC)
    # The driver recorded: should this process die mid-run, the run is marked failed, not adopted
    # half-done by a scheduler (xforce.airflow.orphans).
    conf = {"night": night, DRIVER_KEY: process_identity()}
    dr = dag.test(logical_date=run.logical_date, run_after=run.run_after, run_conf=conf)
    _real_start(dag.dag_id, str(getattr(dr, "run_id", "")), started)
    return str(getattr(dr, "state", "unknown")), str(getattr(dr, "run_id", ""))


def _real_start(dag_id: str, run_id: str, started: datetime) -> None:
    """``dag.test()`` dates a run's start at its logical date (the night); the UI shows the real one."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        session.execute(
            sa.update(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id).values(start_date=started)
        )


def _extracts_done(ctx: Context, night: str, bar: Progress) -> Callable[[], None]:
    """Draws the extracts of ``night`` finished since now, of all, on ``bar`` (from the ledger)."""
    from xforce.store.ledger import utcnow

    total = len(ctx.registry.forces) * len(DATASETS)
    since = utcnow()

    def tick() -> None:
        rows = ctx.ledger.extracts(night)
        done = sum(r["status"] in DONE and str(r.get("updated_at") or "") >= since for r in rows)
        bar.update(night, f"xforce_nightly {night}", done, total)

    return tick


def _run_night(ctx: Context, run: NightRun, out: Out) -> tuple[str, float]:
    """``run_dag_test`` with the extracts done of total drawn on a terminal; ``(state, seconds)``.

    The caller holds the night for ``run.run_id`` (:func:`_hold`). A run that found the night held
    by another all the same (its lease lost inside the DAG) raises :class:`NightBusyError` with the
    holder."""
    from xforce.airflow.task_logs import split_run_log

    night = run.night
    bar = Progress(out)
    tick = _extracts_done(ctx, night, bar)
    start = clock.monotonic()
    try:
        if bar.active:
            tick()
        logs = None if out.verbose else out.log  # captured output, split into each task's log file
        with Poller(tick) if bar.active else contextlib.nullcontext(), split_run_log(logs):
            state, run_id = run_dag_test(night, run)
    finally:
        bar.close()
    if run_id != run.run_id:
        raise CliError(f"Airflow named the run {run_id}, not {run.run_id} as planned: the night's lease is not its own")
    refused = [e for e in ctx.ledger.events(night) if e["event"] == "night_busy" and e["run_id"] == run_id]
    if state != "success" and refused:
        raise NightBusyError(f"{json.loads(refused[-1]['detail'])}; this run ({run_id}) processed nothing")
    return state, clock.monotonic() - start


@contextlib.contextmanager
def _hold(ctx: Context, run: NightRun, out: Out | None = None) -> Iterator[None]:
    """The night held for ``run`` while the block runs (a second run is refused with
    :class:`NightBusyError` at once); released at the end, when the run is over whatever its state.

    A night held by an in-process run whose process is gone on this host (a killed ``xforce run``)
    is taken back at once: that run is marked failed (:func:`_fail_dead_runs`), not waited out."""
    from xforce.exchange.lease import hold_night, lease_seconds

    try:
        ctx.ledger.acquire_lease(run.night, run.run_id, lease_seconds())
    except NightBusyError:
        if _holder_gone(ctx, run.night):
            _fail_dead_runs(ctx, out)
        hold_night(ctx, run.night, run.run_id)  # taken, or refused and recorded as `night_busy`
    try:
        yield
    finally:
        ctx.ledger.release_lease(run.night, run.run_id)


def _holder_gone(ctx: Context, night: str) -> bool:
    """Whether the night's lease names a process of this host that no longer runs."""
    from xforce.airflow.deploy import process_alive

    lease = ctx.ledger.lease(night) or {}
    host, _, pid = str(lease.get("holder") or "").rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid), None)


def _file_uri(uri: str) -> str:
    return f"file://{uri}" if uri.startswith("/") else uri


def _ui_address(ctx: Context) -> str | None:
    """The Airflow UI's address: the deployment's ``xforce up`` runs for these settings, or one that
    answers at ``AIRFLOW__API__BASE_URL`` (default port 8080); else None."""
    from xforce.airflow.deploy import home_of, status

    now = status(home_of(ctx.settings))
    if now.up and now.port:
        return f"http://127.0.0.1:{now.port}"
    base = (os.environ.get("AIRFLOW__API__BASE_URL") or "http://127.0.0.1:8080").rstrip("/")
    parts = urlsplit(base)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=0.3):
            return base
    except OSError:
        return None


def next_steps(ctx: Context, night: str) -> dict[str, str]:
    """Where to look after a run: the Data Docs page, the report page, the UI, the status."""
    from xforce.reports import queries as reports
    from xforce.store import layout
    from xforce.store.connections import open_zone

    steps: dict[str, str] = {}
    page = layout.validation_page(night)
    with contextlib.suppress(Exception):
        if ctx.zones.docs.exists(page):
            steps["Data Docs"] = _file_uri(ctx.zones.docs.uri_of(page))
    steps.setdefault("Data Docs", f"none for {night} yet")
    report = f"`xforce report --date {night}` builds it"
    with contextlib.suppress(Exception):
        zone = open_zone(reports.reports_uri(ctx.settings))
        if zone.exists(layout.report_page(night)):
            report = _file_uri(zone.uri_of(layout.report_page(night)))
    steps["report"] = report
    ui = _ui_address(ctx)
    steps["the UI"] = (
        f"{ui}/dags/xforce_nightly" if ui else "none running here (`make up` starts one: docs/operator-guide.md)"
    )
    steps["status"] = f"xforce status --date {night}"
    return steps


def _print_next(out: Out, steps: dict[str, str]) -> None:
    out.stage("next:")
    for name, where in steps.items():
        out.stage(f"  {name:10} {where}")


def _night_result(ctx: Context, night: str, state: str) -> tuple[int, list[str], dict[str, Any]]:
    from xforce.exchange import publish

    rows = publish.night_table(ctx, night)
    summary = night_summary(rows)
    code, lines = verdict(summary, state, night, ctx.settings.landing)
    doc: dict[str, Any] = {"night": night, "state": state, "exit_code": code, **summary, "problems": lines}
    doc["table"] = rows
    return code, lines, doc


def _deployment(ctx: Context) -> Any:
    """The local deployment's API client when ``xforce up`` runs one for these settings, else None."""
    from xforce.airflow.deploy import Client, home_of

    return Client.of(home_of(ctx.settings))


def _run_on_deployment(ctx: Context, client: Any, night: str, out: Out) -> tuple[str, float, str]:
    """Trigger the night on the running deployment (its scheduler and executor) and wait for it;
    ``(state, seconds, run id)``. The run is named after its night (``night__<night>__<time>``: the
    scheduler's own run of a night is ``night__<night>``) and dated on it, so the grid reads in order."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run = dataclasses.replace(NightRun.plan(night), named=f"night__{night}__{stamp}")
    bar = Progress(out)
    tick = _extracts_done(ctx, night, bar)

    with _hold(ctx, run, out):  # a second run of the night is refused at once; the DAG's tasks renew it
        out.stage(f"xforce run {night}: on the deployment at {client.url}, run {run.run_id}")
        start = clock.monotonic()
        client.trigger("xforce_nightly", run.run_id, run.logical_date.isoformat(), {"night": night})
        told = False

        def watch(state: str) -> None:  # the bar; and why the run waits, when it waits behind another
            nonlocal told
            if bar.active:
                tick()
            if state == "queued" and not told and clock.monotonic() - start > QUEUED_NOTICE:
                told = True
                ahead = [r for r in client.running("xforce_nightly") if r != run.run_id]
                out.stage(
                    f"xforce run {night}: queued behind {', '.join(ahead) or 'another run'} "
                    "(xforce_nightly runs one night at a time); waiting for it"
                )

        try:
            state = client.wait("xforce_nightly", run.run_id, timeout=6 * 3600, poll=watch)
        finally:
            bar.close()
    return state, clock.monotonic() - start, run.run_id


def cmd_run(args: argparse.Namespace, out: Out) -> int:
    from xforce.exchange import publish

    ctx = _context(out)
    _check_key(ctx.settings)
    client = _deployment(ctx)
    if client is not None:  # `make up` runs here: the night runs on it, as the scheduler would run it
        state, seconds, run_id = _run_on_deployment(ctx, client, args.date, out)
        where = f" on the deployment ({client.url}/dags/xforce_nightly/runs/{run_id})"
    else:
        run = NightRun.plan(args.date)
        out.log = _log_path(ctx.settings, "run", args.date)
        with _hold(ctx, run, out):  # before any Airflow work: a second run of the night is refused at once
            if not out.verbose:
                out.stage(f"xforce run {args.date}: Airflow's and GX's logs go to {out.log}")
            with capture(out, out.log):
                start = clock.monotonic()
                prepare_airflow(ctx, out)
                out.stage(
                    f"Airflow ready in {clock.monotonic() - start:.0f} s (metadata database migrated, DAGs loaded)"
                )
                state, seconds = _run_night(ctx, run, out)
        where = ""
    code, lines, doc = _night_result(ctx, args.date, state)
    out.summary(f"xforce_nightly for {args.date}: run {state} in {seconds:.0f} s{where}")
    out.summary(f"extracts: {summary_line(doc)}")
    if doc["statuses"]["missing"] < doc["extracts"]:
        out.result(publish.format_table(doc["table"]))
    for line in lines:
        (out.error if code else out.stage)(line)
    doc["next"] = next_steps(ctx, args.date)
    doc["log"] = str(out.log) if out.log else None
    if code == OK:
        _print_next(out, doc["next"])
    out.json(doc)
    return code


def cmd_backfill(args: argparse.Namespace, out: Out) -> int:
    """Reprocess every night from ``--from`` to ``--to`` through Airflow, oldest first, in one process.

    Idempotent: a night's partitions are replaced, never duplicated; a changed re-delivery in
    landing supersedes the earlier one; an emptied landing folder is reprocessed from raw.
    """

    first, last = date.fromisoformat(args.date_from), date.fromisoformat(args.date_to)
    if last < first:
        raise CliError(f"--to {last} is before --from {first}: give the earlier night to --from", USAGE)
    nights = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    ctx = _context(out)
    _check_key(ctx.settings)
    out.log = _log_path(ctx.settings, "backfill", f"{nights[0]}_{nights[-1]}")
    if not out.verbose:
        out.stage(f"xforce backfill {nights[0]} .. {nights[-1]}: Airflow's and GX's logs go to {out.log}")
    docs: list[dict[str, Any]] = []
    settings = ctx.settings

    def report(night: str, state: str) -> None:
        _, lines, doc = _night_result(ctx, night, state)
        note = f"{doc['statuses']['published']}/{doc['extracts']} extracts published"
        if args.reports and state == "success":
            from xforce.reports import queries as reports

            built = reports.build_reports(settings, night)
            note += f"; reports: {built['files']['html']}"
        out.summary(f"xforce_nightly for {night}: run {state}; {note}")
        for line in lines:
            out.stage(f"  {line}")
        doc.pop("table", None)
        docs.append(doc)

    client = _deployment(ctx)
    if client is not None:  # `make up` runs here: Airflow's own backfill, in its Backfills view
        for night, state in _backfill_on_deployment(client, nights, out).items():
            report(night, state)
    else:
        with capture(out, out.log):
            settings = prepare_airflow(ctx, out)
            for night in nights:
                run = NightRun.plan(night)
                try:
                    with _hold(ctx, run, out):
                        state, _ = _run_night(ctx, run, out)
                except NightBusyError as exc:  # held by another run, before or during this one: skipped
                    docs.append({"night": night, "state": "busy", "exit_code": FAILED, "problems": [f"{exc}: skipped"]})
                    out.summary(f"xforce_nightly for {night}: skipped, another run holds it")
                    continue
                report(night, state)
    failed = [d["night"] for d in docs if d["exit_code"] != OK]
    out.summary(f"backfill {nights[0]} .. {nights[-1]}: {len(nights) - len(failed)} of {len(nights)} nights succeeded")
    for n in failed:
        out.error(f"night {n} did not succeed (see `xforce status --date {n}`)")
    out.json({"from": nights[0], "to": nights[-1], "nights": docs, "failed": failed, "log": str(out.log)})
    return FAILED if failed else OK


def _backfill_on_deployment(client: Any, nights: list[str], out: Out) -> dict[str, str]:
    """Airflow's own backfill of ``nights`` on the running deployment (one run at a time, each dated
    on its night, the night read from it); night -> the state its run ended in."""
    from xforce.airflow.timetable import night_of

    backfill = client.backfill("xforce_nightly", nights[0], nights[-1])
    out.stage(f"xforce backfill: Airflow backfill {backfill} on the deployment ({client.url}, the Backfills view)")
    runs = client.backfill_runs("xforce_nightly", backfill, timeout=6 * 3600 * len(nights))
    states = {night_of(datetime.fromisoformat(str(r["logical_date"]))): str(r["state"]) for r in runs}
    return {night: states.get(night, "not run") for night in nights}


def cmd_report(args: argparse.Namespace, out: Out) -> int:
    from xforce.reports import queries as reports
    from xforce.settings import Settings

    built = reports.build_reports(Settings.from_env(), args.date)
    for name, where in built["files"].items():
        rows = built["rows"].get(name)
        print(f"{name:22} {'' if rows is None else f'{rows:>7} rows  '}{where}")
    return OK


def _records_in(path: Path) -> int | None:
    """Records in a local extract, counted as lines before the work (for the ETA); None when compressed."""
    if path.suffix == ".gz":
        return None
    lines, last = 0, b"\n"
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return max(0, lines + (last != b"\n") - 1)  # less the header (a JSON Lines file has none: close enough)


@contextlib.contextmanager
def _count_records(bar: Progress, label: str, total: int | None) -> Iterator[None]:
    """Draw the records of an extract as they go into validation, with rate and ETA (a terminal only).

    ``xforce.exchange.process`` has no progress hook: for this command's own process only, its
    batch iterator is wrapped while the extract is processed, and restored after.
    """
    from xforce.exchange import process

    inner = getattr(process, "prefetched", None)
    if inner is None:  # the hook moved: no progress rather than no ingest
        yield
        return
    rate = Rate()
    seen = 0

    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        nonlocal seen
        for batch in inner(*args, **kwargs):
            seen += batch.table.num_rows + len(batch.rejects)
            bar.update(label, label, seen, max(total or 0, seen) or None, records=seen, rate=rate.text(seen))
            yield batch

    process.prefetched = counted  # type: ignore[assignment]
    try:
        yield
    finally:
        process.prefetched = inner


def cmd_ingest(args: argparse.Namespace, out: Out) -> int:
    from xforce.exchange import land, process, publish, tuning
    from xforce.quality import gxworker
    from xforce.store import layout
    from xforce.store.zones import Zone

    src = Path(args.file)
    if not src.is_file():
        raise CliError(f"no such file {src}: give --file the path of one extract", USAGE)
    ctx = _context(out)
    ctx.registry.force(args.force)
    _check_key(ctx.settings)
    _refuse_if_running(ctx, args.date)
    label = f"{args.force}/{args.dataset}"
    out.log = _log_path(ctx.settings, "ingest", f"{args.force}-{args.dataset}-{args.date}")
    if not out.verbose:
        out.stage(f"xforce ingest {label} {args.date}: GX's logs go to {out.log}")
    with capture(out, out.log):
        tuning.arrow_memory_pool()  # this command's own process: tuned once, here at its edge
        gxworker.start()  # GX's import runs in its worker while this process lands the file
        landing = ctx.zones.landing
        delivery = layout.delivery_dir(args.force, args.dataset, args.date)
        landing.copy_from(Zone(str(src.parent.resolve())), src.name, f"{delivery}/{src.name}")
        run_id = f"ingest__{args.force}__{args.dataset}__{args.date}__{uuid.uuid4().hex[:8]}"
        ref = land.land_extract(ctx, args.date, args.force, args.dataset, run_id, settle=False)  # copied whole
        out.stage(f"landed {src.name} ({src.stat().st_size:,} bytes) as {label} for {args.date}")
        bar = Progress(out, kind="records")
        start = clock.monotonic()
        try:
            with _count_records(bar, label, _records_in(src)) if bar.active else contextlib.nullcontext():
                outcome = process.process_extract(ctx, ref, run_id)
        finally:
            bar.close()
        out.stage(
            f"read and validated {outcome.rows_in or 0:,} records in {clock.monotonic() - start:.1f} s: "
            f"{outcome.status}"
        )
        publish.publish_night(ctx, args.date, run_id)
    rows = [r for r in publish.night_table(ctx, args.date) if r["force"] == args.force and r["dataset"] == args.dataset]
    row = rows[0] if rows else {"status": "missing", "received": 0, "published": 0, "quarantined": 0, "error": ""}
    out.result(publish.format_table(rows))
    status = row["status"]
    code = OK if status == "published" else FAILED
    out.summary(
        f"{label} {args.date}: {status}; {row['received']:,} received, {row['published']:,} published, "
        f"{row['quarantined']:,} quarantined"
    )
    if code:
        out.error(f"{label} was not published: {row.get('error') or status} (`xforce status --date {args.date}`)")
    out.json({"night": args.date, "force": args.force, "dataset": args.dataset, "exit_code": code, **row})
    return code


def night_state(ctx: Context, night: str) -> tuple[str, dict[str, Any]]:
    """``never_ran``, ``running``, ``unfinished``, ``failed`` or ``published`` (with ``detail``)."""
    recorded = ctx.ledger.extracts(night)
    events = ctx.ledger.events(night)
    lease = _live_lease(ctx, night)
    detail: dict[str, Any] = {"last_event_at": events[-1]["at"] if events else None}
    if lease:
        detail["lease"] = {k: lease.get(k) for k in ("run_id", "holder", "acquired_at", "expires_at")}
        return "running", detail
    if not recorded and not events:
        return "never_ran", detail
    if any(r["status"] == "failed" for r in recorded):
        return "failed", detail
    if not any(e["event"] == "night_published" for e in events) or any(
        r["status"] in ("landed", "validated") for r in recorded
    ):
        return "unfinished", detail
    return "published", detail


STATE_TEXT = {
    "never_ran": "never ran (nothing in the ledger for it)",
    "running": "running now",
    "unfinished": "started but did not finish (no publish of its last run): run it again",
    "failed": "ran; some extracts failed",
    "published": "ran and published",
}


def cmd_status(args: argparse.Namespace, out: Out) -> int:
    from xforce.exchange import publish

    ctx = _context(out)
    state, detail = night_state(ctx, args.date)
    doc: dict[str, Any] = {"night": args.date, "state": state, **detail}
    line = f"night {args.date}: {STATE_TEXT[state]}"
    if state == "never_ran":
        out.summary(f"{line}; run it with `xforce run --date {args.date}`")
        out.json(doc)
        return OK
    if state == "running":
        lease = detail["lease"]
        line += f" ({lease['run_id']} on {lease['holder']}, since {lease['acquired_at']} UTC)"
    rows = publish.night_table(ctx, args.date)
    summary = night_summary(rows)
    out.summary(f"{line}; {summary_line(summary)}")
    out.result(publish.format_table(rows))
    out.json({**doc, **summary, "table": rows})
    return OK


def cmd_repair(args: argparse.Namespace, out: Out) -> int:
    """Complete every publish of the night that was begun and never committed (from its journal)."""
    from xforce.exchange import publish

    ctx = _context(out)
    done = publish.repair_night(ctx, args.date)
    if done:
        out.summary(f"night {args.date}: completed the interrupted publish of {', '.join(done)}")
    else:
        out.summary(f"night {args.date}: nothing to repair (no publish was left unfinished)")
    return OK


def cmd_reidentify(args: argparse.Namespace, out: Out) -> int:
    from xforce.privacy import tokenmap as privacy
    from xforce.settings import Settings
    from xforce.store.ledger import open_ledger

    s = Settings.from_env()
    ledger = open_ledger(s.ledger_url, s.sql_dir)
    privacy.check_durable(ledger)  # before anything else: refused, nothing read
    found = privacy.reidentify(  # returns once the audit row is committed
        s.restricted,
        ledger,
        args.token,
        purpose=args.purpose,
        requested_by=args.requested_by,
    )
    print(found.plate)
    print(f"key version {found.key_version}; audited as {found.audit_id}", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace, out: Out) -> int:
    from xforce.settings import Settings
    from xforce.store.ledger import open_ledger

    s = Settings.from_env()
    ledger = open_ledger(s.ledger_url, s.sql_dir)
    if args.verify:
        check = ledger.verify_audit()
        for problem in check.problems:
            out.error(f"audit chain: {problem}")
        if check.whole:
            out.summary(f"audit chain whole: {check.rows} row(s), head position {check.head_seq} {check.head_hash}")
            return OK
        out.summary(f"audit chain broken: {len(check.problems)} problem(s) in {check.rows} row(s)")
        return FAILED
    from xforce.intake.normalise import formula_safe  # a spreadsheet opens this TSV: no formulas

    rows = ledger.reidentifications(args.token)
    cols = ("at", "requested_by", "os_user", "outcome", "key_version", "token", "purpose")
    print("\t".join(cols))
    for r in rows:
        cells = ("" if r[c] is None else formula_safe(str(r[c])) for c in cols)
        print("\t".join(cell.replace("\t", " ").replace("\r", " ").replace("\n", " ") for cell in cells))
    return 0


def cmd_doctor(args: argparse.Namespace, out: Out) -> int:
    """Local folders holding clear plates (raw, restricted) and the key file that other accounts could read."""
    from xforce.settings import Settings
    from xforce.store.connections import loose_zone_permissions

    found = loose_zone_permissions(Settings.from_env())
    for f in found:
        out.error(f"{f['what']}: {f['path']} is {f['mode']}, should be {f['want']} (chmod {f['want']} {f['path']})")
    if found:
        out.summary(f"{len(found)} permission problem(s): other accounts on this machine could read plates or the key")
        return FAILED
    out.summary("permissions: raw and restricted zones and the key file are private (or not local)")
    return OK


def cmd_retention(args: argparse.Namespace, out: Out) -> int:
    from xforce.privacy import retention
    from xforce.settings import Settings
    from xforce.store.ledger import open_ledger

    s = Settings.from_env()
    policy = retention.load_policy(s.config_dir)
    if args.include_landing:
        policy = policy.with_landing()
    today = date.fromisoformat(args.today) if args.today else policy.today()
    if today > (latest := retention.latest_today(policy)) and not args.force:
        raise CliError(
            f"--today {today} is more than one day ahead of today ({latest - timedelta(days=1)}, "
            f"{policy.timezone}): it would delete data not yet past its retention; add --force if that is meant",
            USAGE,
        )
    done = retention.apply(
        s,
        open_ledger(s.ledger_url, s.sql_dir),
        policy,
        today,
        dry_run=args.dry_run,
        run_id=f"cli__{uuid.uuid4().hex[:8]}",
    )
    print(retention.format_plan(done, args.dry_run))
    return 0


def cmd_pools(args: argparse.Namespace, out: Out) -> int:
    """Create or resize the hub's Airflow pools (a deployment's init step, after `airflow db migrate`)."""
    from xforce.airflow.env import airflow_env
    from xforce.settings import Settings

    settings = Settings.from_env()
    os.environ.update(airflow_env(settings))  # the metadata database of this deployment (env wins)
    from xforce.airflow.pools import ensure_pools
    from xforce.intake.contracts import load_registry

    for name, slots in ensure_pools(load_registry(settings.config_dir)).items():
        out.result(f"pool {name}: {slots} slot(s)")
    return OK


def cmd_policies(args: argparse.Namespace, out: Out) -> int:
    from xforce.intake.contracts import load_registry
    from xforce.privacy import policies
    from xforce.settings import Settings

    s = Settings.from_env()
    uris = policies.compose_zone_uris(args.compose) if args.compose else None
    for path in policies.write(args.out, policies.generate(load_registry(s.config_dir), s, args.bucket, uris)):
        print(path)
    return 0


def cmd_rotate_key(args: argparse.Namespace, out: Out) -> int:
    from xforce.privacy import tokenmap as privacy
    from xforce.settings import Settings, hmac_key
    from xforce.store.ledger import open_ledger

    s = Settings.from_env()
    version, key = hmac_key()
    zones = {"curated": s.curated, "quarantine": s.quarantine, "restricted": s.restricted}
    report = privacy.rotate_key(
        zones, open_ledger(s.ledger_url, s.sql_dir), new_version=version, new_key=key, retire_old=not args.keep_old_map
    )
    print(f"rotated {len(report.partitions)} partition(s) to key version {version}; {report.skipped} already current")
    for f in report.failed:
        print(f"  not rotated: {f['zone']}/{f['path']}: {f['error']}", file=sys.stderr)
    if report.retired:
        print(f"retired the token map of key version(s) {', '.join(report.retired)}")
    return 1 if report.failed else 0


def cmd_up(args: argparse.Namespace, out: Out) -> int:
    """Start the local deployment (``make up``): api-server, scheduler, dag-processor, triggerer."""
    from xforce.airflow import deploy
    from xforce.settings import Settings

    settings = Settings.from_env()
    try:
        port = deploy.ui_port()
        ensure_dev_key(settings.data_dir)  # the key `make run` uses, named in the processes' environment
        dep = deploy.up(settings, port, progress=out.stage)
    except deploy.DeployError as exc:
        raise CliError(str(exc), exc.code) from None
    if dep.already_up and dep.port != port:
        out.stage(f"xforce up: it listens on {dep.port}, not {port}: `xforce down` first to move it")
    for line in deploy.describe(dep):
        out.summary(line)
    return OK


def cmd_down(args: argparse.Namespace, out: Out) -> int:
    """Stop the processes ``xforce up`` started under this Airflow home, and nothing else."""
    from xforce.airflow import deploy
    from xforce.settings import Settings

    home = deploy.home_of(Settings.from_env())
    try:
        stopped, stale = deploy.down(home)
    except deploy.DeployError as exc:
        raise CliError(str(exc), exc.code) from None
    for name in stale:
        out.stage(f"xforce down: removed the stale pid file of {name} (its process was gone)")
    if stopped:
        out.summary(f"xforce down: stopped {', '.join(f'{n} ({p})' for n, p in stopped.items())} under {home}")
    else:
        out.summary(f"xforce down: nothing was running under {home}")
    return OK


#: An example for every subcommand (shown by its ``--help``; the tests check there is one).
EXAMPLES = {
    "generate": "xforce generate --date 2026-11-27 --out data/landing --anpr-reads 1000 --forces norfolk kent",
    "run": "xforce run --date 2026-11-27            (add --json for scripts, -v for Airflow's logs)",
    "ingest": "xforce ingest --force kent --dataset incidents --file 2019-01-kent-street.csv --date 2019-01-15",
    "status": "xforce status --date 2026-11-27 --json",
    "repair": "xforce repair --date 2026-11-27",
    "backfill": "xforce backfill --from 2026-11-20 --to 2026-11-26 --reports",
    "report": "xforce report --date 2026-11-27",
    "reidentify": 'xforce reidentify --token 3f2a... --purpose "Op Lepus, log 123" --requested-by "DC Smith"',
    "audit": "xforce audit --token 3f2a...        (xforce audit --verify: check the hash chain)",
    "doctor": "xforce doctor",
    "pools": "xforce pools                        (after airflow db migrate, before the scheduler starts)",
    "retention": "xforce retention --dry-run --today 2027-01-01",
    "policies": "xforce policies --out deploy/minio/policies --bucket xforce",
    "rotate-key": "XFORCE_HMAC_KEY_VERSION=k2 XFORCE_HMAC_KEY=... xforce rotate-key --keep-old-map",
    "up": "XFORCE_UI_PORT=8080 xforce up        (make up)",
    "down": "xforce down                         (make down)",
}


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error as one line (what was wrong, where the help is) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("xforce")
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without installing
        return "unknown"


def _common(*, sub: bool) -> _Parser:
    """-v/-q, accepted before or after the subcommand (``xforce -v run`` or ``xforce run -v``)."""
    p = _Parser(add_help=False)
    default: Any = argparse.SUPPRESS if sub else False
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="show Airflow's and GX's logs on the console and the traceback of an error (e.g. xforce run -v ...)",
    )
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="print only the outcome line and errors: no stages, progress, table or next steps (e.g. in cron)",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common(sub=True)
    parser = _Parser(
        prog="xforce",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(sub=False)],
    )
    parser.add_argument("--version", action="version", version=f"xforce {_version()}", help="print the version")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=text,
            description=text,
            epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
        )

    def night(p: argparse.ArgumentParser, what: str = "the night") -> None:
        p.add_argument("--date", required=True, type=_night, metavar="YYYY-MM-DD", help=f"{what} (e.g. 2026-11-27)")

    def as_json(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--json",
            action="store_true",
            help="print the result as JSON on stdout (e.g. for jq); messages go to stderr",
        )

    g = command("generate", "write sample extracts for every force in its native format")
    night(g, "the night the extracts are for")
    g.add_argument("--out", required=True, metavar="DIR", help="the landing folder to write into (e.g. data/landing)")
    g.add_argument("--anpr-reads", type=int, default=5000, metavar="N", help="ANPR reads per force (e.g. 100000)")
    g.add_argument(
        "--incidents", type=int, default=None, metavar="N", help="incidents per force (default: realistic; e.g. 50)"
    )
    g.add_argument(
        "--seizures", type=int, default=None, metavar="N", help="seizures per force (default: realistic; e.g. 10)"
    )
    g.add_argument(
        "--defect-rate", type=float, default=0.02, metavar="R", help="share of defective records (default 0.02)"
    )
    g.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed; the same seed, the same files (e.g. 7)"
    )
    g.add_argument(
        "--forces", nargs="+", default=None, metavar="FORCE", help="only these forces (e.g. --forces norfolk kent)"
    )
    g.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        choices=DATASETS,
        metavar="DATASET",
        help=f"only these datasets, of {', '.join(DATASETS)} (e.g. --datasets anpr_reads)",
    )
    g.add_argument(
        "--plant-crossing-vehicle",
        action="store_true",
        help="plant a vehicle read in three forces near hare coursing, with decoys (needs all seven forces)",
    )
    g.set_defaults(func=cmd_generate)
    r = command("run", "run xforce_nightly for a night through Airflow (dag.test, in this process)")
    night(r, "the night to run")
    as_json(r)
    r.set_defaults(func=cmd_run)
    i = command("ingest", "one extract through land, normalise, validate, publish")
    i.add_argument("--force", required=True, help="the force that sent it (e.g. kent)")
    i.add_argument(
        "--dataset", required=True, choices=DATASETS, metavar="DATASET", help=f"one of {', '.join(DATASETS)}"
    )
    i.add_argument("--file", required=True, metavar="PATH", help="the extract file (e.g. 2019-01-kent-street.csv)")
    night(i, "the night it belongs to")
    as_json(i)
    i.set_defaults(func=cmd_ingest)
    s = command("status", "a night: never ran, running, or how each force x dataset extract ended")
    night(s)
    as_json(s)
    s.set_defaults(func=cmd_status)
    rep = command("repair", "complete a night's publish that a crash interrupted (what the next run does first)")
    night(rep)
    rep.set_defaults(func=cmd_repair)
    b = command("backfill", "reprocess a range of nights through Airflow, oldest first")
    b.add_argument(
        "--from",
        dest="date_from",
        required=True,
        type=_night,
        metavar="YYYY-MM-DD",
        help="first night (e.g. 2026-11-20)",
    )
    b.add_argument(
        "--to", dest="date_to", required=True, type=_night, metavar="YYYY-MM-DD", help="last night (e.g. 2026-11-26)"
    )
    b.add_argument("--reports", action="store_true", help="also build each night's reports (e.g. for a month's review)")
    as_json(b)
    b.set_defaults(func=cmd_backfill)
    rp = command("report", "build the cross-force reports of a night (Parquet tables and HTML)")
    night(rp, "the night to report on")
    rp.set_defaults(func=cmd_report)
    ri = command("reidentify", "the plate behind a token, for a stated purpose (audited)")
    ri.add_argument("--token", required=True, help="the plate_token, 64 hex characters (from a published row)")
    ri.add_argument(
        "--purpose", required=True, help="why the plate is needed, recorded in the audit (e.g. 'Op Lepus, log 123')"
    )
    ri.add_argument("--requested-by", required=True, help="the person asking, recorded in the audit (e.g. 'DC Smith')")
    ri.set_defaults(func=cmd_reidentify)
    au = command("audit", "list the re-identification audit (tab-separated)")
    au.add_argument("--token", default=None, help="only the requests for this token (e.g. 3f2a...)")
    au.add_argument(
        "--verify", action="store_true", help="check the audit's hash chain: exit 1 naming rows changed or removed"
    )
    au.set_defaults(func=cmd_audit)
    dr = command("doctor", "check that local zones holding plates and the key file are private to this account")
    dr.set_defaults(func=cmd_doctor)
    pl = command("pools", "create or resize the hub's Airflow pools (xforce_validate) in the metadata database")
    pl.set_defaults(func=cmd_pools)
    rt = command("retention", "delete partitions past their retention (config/retention.yaml)")
    rt.add_argument(
        "--dry-run", action="store_true", help="only list what would be deleted (e.g. before the first run)"
    )
    rt.add_argument(
        "--today", type=_night, default=None, metavar="YYYY-MM-DD", help="count from this date (default: today, local)"
    )
    rt.add_argument(
        "--force", action="store_true", help="accept a --today more than one day ahead (e.g. to test a future rule)"
    )
    rt.add_argument(
        "--include-landing",
        action="store_true",
        help="also delete expired nights from landing (as include_landing: true in config/retention.yaml)",
    )
    rt.set_defaults(func=cmd_retention)
    po = command("policies", "write the MinIO/S3 policy documents generated from the force registry")
    po.add_argument("--out", required=True, metavar="DIR", help="folder to write into (e.g. deploy/minio/policies)")
    po.add_argument(
        "--bucket", default="xforce", help="bucket of zones that are not s3:// in the settings (e.g. xforce)"
    )
    po.add_argument(
        "--compose",
        default=None,
        metavar="FILE",
        help="take the zones from this docker-compose file's XFORCE_*_URI (e.g. docker-compose.yaml)",
    )
    po.set_defaults(func=cmd_policies)
    rk = command("rotate-key", "re-tokenise published partitions under the configured key version")
    rk.add_argument(
        "--keep-old-map", action="store_true", help="keep the old versions' token maps (e.g. for a grace period)"
    )
    rk.set_defaults(func=cmd_rotate_key)
    up = command("up", "start Airflow here in the background (UI, scheduler, dag-processor, triggerer) to watch nights")
    up.set_defaults(func=cmd_up)
    dn = command("down", "stop the processes `xforce up` started, and nothing else")
    dn.set_defaults(func=cmd_down)
    return parser


def _quiet_stdout() -> None:
    """After a closed pipe (``xforce status | head``): nothing more reaches it, and nothing complains at exit."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    args = build_parser().parse_args(argv)
    out = Out(
        args.command,
        verbose=bool(getattr(args, "verbose", False)),
        quiet=bool(getattr(args, "quiet", False)),
        as_json=bool(getattr(args, "json", False)),
    )
    try:
        code = int(args.func(args, out))
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return OK
    except KeyboardInterrupt:
        out.error("interrupted")
        return INTERRUPTED
    except Exception as exc:
        if out.verbose:
            traceback.print_exc()
        code, line = explain(exc)
        log = getattr(out, "log", None)
        if log and not out.verbose and code == FAILED:
            line += f" (log: {log})"
        out.error(line)
        return code


if __name__ == "__main__":
    sys.exit(main())
