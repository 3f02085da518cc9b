"""Which in-process runs are orphans: their driver (host, pid, start time) no longer runs here."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from xforce.airflow.deploy import process_alive, process_identity
from xforce.airflow.orphans import DRIVER_KEY, driver_gone

pytestmark = pytest.mark.unit


def _dead_pid() -> int:
    """A pid no process holds now (a unit test starts no process to get one)."""
    return next(p for p in range(4_194_303, 1, -1) if not Path(f"/proc/{p}").exists())


def test_a_run_driven_by_this_live_process_is_not_an_orphan() -> None:
    assert not driver_gone({"night": "2026-11-27", DRIVER_KEY: process_identity()})


def test_a_run_whose_driver_ended_is_an_orphan() -> None:
    me = process_identity()
    assert driver_gone({DRIVER_KEY: {**me, "pid": _dead_pid()}})


def test_a_pid_now_held_by_another_process_is_an_orphan() -> None:
    me = process_identity()
    assert me["start"] is not None
    assert driver_gone({DRIVER_KEY: {**me, "start": str(int(me["start"]) - 1)}})  # this pid, another start
    assert not process_alive(me["pid"], str(int(me["start"]) - 1)) and process_alive(me["pid"], me["start"])


@pytest.mark.parametrize(
    "conf",
    [
        None,
        {},
        {"night": "2026-11-27"},  # a scheduler's or the UI's run: no in-process driver
        {DRIVER_KEY: "not a mapping"},
        {DRIVER_KEY: {"host": "another-host", "pid": 1, "start": "1"}},  # not this host's to judge
        {DRIVER_KEY: {"host": socket.gethostname(), "pid": "12"}},  # a malformed pid
    ],
)
def test_runs_without_a_driver_of_this_host_are_never_judged(conf: object) -> None:
    assert not driver_gone(conf)  # type: ignore[arg-type]
