"""Task log files for runs ``xforce run`` drives in-process (``dag.test()``).

Under an executor each task try writes its log to the file Airflow's UI reads
(``<base_log_folder>/dag_id=.../run_id=.../task_id=.../attempt=N.log``). ``dag.test()`` runs the
tasks one after another inside the ``xforce run`` process, whose output goes to one run log
(``data/logs/xforce-run-<night>-<time>.log``): no per-task file, and the UI's log pane of such a run
said only that it could not reach a log server. :func:`split_run_log` copies each task's part of
the run log (what was written between its start and end) to its try's file, so the UI and
``xforce status`` point at the same per-task logs for both kinds of run.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


def task_log_path(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> Path:
    """Where Airflow's file task handler keeps this task try's log (its configured template)."""
    import jinja2
    from airflow.configuration import conf

    ti = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index, "try_number": try_number}
    template = conf.get("logging", "log_filename_template")
    rel = jinja2.Template(template).render(ti=ti, try_number=try_number)
    return Path(conf.get("logging", "base_log_folder")) / rel


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _copy(run_log: Path, begin: int, dest: Path) -> None:
    _flush()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with run_log.open("rb") as src, dest.open("ab") as out:
        src.seek(begin)
        while chunk := src.read(1 << 20):
            out.write(chunk)


@contextlib.contextmanager
def split_run_log(run_log: Path | None) -> Iterator[None]:
    """While the block runs ``dag.test()`` with this process's output captured in ``run_log``, copy
    each task's share of it to that task try's log file (nothing when ``run_log`` is None: output
    not captured, as under ``--verbose``)."""
    if run_log is None:
        yield
        return
    from airflow.sdk.execution_time import supervisor

    cls = supervisor.InProcessTestSupervisor
    original = cls.__dict__["start"]
    start = original.__func__

    def logged_start(klass: Any, *, what: Any, task: Any, **kwargs: Any) -> Any:
        _flush()
        begin = run_log.stat().st_size
        try:
            return start(klass, what=what, task=task, **kwargs)
        finally:
            dest = task_log_path(what.dag_id, what.run_id, what.task_id, what.map_index, what.try_number)
            _copy(run_log, begin, dest)
            os.chmod(dest, 0o640)

    cls.start = classmethod(logged_start)  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        cls.start = original  # type: ignore[method-assign]
