"""The Airflow settings the project runs with locally (``xforce run``, ``make run``, tests).

Everything is an environment variable so that the same values can go into a compose file or a
deployment; nothing here imports Airflow.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from xforce.settings import RUNTIME_ROOT, Settings, default_key_file

#: Telemetry off everywhere: there is no network, and police data never phones home.
NO_TELEMETRY = {
    "GX_ANALYTICS_ENABLED": "false",
    "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
    "SCARF_ANALYTICS": "false",
    "DO_NOT_TRACK": "1",
}


def airflow_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for running Airflow on embedded defaults (SQLite, local folders).

    ``AIRFLOW_HOME`` is honoured when set; otherwise Airflow lives in ``<data dir>/airflow``. The DAGs
    and plugins folders are the package's (:data:`xforce.settings.RUNTIME_ROOT`) unless set.
    Values already present in ``base`` (e.g. a PostgreSQL ``SQL_ALCHEMY_CONN``) win.
    """
    env = dict(os.environ if base is None else base)
    home = env.get("AIRFLOW_HOME") or str(Path(settings.data_dir) / "airflow")
    Path(home).mkdir(parents=True, exist_ok=True)
    defaults = {
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": str(RUNTIME_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(RUNTIME_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(Path(home) / "logs"),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "XFORCE_DATA_DIR": settings.data_dir,
        **NO_TELEMETRY,
    }
    for key, value in defaults.items():
        env.setdefault(key, value)
    for key, value in NO_TELEMETRY.items():
        env[key] = value
    env.update(lineage_env(settings, env))
    key_file = plate_key_file(settings, env)
    if key_file:
        env["XFORCE_HMAC_KEY_FILE"] = key_file
    return env


def plate_key_file(settings: Settings, env: dict[str, str]) -> str | None:
    """The plate key file every Airflow process is given, absolute (``XFORCE_HMAC_KEY_FILE``).

    The one ``env`` names (made absolute: a scheduler or worker may start in another folder), else the
    development key ``<data dir>/secrets/hmac.key`` when it exists, so a scheduler or worker started
    with this environment finds the key ``make run`` made. None otherwise: the key then comes from
    ``XFORCE_HMAC_KEY`` or the Connection ``xforce_hmac_key`` (:func:`xforce.settings.hmac_key`).
    """
    named = (env.get("XFORCE_HMAC_KEY_FILE") or "").strip()
    if named:
        return os.path.abspath(named)
    default = default_key_file(settings.data_dir)
    return default if os.path.exists(default) else None


#: ``XFORCE_LINEAGE`` values that turn OpenLineage off.
LINEAGE_OFF = frozenset({"off", "false", "0", "no", "none", "disabled"})


def lineage_file(settings: Settings) -> str:
    """Where OpenLineage events go by default: ``<data dir>/lineage/events.jsonl`` (one JSON event a line)."""
    return os.path.join(os.path.abspath(settings.data_dir), "lineage", "events.jsonl")


def lineage_env(settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """The OpenLineage provider's settings (``[openlineage]``), from ``XFORCE_LINEAGE``.

    * unset or ``file``: events appended to :func:`lineage_file`, a local file: nothing leaves the machine;
    * a path: events appended to that file instead (made absolute);
    * ``off`` (:data:`LINEAGE_OFF`): the provider emits nothing.

    An ``AIRFLOW__OPENLINEAGE__TRANSPORT``, ``__CONFIG_PATH`` or ``__CONFIG_CONN_ID`` already in ``env``
    (a lineage server the deployment chose) wins over the file, unless ``XFORCE_LINEAGE=off``. The
    namespace (``xforce``) and emitting in a thread rather than a forked process are defaults too.
    """
    choice = (env.get("XFORCE_LINEAGE") or "").strip()
    if choice.lower() in LINEAGE_OFF:
        return {"AIRFLOW__OPENLINEAGE__DISABLED": "True"}
    out = {
        "AIRFLOW__OPENLINEAGE__NAMESPACE": env.get("AIRFLOW__OPENLINEAGE__NAMESPACE") or "xforce",
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": env.get("AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD") or "True",
    }
    chosen = any(
        (env.get(f"AIRFLOW__OPENLINEAGE__{k}") or "").strip() for k in ("TRANSPORT", "CONFIG_PATH", "CONFIG_CONN_ID")
    )
    if not chosen:
        path = lineage_file(settings) if choice.lower() in ("", "file", "on") else os.path.abspath(choice)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        out["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps({"type": "file", "log_file_path": path, "append": True})
    return out
