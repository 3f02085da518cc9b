"""Airflow callbacks: what the hub does when Airflow reports on a task.

Written against Airflow's context only through ``ti.xcom_pull`` and the task's resolved
``op_kwargs``, so they are testable with a stand-in context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


def on_validate_skipped(context: Mapping[str, Any]) -> dict[str, Any] | None:
    """``on_skipped_callback`` of the validate tasks: a skipped validate task means its extract is missing.

    Works from Airflow's context only through ``ti.xcom_pull`` (the land task's reference for the same
    map index) or the task's resolved ``op_kwargs``, so it is testable with a stand-in context.
    """
    ref = _skipped_ref(context)
    if not ref or ref.get("status") != "missing":
        return None
    from xforce.context import Context
    from xforce.quality.deadlines import alert_missing_extract

    return alert_missing_extract(
        Context.from_env(), ref["night"], ref["force"], ref["dataset"], run_id=str(context.get("run_id"))
    )


def _skipped_ref(context: Mapping[str, Any]) -> dict[str, Any] | None:
    task = context.get("task")
    kwargs = getattr(task, "op_kwargs", None) or {}
    ref = kwargs.get("ref")
    if isinstance(ref, dict) and "force" in ref:
        return ref
    ti = context.get("ti")
    if ti is None:
        return None
    upstream = [t for t in sorted(getattr(task, "upstream_task_ids", ()) or ()) if t.startswith("land")]
    if not upstream:
        return None
    pulled = ti.xcom_pull(task_ids=upstream[0], map_indexes=ti.map_index)
    return pulled if isinstance(pulled, dict) else None
