"""Great Expectations in its worker process (xforce.quality.gxworker): same answers as in-process, clear
errors when GX or the process fails, and a new worker when the old one is gone.

These start the worker process: the ``component`` tier. (What the worker changes inside GX is
checked in-process by tests/unit/test_gx_compat.py.)"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from xforce.errors import ValidatorError
from xforce.quality import gx_compat, gxworker
from xforce.quality.validate import RESULT_FORMAT, load_suite
from xforce.settings import Settings

pytestmark = pytest.mark.component


def _suite() -> dict:
    doc = load_suite(Settings.from_env().expectations_dir, "anpr_reads")
    wanted = {"source_id", "camera_id"}
    return {"name": doc["name"], "expectations": [e for e in doc["expectations"] if e["kwargs"]["column"] in wanted]}


def _frame() -> pa.Table:
    return pa.table(
        {
            "source_id": ["R1", "R 2", None, "R4", ""],
            "camera_id": ["C1", "C2", "C3", "C\t4", "C5"],
        }
    )


def _comparable(results: list[gxworker.SuiteResult]) -> list[tuple]:
    return [(r.type, r.kwargs["column"], r.success, r.exception, r.unexpected_index.tolist()) for r in results]


def test_worker_gives_the_answers_of_gx_in_process() -> None:
    frame, suite = _frame(), _suite()
    here = gxworker.execute(frame, suite, {}, RESULT_FORMAT)
    there = gxworker.run_suite(frame, suite, {}, RESULT_FORMAT)
    assert _comparable(there) == _comparable(here)
    by = {(r.type, r.kwargs["column"]): r.unexpected_index.tolist() for r in there}
    assert by[("expect_column_values_to_match_regex", "source_id")] == [1, 4]  # white space, empty
    assert by[("expect_column_values_to_not_be_null", "source_id")] == [2]
    assert by[("expect_column_values_to_match_regex", "camera_id")] == [3]


def test_worker_sends_back_positions_not_values() -> None:
    """A failing plate must not travel back: only positions and counts cross the pipe."""
    doc = load_suite(Settings.from_env().expectations_dir, "anpr_reads")
    suite = {"name": doc["name"], "expectations": [e for e in doc["expectations"] if e["kwargs"]["column"] == "plate"]}
    results = gxworker.run_suite(pa.table({"plate": ["AB12CDE", "NOT A PLATE"]}), suite, {}, RESULT_FORMAT)
    regex = next(r for r in results if r.type == "expect_column_values_to_match_regex")
    assert regex.unexpected_index.tolist() == [1]
    assert "NOT A PLATE" not in repr(results)


def test_an_expectation_that_raises_comes_back_as_its_message() -> None:
    suite = {
        "name": "s",
        "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}}],
    }
    (result,) = gxworker.run_suite(_frame(), suite, {}, RESULT_FORMAT)
    assert not result.success and result.exception and "nope" in result.exception


def test_a_request_gx_cannot_run_is_a_validator_error_and_the_worker_lives_on() -> None:
    pid = gxworker._get().proc.pid
    with pytest.raises(ValidatorError, match="Great Expectations failed: KeyError"):
        gxworker.run_suite(_frame(), {"name": "no expectations key"}, {}, RESULT_FORMAT)
    assert _comparable(gxworker.run_suite(_frame(), _suite(), {}, RESULT_FORMAT))  # still answering
    assert gxworker._get().proc.pid == pid


def test_a_dead_worker_is_a_validator_error_then_a_new_worker_starts() -> None:
    gxworker.start()
    worker = gxworker._get()
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait()
    with pytest.raises(ValidatorError, match="process ended"):
        worker.call(_frame(), (_suite(), {}, RESULT_FORMAT))
    results = gxworker.run_suite(_frame(), _suite(), {}, RESULT_FORMAT)  # a new worker
    assert gxworker._get().proc.pid != worker.proc.pid
    assert sum(not r.success for r in results) == 3  # all but camera_id's not-null


def test_a_hung_worker_is_stopped_after_the_reply_timeout_then_a_new_worker_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gxworker.run_suite(_frame(), _suite(), {}, RESULT_FORMAT)  # a worker that has answered once
    worker = gxworker._get()
    os.kill(worker.proc.pid, signal.SIGSTOP)  # hung: alive, never replying
    monkeypatch.setenv("XFORCE_GX_REPLY_TIMEOUT", "2")
    with pytest.raises(ValidatorError, match=r"did not reply within 2 s and was stopped \(XFORCE_GX_REPLY_TIMEOUT\)"):
        worker.call(_frame(), (_suite(), {}, RESULT_FORMAT))
    assert worker.proc.returncode == -signal.SIGKILL
    monkeypatch.delenv("XFORCE_GX_REPLY_TIMEOUT")
    results = gxworker.run_suite(_frame(), _suite(), {}, RESULT_FORMAT)  # a new worker answers
    assert gxworker._get().proc.pid != worker.proc.pid
    assert sum(not r.success for r in results) == 3


def test_the_whole_anpr_suite_gives_the_answers_of_gx_in_process() -> None:
    """Every expectation of a real suite, with suite parameters and failing rows in each column: the
    worker (which keeps each expectation's configuration for the length of a call,
    ``gx_compat.keep_configurations``) gives the answers of GX as shipped, in this process."""
    from datetime import UTC, datetime

    doc = load_suite(Settings.from_env().expectations_dir, "anpr_reads")
    suite = {"name": doc["name"], "expectations": doc["expectations"], "meta": doc.get("meta")}
    t = datetime(2026, 11, 27, 12, tzinfo=UTC)
    frame = pa.table(
        {
            "source_id": ["R1", "R 2", None, "R4", "R5"],
            "read_at": pa.array([t, t, None, datetime(2020, 1, 1, tzinfo=UTC), t], pa.timestamp("us", tz="UTC")),
            "camera_id": ["C1", "C2", "C3", None, "C\t5"],
            "plate": ["AB12CDE", None, "NOT A PLATE", "K1", "AB12CDE"],
            "latitude": [52.6, 52.6, 10.0, None, 52.6],
            "longitude": [1.2, 1.2, 1.2, 1.2, 99.0],
            "force_code": ["norfolk", "norfolk", "kent", "mars", None],
            "_first_occurrence": [True, True, False, True, True],
        }
    )
    params = {
        "night_start": datetime(2026, 11, 26, 22, tzinfo=UTC),
        "night_end": datetime(2026, 11, 28, 2, tzinfo=UTC),
        "lat_min": 51.0,
        "lat_max": 53.5,
        "lon_min": -1.0,
        "lon_max": 2.0,
    }
    here = gxworker.execute(frame, suite, params, RESULT_FORMAT)
    there = gxworker.run_suite(frame, suite, params, RESULT_FORMAT)
    assert _comparable(there) == _comparable(here)
    assert len(here) == len(doc["expectations"]) and not all(r.success for r in here)
    assert sum(len(r.unexpected_index) for r in here) >= 8


def test_a_gx_the_guard_refuses_is_the_answer_to_every_request() -> None:
    """A worker whose GX is not a version gx_compat was checked against changes nothing in GX and
    answers each request with the reason, naming the version (not a dead process to restart)."""
    code = (
        "import great_expectations\n"
        "great_expectations.__version__ = '1.99.0'\n"
        "from xforce.quality import gxworker\n"
        "raise SystemExit(gxworker.serve())\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for _ in range(2):
            request = pickle.dumps((gxworker._encode_frame(_frame()), (_suite(), {}, RESULT_FORMAT)), protocol=5)
            gxworker._send(proc.stdin, request)
            body = gxworker._receive(proc.stdout)
            assert body is not None
            status, reason = pickle.loads(body)
            assert status == "error"
            assert reason.startswith("ValidatorError: Great Expectations 1.99.0 is installed")
            assert gx_compat.CHECKED_VERSIONS in reason
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0


def test_the_callers_half_imports_no_great_expectations() -> None:
    """Importing the worker's module (and gx_compat) in the ingest's process leaves GX's import
    (about 6 s, 300 MB) to the worker."""
    code = (
        "import json, sys\n"
        "from xforce.quality import gx_compat, gxworker\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'great_expectations')))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_the_hosts_validation_service_answers_as_a_worker_from_a_forked_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``xforce up`` runs one service per host (GX imported once); a task's requests are answered by a
    forked copy of it, the same answers as a worker of its own, and a hung copy is given up on."""
    import time

    sock = tmp_path / "gx.sock"
    service = subprocess.Popen([sys.executable, "-m", "xforce.quality.gxworker", "--host", str(sock)])
    try:
        deadline = time.monotonic() + 120
        while not sock.exists():
            assert service.poll() is None and time.monotonic() < deadline, "the service did not start"
            time.sleep(0.2)
        assert oct(sock.stat().st_mode & 0o777) == "0o600"  # this account's tasks only
        expected = _comparable(gxworker.run_suite(_frame(), _suite(), {}, RESULT_FORMAT))  # a worker of its own
        monkeypatch.setenv("XFORCE_GX_SOCKET", str(sock))
        gxworker._get().close()
        gxworker._worker = None
        started = time.monotonic()
        answered = gxworker.run_suite(_frame(), _suite(), {}, RESULT_FORMAT)
        print(f"first answer from the host's service: {time.monotonic() - started:.2f} s (GX already imported)")
        assert isinstance(gxworker._get(), gxworker._HostService)
        assert _comparable(answered) == expected
        (copy,) = _children(service.pid)  # the connection's own forked copy
        os.kill(copy, signal.SIGSTOP)
        monkeypatch.setenv("XFORCE_GX_REPLY_TIMEOUT", "2")
        with pytest.raises(ValidatorError, match="did not reply within 2 s"):
            gxworker.run_suite(_frame(), _suite(), {}, RESULT_FORMAT)
        os.kill(copy, signal.SIGKILL)
        monkeypatch.delenv("XFORCE_GX_REPLY_TIMEOUT")
        assert _comparable(gxworker.run_suite(_frame(), _suite(), {}, RESULT_FORMAT)) == expected  # a new copy
    finally:
        service.kill()
        service.wait()
        gxworker._get().close()
        gxworker._worker = None
    monkeypatch.delenv("XFORCE_GX_SOCKET")
    assert isinstance(gxworker._get(), gxworker._Worker)  # no service: a worker of its own again
