"""Runs whose driving process is gone: an in-process ``xforce run`` (``dag.test()``) killed mid-night.

``dag.test()`` runs a night's tasks inside the ``xforce run`` process, with no executor and no
heartbeat a scheduler would miss. Killed (kill -9, a lost terminal, a reboot), it leaves its DAG run
``running`` in Airflow's metadata database for ever, and its night's lease held until it expires.
A scheduler started later on that database (``xforce up``) would adopt the run half-done and,
with one active run per DAG, queue every later run behind it.

Each in-process run records its driver in its conf (``in_process``: host, pid, start time).
:func:`fail_dead_runs` marks such a run ``failed`` when its driver no longer runs on this host:
its unfinished tasks failed (started) or ``upstream_failed`` (never started), a note on the run
saying why, its night's lease released and a ``run_abandoned`` event in the ledger. Nothing it
published is touched: publish is journalled, and the night's next run finishes or rolls it back.
``xforce up`` calls it before it starts the scheduler, and every in-process run before it starts.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from xforce.airflow.deploy import process_alive

if TYPE_CHECKING:
    from xforce.store.ledger import Ledger

DRIVER_KEY = "in_process"
STARTED = ("running", "queued", "deferred", "up_for_retry", "up_for_reschedule", "restarting")


def driver_gone(conf: dict[str, Any] | None) -> bool:
    """Whether ``conf`` names an in-process driver on this host that no longer runs."""
    driver = (conf or {}).get(DRIVER_KEY)
    if not isinstance(driver, dict) or driver.get("host") != socket.gethostname():
        return False  # not in-process, or driven from another host: not ours to judge
    pid = driver.get("pid")
    return isinstance(pid, int) and not process_alive(pid, driver.get("start"))


def fail_dead_runs(ledger: Ledger | None = None) -> list[dict[str, Any]]:
    """Mark failed every unfinished DAG run whose in-process driver is gone (see the module); what was
    failed: ``dag_id``, ``run_id``, ``night``, ``pid``. Airflow must be configured (its env set)."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    failed: list[dict[str, Any]] = []
    with create_session() as session:
        runs = session.scalars(sa.select(DagRun).where(DagRun.state.in_([DagRunState.RUNNING, DagRunState.QUEUED])))
        for run in runs:
            conf = run.conf if isinstance(run.conf, dict) else {}
            if not driver_gone(conf):
                continue
            pid = conf[DRIVER_KEY]["pid"]
            for ti in session.scalars(
                sa.select(TaskInstance).where(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id)
            ):
                if ti.state in STARTED:
                    ti.state = TaskInstanceState.FAILED
                elif ti.state in (None, "scheduled"):
                    ti.state = TaskInstanceState.UPSTREAM_FAILED
            run.state = DagRunState.FAILED
            run.note = (
                f"Marked failed by xforce: the `xforce run` process that ran it in-process (pid {pid}) "
                "ended without finishing it. Nothing it published is lost; run the night again."
            )
            failed.append({"dag_id": run.dag_id, "run_id": run.run_id, "night": conf.get("night"), "pid": pid})
    if ledger is not None:
        for gone in failed:
            if gone["night"]:
                ledger.release_lease(str(gone["night"]), gone["run_id"])
                ledger.event(
                    "run_abandoned",
                    night=str(gone["night"]),
                    detail=f"{gone['dag_id']} run {gone['run_id']} failed: its process ended (pid {gone['pid']})",
                    run_id=gone["run_id"],
                )
    return failed
