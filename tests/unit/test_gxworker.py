"""Great Expectations in its worker process (xforce.gxworker): same answers as in-process, clear
errors when GX or the process fails, and a new worker when the old one is gone."""

from __future__ import annotations

import os
import signal

import pyarrow as pa
import pytest

from xforce import gxworker
from xforce.errors import ValidatorError
from xforce.settings import Settings
from xforce.validate import RESULT_FORMAT, load_suite

pytestmark = pytest.mark.unit


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


def test_the_whole_anpr_suite_gives_the_answers_of_gx_in_process() -> None:
    """Every expectation of a real suite, with suite parameters and failing rows in each column: the
    worker (which keeps each expectation's configuration for the length of a call,
    ``gxworker._keep_configurations``) gives the answers of GX as shipped, in this process."""
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
