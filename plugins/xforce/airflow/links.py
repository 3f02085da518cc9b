"""Extra links of the mapped land and validate tasks: the extract's page in the Data exchange view and
the night's Data Docs, one click from the task in Airflow's grid.

Airflow 3 computes a task's extra links when the task finishes (in its own process) and stores them
with it; the links must be on the operator's class (``operator_extra_links``) and registered by a
plugin for the UI to show them (``plugins/xforce_ui_plugin.py``). :func:`extract_task` is ``@task``
with that class. Links are paths under the deployment's base URL (``AIRFLOW__API__BASE_URL``); a task
whose arguments name no extract has no links (empty).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.providers.standard.decorators.python import _PythonDecoratedOperator
from airflow.sdk import BaseOperatorLink
from airflow.sdk.bases.decorator import task_decorator_factory

VIEW = "/xforce"


def _extract(operator: Any) -> dict[str, str] | None:
    """The night, force and dataset a land (``item``) or validate (``ref``) task works on."""
    kwargs = getattr(operator, "op_kwargs", None) or {}
    for key in ("ref", "item"):
        value = kwargs.get(key)
        if isinstance(value, dict) and {"night", "force", "dataset"} <= value.keys():
            return {k: str(value[k]) for k in ("night", "force", "dataset")}
    return None


def _base() -> str:
    return (os.environ.get("AIRFLOW__API__BASE_URL") or "").rstrip("/")


class ExtractPageLink(BaseOperatorLink):
    """The extract's page in the Data exchange view: counts, reasons with row ids, drift, alerts."""

    name = "Extract in Data exchange"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        e = _extract(operator)
        return f"{_base()}{VIEW}/extract/{e['night']}/{e['force']}/{e['dataset']}" if e else ""


class DataDocsLink(BaseOperatorLink):
    """The night's Data Docs page (every extract's validation results)."""

    name = "Data Docs"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from xforce.store import layout

        e = _extract(operator)
        return f"{_base()}{VIEW}/docs/{layout.validation_page(e['night'])}" if e else ""


class ExtractTaskOperator(_PythonDecoratedOperator):
    """``@task`` whose task has the extract's links."""

    operator_extra_links = (ExtractPageLink(), DataDocsLink())
    custom_operator_name = "@extract_task"


def extract_task(python_callable: Any = None, **kwargs: Any) -> Any:
    """``@task`` for a task that works on one extract (land, validate): with its extra links."""
    return task_decorator_factory(
        python_callable=python_callable, decorated_operator_class=ExtractTaskOperator, **kwargs
    )
