"""What ``xforce`` shows people: stage lines, progress, the night's summary, errors and exit codes.

The command line (:mod:`xforce.cli`) decides *what* happens; this module decides how it looks:

* :class:`Out` is the console of one command: stage lines (not under ``--quiet``), the result,
  a JSON document for ``--json`` (then every human line goes to stderr, so stdout parses);
* :func:`capture` sends everything else written to stdout and stderr (Airflow's and Great
  Expectations' logs, at the file-descriptor level, so child processes too) to a log file;
* :class:`Progress` draws a progress bar with ``rich``, only on a terminal;
* :func:`explain` turns an exception into one line and an exit code (2: usage, 1: failed work).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

from xforce.errors import (
    ConfigError,
    ExtractError,
    NightBusyError,
    UnsafePathError,
    ValidatorError,
    XforceError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

#: Exit codes (README, "Exit codes").
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130

#: Extract statuses that end a night's processing (``landed`` and ``validated`` are on the way).
FINAL = ("published", "quarantined", "missing", "failed")


class CliError(Exception):
    """An expected failure of a command: one line for people and its exit code."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code


def explain(exc: BaseException) -> tuple[int, str]:
    """``(exit code, one line)`` for an exception: 2 when the command was asked wrongly, 1 when work failed."""
    if isinstance(exc, CliError):
        return exc.code, str(exc)
    if isinstance(exc, NightBusyError):
        return FAILED, str(exc)
    if isinstance(exc, (ExtractError, ValidatorError)):
        return FAILED, str(exc)
    if isinstance(exc, (ConfigError, UnsafePathError, XforceError)):
        return USAGE, str(exc)
    module = type(exc).__module__ or ""
    first = _first_line(exc)
    if module.startswith("sqlalchemy"):
        orig = getattr(exc, "orig", None)
        return FAILED, (
            f"cannot use the database: {_first_line(orig) if orig is not None else first}; "
            "check XFORCE_LEDGER_URL (the ledger) or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, and that the database is up"
        )
    if module.startswith(("botocore", "boto3", "s3transfer")) or ("s3" in first.lower() and isinstance(exc, OSError)):
        return FAILED, (
            f"cannot reach S3: {first}; check AWS_ENDPOINT_URL, the credentials and the bucket "
            "(docs/operator-guide.md, 'S3 zones')"
        )
    if isinstance(exc, FileNotFoundError):
        return FAILED, f"no such file or folder: {exc.filename or first}"
    if isinstance(exc, PermissionError):
        return FAILED, f"permission denied: {exc.filename or first}"
    return FAILED, f"unexpected {type(exc).__name__}: {first} (run again with --verbose for the traceback)"


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


# ----------------------------------------------------------------------------- the console
class Out:
    """One command's console. ``stdout``/``stderr`` are where people see it, whatever :func:`capture` does."""

    def __init__(self, command: str, *, verbose: bool = False, quiet: bool = False, as_json: bool = False) -> None:
        self.command, self.verbose, self.quiet, self.as_json = command, verbose, quiet, as_json
        self.log: Path | None = None  # this command's log file, once it has one
        self.stdout: IO[str] = sys.stdout
        self.stderr: IO[str] = sys.stderr

    @property
    def _human(self) -> IO[str]:
        return self.stderr if self.as_json else self.stdout

    def stage(self, text: str) -> None:
        """One line per stage of the work (not under ``--quiet``)."""
        if not self.quiet:
            print(text, file=self._human, flush=True)

    def result(self, text: str) -> None:
        """The command's result for people (a table): not under ``--quiet`` or ``--json``."""
        if not (self.quiet or self.as_json):
            print(text, file=self.stdout, flush=True)

    def summary(self, text: str) -> None:
        """The one line that says how it ended: always, to stderr under ``--json``."""
        print(text, file=self._human, flush=True)

    def error(self, text: str) -> None:
        print(f"xforce {self.command}: {text}", file=self.stderr, flush=True)

    def json(self, doc: Any) -> None:
        if self.as_json:
            print(json.dumps(doc, indent=2, sort_keys=True, default=str), file=self.stdout, flush=True)

    def is_terminal(self) -> bool:
        try:
            return bool(self.stdout.isatty())
        except (AttributeError, ValueError):
            return False


def _fd_of(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def capture(out: Out, log_path: Path) -> Iterator[None]:
    """Send what this process (and its children) write to stdout/stderr to ``log_path``; ``out`` keeps the console.

    Under ``--verbose`` nothing is redirected. The log file is left open on purpose: a logger
    configured meanwhile may hold it, and must not write to a closed file later.
    """
    if out.verbose:
        yield
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a", encoding="utf-8", buffering=1)  # left open on purpose (see above)
    saved_streams = (sys.stdout, sys.stderr, out.stdout, out.stderr)
    saved_fds: dict[int, int] = {}
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        for fd, name in ((1, "stdout"), (2, "stderr")):
            stream = getattr(sys, name)
            console: IO[str] = stream
            if _fd_of(stream) == fd:  # the real terminal or pipe: keep a copy of it for the console
                saved_fds[fd] = os.dup(fd)
                console = open(  # closed on the way out
                    os.dup(saved_fds[fd]), "w", encoding=getattr(stream, "encoding", None) or "utf-8", buffering=1
                )
            else:  # replaced in-process (a test's StringIO): it stays the console, the log takes its place
                setattr(sys, name, log)
                with contextlib.suppress(OSError):
                    saved_fds[fd] = os.dup(fd)
            if fd in saved_fds:
                os.dup2(log.fileno(), fd)
            setattr(out, name, console)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, dup in saved_fds.items():
            os.dup2(dup, fd)
            os.close(dup)
        for mine, kept in ((out.stdout, saved_streams[2]), (out.stderr, saved_streams[3])):
            if mine is not kept and mine not in saved_streams:
                with contextlib.suppress(Exception):
                    mine.close()
        sys.stdout, sys.stderr, out.stdout, out.stderr = saved_streams


# ----------------------------------------------------------------------------- progress
class Progress:
    """A progress bar (``rich``) on a terminal; nothing at all elsewhere (logs, CI, pipes, ``--quiet``, ``--json``)."""

    def __init__(self, out: Out, *, kind: str = "count") -> None:
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        if out.quiet or out.as_json or not out.is_terminal():
            return
        from rich import progress as rp
        from rich.console import Console

        columns: list[Any] = [rp.TextColumn("{task.description}"), rp.BarColumn(bar_width=30)]
        if kind == "records":  # records read, with rate and ETA (xforce ingest)
            columns += [
                rp.TaskProgressColumn(),
                rp.TextColumn("{task.fields[records]:>11,} records"),
                rp.TextColumn("{task.fields[rate]}"),
                rp.TimeRemainingColumn(),
            ]
        else:  # extracts done of total (xforce run, backfill)
            columns += [rp.MofNCompleteColumn(), rp.TextColumn("extracts"), rp.TimeElapsedColumn()]
        console = Console(file=out.stdout, force_terminal=True, highlight=False)
        self._bar = rp.Progress(*columns, console=console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self._bar.start()

    @property
    def active(self) -> bool:
        return self._bar is not None

    def update(self, key: str, description: str, completed: float, total: float | None, **fields: Any) -> None:
        if self._bar is None:
            return
        if key not in self._tasks:
            self._tasks[key] = self._bar.add_task(description, total=total, **{"records": 0, "rate": "", **fields})
        self._bar.update(self._tasks[key], completed=completed, total=total, description=description, **fields)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class Poller:
    """Calls ``tick`` every ``every`` seconds on a thread until stopped (errors in ``tick`` are ignored)."""

    def __init__(self, tick: Callable[[], None], every: float = 0.5) -> None:
        self._tick, self._every = tick, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xforce-progress", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with contextlib.suppress(Exception):
                self._tick()

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Rate:
    """Records per second over the whole read, as text."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def text(self, records: int) -> str:
        seconds = time.monotonic() - self.start
        return f"{records / seconds:,.0f} rec/s" if seconds > 0 and records else ""


# ----------------------------------------------------------------------------- a night
def night_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of a night's table (:func:`xforce.exchange.publish.night_table`): per status, and records."""
    statuses: dict[str, int] = {s: 0 for s in (*FINAL, "landed", "validated")}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {
        "extracts": len(rows),
        "statuses": statuses,
        "records": {k: sum(int(r.get(k) or 0) for r in rows) for k in ("received", "published", "quarantined")},
        "failed": [f"{r['force']}/{r['dataset']}" for r in rows if r["status"] == "failed"],
        "quarantined": [f"{r['force']}/{r['dataset']}" for r in rows if r["status"] == "quarantined"],
    }


def summary_line(summary: dict[str, Any]) -> str:
    s, rec = summary["statuses"], summary["records"]
    line = ", ".join(f"{s.get(k, 0)} {k}" for k in FINAL)
    unfinished = s.get("landed", 0) + s.get("validated", 0)
    if unfinished:
        line += f", {unfinished} unfinished"
    received, published, quarantined = rec["received"], rec["published"], rec["quarantined"]
    return f"{line}; records: {received:,} received, {published:,} published, {quarantined:,} quarantined"


def verdict(summary: dict[str, Any], state: str, night: str, landing: str) -> tuple[int, list[str]]:
    """The exit code of a night's run and the lines that explain it (none when all is well).

    ``failed`` extracts, or a run Airflow did not finish, make it 1; ``quarantined`` and
    ``missing`` extracts are expected outcomes of bad or late input (0, with a line); a night
    where every extract is missing is 1: there was nothing to process.
    """
    lines: list[str] = []
    code = OK
    if summary["failed"]:
        code = FAILED
        lines.append(
            f"{len(summary['failed'])} extract(s) failed: {', '.join(summary['failed'])} "
            f"(the reasons: `xforce status --date {night}`)"
        )
    if state != "success":
        code = FAILED
        lines.append(f"the DAG run ended {state}: see the log above and `xforce status --date {night}`")
    if summary["extracts"] and summary["statuses"].get("missing", 0) == summary["extracts"]:
        code = FAILED
        lines.append(
            f"nothing to process: landing ({landing}) has no extract for {night}; write sample extracts with "
            f"`xforce generate --date {night} --out {landing}`, or check the landing location"
        )
    elif summary["quarantined"] and code == OK:
        lines.append(
            f"{len(summary['quarantined'])} extract(s) quarantined whole (bad input, not a failure of the run): "
            f"{', '.join(summary['quarantined'])}"
        )
    return code, lines
