"""Great Expectations in a process of its own, started once and reused.

GX builds a validation graph in pure Python for every suite it runs (about 0.1 s a call, whatever
the frame's size) and holds the GIL while it does: in the ingest's own process it kept the
normalising, tokenising and Parquet threads waiting. In a process of its own it runs on the other
core while this process prepares the next batch. Importing GX (about 6 s and 300 MB) happens
there too, once per process that validates, and starts as early as ``start()`` is called.

The protocol is private: a request is the frame as Arrow IPC plus a pickle of the suite, its
parameters and the result format; a reply is a pickle of plain ``SuiteResult`` records (counts and
row positions: the failing *values* GX lists are dropped in the worker, never sent back). An
exception's message may quote a value: it is sent back described (``xforce.redaction.describe_error``:
its type, length and hash), and the worker logs only its type and the code locations of its
traceback. The worker's own stdout goes to stderr, so nothing GX prints can corrupt a reply.

``run_suite`` is safe to call from several threads (one request at a time) and after a fork (a
forked child starts its own worker). ``execute`` is the in-process half, for the tests.

What the worker changes inside GX for speed (the batch fingerprint off, each expectation's
configuration built once per call) is done by ``gx_compat``, which checks GX's version and the
attributes it replaces first: a GX it was not checked against is refused, by name, in every reply.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import numpy as np
import pyarrow as pa

from xforce.errors import ValidatorError
from xforce.quality import gx_compat
from xforce.redaction import describe_error

_LEN = struct.Struct("<Q")


@dataclass
class SuiteResult:
    """One expectation's result, reduced to what the hub keeps."""

    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    success: bool
    exception: str | None = None  # the message described (never its text), when the expectation raised
    unexpected_index: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # frame positions


# ------------------------------------------------------------------------ the worker's half
@functools.lru_cache(maxsize=1)
def _batch_definition() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    # GX fingerprints every in-memory batch by hashing every cell (``batch_markers``), which we never
    # read; it cost as much as the expectations themselves: turned off (gx_compat checks GX first).
    gx_compat.disable_batch_fingerprint()
    context = gx.get_context(mode="ephemeral")
    gx_compat.hide_progress_bars(context)
    asset = context.data_sources.add_pandas("xforce").add_dataframe_asset("extract")
    definition = asset.add_batch_definition_whole_dataframe("whole")
    # GX's objects live as long as the process: frozen, they are no longer walked by every garbage
    # collection (``execute`` collects after each call).
    gc.collect()
    gc.freeze()
    return definition


def _prepare() -> str | None:
    """Set GX up in the worker, with both of gx_compat's changes; or why it cannot be (gx_compat's
    guard refused this GX: every request is then answered with that reason).

    Only the worker keeps configurations (``gx_compat.keep_configurations``):
    tests/component/test_gxworker.py checks its answers against GX's own, in the test's process, where
    GX is left as it is (but for the batch fingerprint).
    """
    try:
        _batch_definition()
        gx_compat.keep_configurations()
    except ValidatorError as exc:
        return str(exc)
    return None


def gx_params(params: dict[str, Any]) -> dict[str, Any]:
    """Suite parameters as GX compares them with a pandas column: datetimes as ``pd.Timestamp``."""
    import pandas as pd

    return {k: pd.Timestamp(v) if isinstance(v, datetime) else v for k, v in params.items()}


def _raised(info: dict[str, Any]) -> str | None:
    """The message of an expectation that raised, or None. GX gives either one
    ``{"raised_exception": ..., "exception_message": ...}`` or one such dict per metric that failed
    (a missing column, say): both mean the expectation was not evaluated."""
    if info.get("raised_exception"):
        return describe_error(str(info.get("exception_message")))
    messages = [
        describe_error(str(v.get("exception_message")))
        for v in info.values()
        if isinstance(v, dict) and v.get("raised_exception")
    ]
    return "; ".join(messages) or None


def execute(
    frame: pa.Table, suite: dict[str, Any], params: dict[str, Any], result_format: dict[str, Any]
) -> list[SuiteResult]:
    """GX validates ``frame`` with ``suite`` (a suite document: name, expectations, meta), here."""
    import great_expectations as gx

    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame.to_pandas()})
    try:
        result = batch.validate(
            gx.ExpectationSuite(name=suite["name"], expectations=suite["expectations"], meta=suite.get("meta")),
            expectation_parameters=gx_params(params),
            result_format=result_format,
        )
    finally:
        gx_compat.forget_configurations()  # kept for this call only (in the worker: _prepare)
    out = []
    for res in result.results:
        cfg = res.expectation_config
        raised = _raised(res.exception_info or {})
        out.append(
            SuiteResult(
                type=cfg.type,
                kwargs=dict(cfg.kwargs),
                meta=dict(cfg.meta or {}),
                success=bool(res.success),
                exception=raised,
                # positions only: GX lists plain frame positions (no unexpected_index_column_names)
                unexpected_index=np.asarray(res.result.get("unexpected_index_list") or [], dtype=np.int64),
            )
        )
    # GX's batch and validator hold the frame in reference cycles: collected now, not whenever the
    # collector next gets round to it (until then every frame stayed in memory).
    del batch, result
    gc.collect()
    return out


def _send(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LEN.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _receive(stream: IO[bytes]) -> bytes | None:
    head = stream.read(_LEN.size)
    if len(head) < _LEN.size:
        return None
    (size,) = _LEN.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        return None
    return body


def _encode_frame(frame: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, frame.schema) as writer:  # only the slice's bytes, unlike a pickle
        writer.write_table(frame)
    return bytes(sink.getvalue())


def serve() -> int:
    """The worker's loop: one request in, one reply out, until its input closes."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever GX prints goes to stderr, never into a reply
    _serve_stream(requests, replies, _prepare())
    return 0


def _serve_stream(requests: IO[bytes], replies: IO[bytes], refused: str | None) -> None:
    while (body := _receive(requests)) is not None:
        frame_bytes, rest = pickle.loads(body)
        frame = pa.ipc.open_stream(frame_bytes).read_all()
        try:
            if refused is not None:
                raise ValidatorError(refused)
            reply: tuple[str, Any] = ("ok", execute(frame, *rest))
        except Exception as exc:  # sent back and raised in the caller as a ValidatorError
            if isinstance(exc, ValidatorError):  # the hub's own words (gx_compat's refusal): no values
                reply = ("error", f"{type(exc).__name__}: {exc}")
            else:  # GX's or pandas' message may quote a value
                reply = ("error", describe_error(exc))
                # where it happened, for the log: the type and the code locations, never the message
                sys.stderr.write(f"gxworker: {type(exc).__name__} (message withheld)\n")
                traceback.print_tb(exc.__traceback__, file=sys.stderr)
        del frame, frame_bytes
        _send(replies, pickle.dumps(reply, protocol=5))


def serve_host(path: str) -> int:
    """One validation service per host: GX is imported once, here, then each task that connects to
    the Unix socket ``path`` gets a forked copy of this process, GX already loaded (a task's fixed
    cost is a fork, not GX's import). The socket is private to this account (0600)."""
    import socketserver

    refused = _prepare()
    os.dup2(2, 1)  # whatever GX prints goes to stderr

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            import socket

            peer = struct.unpack("3i", self.request.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
            sys.stderr.write(f"gxworker: validating for process {peer} in process {os.getpid()}\n")
            sys.stderr.flush()
            _serve_stream(self.rfile, self.wfile, refused)  # type: ignore[arg-type]

    class Server(socketserver.ForkingMixIn, socketserver.UnixStreamServer):
        block_on_close = False

    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    old = os.umask(0o177)
    try:
        server = Server(path, Handler)
    finally:
        os.umask(old)
    sys.stderr.write(f"gxworker: serving validations on {path}\n")
    sys.stderr.flush()
    with server:
        server.serve_forever()
    return 0


# ------------------------------------------------------------------------ the caller's half
log = logging.getLogger(__name__)
#: Seconds a batch's validation may take before its worker is stopped (a batch of 250,000 reads
#: takes a few seconds; a worker that has not replied in this time is hung).
REPLY_TIMEOUT = 300.0


def reply_timeout() -> float:
    """``XFORCE_GX_REPLY_TIMEOUT`` (seconds), else :data:`REPLY_TIMEOUT`."""
    value = os.environ.get("XFORCE_GX_REPLY_TIMEOUT", "").strip()
    return float(value) if value else REPLY_TIMEOUT


class _HostService:
    """A connection to the host's validation service (:func:`serve_host`): the same protocol as a
    worker of its own, over a Unix socket, answered by a forked copy of the service."""

    def __init__(self, path: str) -> None:
        import socket

        self.pid = os.getpid()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.requests, self.replies = self.sock.makefile("wb"), self.sock.makefile("rb")
        self.lock = threading.Lock()
        self.closed = False

    def alive(self) -> bool:
        return not self.closed

    def call(self, frame: pa.Table, rest: tuple[Any, ...]) -> list[SuiteResult]:
        import socket

        with self.lock:
            timeout = reply_timeout()
            fired = threading.Event()

            def stop_waiting() -> None:
                fired.set()
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)

            watchdog = threading.Timer(timeout, stop_waiting)
            watchdog.daemon = True
            watchdog.start()
            try:
                _send(self.requests, pickle.dumps((_encode_frame(frame), rest), protocol=5))
                body = _receive(self.replies)
            except OSError:
                body = None
            finally:
                watchdog.cancel()
            if body is None:
                self.close()
                if fired.is_set():
                    raise ValidatorError(
                        f"the validation service did not reply within {timeout:g} s (XFORCE_GX_REPLY_TIMEOUT)"
                    )
                raise ValidatorError("the validation service closed the connection; see its log")
        return _results(body)

    def close(self) -> None:
        if self.closed or self.pid != os.getpid():
            return
        self.closed = True
        for f in (self.requests, self.replies, self.sock):
            with contextlib.suppress(OSError):
                f.close()


def _results(body: bytes) -> list[SuiteResult]:
    status, value = pickle.loads(body)
    if status != "ok":
        raise ValidatorError(f"Great Expectations failed: {value}")
    results: list[SuiteResult] = value
    return results


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ, GX_ANALYTICS_ENABLED="false")
        # the worker imports xforce from where this process found it (Airflow puts plugins/ on sys.path)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.pid = os.getpid()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xforce.quality.gxworker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.lock = threading.Lock()

    def call(self, frame: pa.Table, rest: tuple[Any, ...]) -> list[SuiteResult]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            timeout = reply_timeout()
            fired = threading.Event()

            def stop_hung_worker() -> None:
                fired.set()
                self.proc.kill()

            watchdog = threading.Timer(timeout, stop_hung_worker)  # a hung worker is killed, its task told
            watchdog.daemon = True
            watchdog.start()
            try:
                _send(self.proc.stdin, pickle.dumps((_encode_frame(frame), rest), protocol=5))
                body = _receive(self.proc.stdout)
            except BrokenPipeError:
                body = None
            finally:
                watchdog.cancel()
            if body is None:
                code = self.proc.wait()
                if fired.is_set() and code == -signal.SIGKILL:
                    raise ValidatorError(
                        f"the Great Expectations process did not reply within {timeout:g} s and was stopped "
                        "(XFORCE_GX_REPLY_TIMEOUT)"
                    )
                raise ValidatorError(f"the Great Expectations process ended (exit code {code}); see its log above")
        return _results(body)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.pid != os.getpid():  # a forked child's copy: the worker belongs to the parent
            return
        if self.proc.stdin:
            with contextlib.suppress(BrokenPipeError):  # it has already gone: nothing left to flush
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_worker: _Worker | _HostService | None = None
_start_lock = threading.Lock()


def start() -> None:
    """Start the worker now (GX's import then overlaps whatever this process does next)."""
    _get()


def _get() -> _Worker | _HostService:
    """The host's validation service when ``XFORCE_GX_SOCKET`` names one that answers, else a worker
    of this process's own (started once, replaced when it died or after a fork)."""
    global _worker
    with _start_lock:
        if _worker is None or _worker.pid != os.getpid() or not _worker.alive():
            _worker = None
            path = os.environ.get("XFORCE_GX_SOCKET", "").strip()
            if path:
                try:
                    _worker = _HostService(path)
                except OSError:  # not running (yet, or any more): this process validates on its own
                    log.info("validation service at %s not answering: a worker of this process's own", path)
            if _worker is None:
                _worker = _Worker()
            atexit.register(_worker.close)
        return _worker


def run_suite(
    frame: pa.Table, suite: dict[str, Any], params: dict[str, Any] | None = None, result_format: Any = "SUMMARY"
) -> list[SuiteResult]:
    """Great Expectations validates ``frame`` with ``suite`` in the worker process."""
    return _get().call(frame, (suite, params or {}, result_format))


if __name__ == "__main__":
    # the module under its own name, so replies unpickle as xforce.quality.gxworker types
    from xforce.quality import gxworker

    if len(sys.argv) == 3 and sys.argv[1] == "--host":  # the host's validation service (xforce up)
        sys.exit(gxworker.serve_host(sys.argv[2]))
    sys.exit(gxworker.serve())
