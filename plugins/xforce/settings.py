"""Where things live, read from the environment (or Airflow Variables/Connections in tasks).

Every location is a local path or an ``s3://bucket/prefix`` URI.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from xforce.errors import ConfigError

#: The repository root: ``plugins/xforce/settings.py`` -> ``.`` (meaningful in a source checkout only).
PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: Where the runtime files are: ``dags/ sql/ expectations/ config/ schemas/ plugins/``. An installed wheel
#: carries them as ``xforce/_runtime/`` (copied there by ``setup.py``); the editable install and a
#: source checkout have no ``_runtime/`` and read the repository's own folders.
_PACKAGED = Path(__file__).resolve().parent / "_runtime"
RUNTIME_ROOT = _PACKAGED if _PACKAGED.is_dir() else PROJECT_ROOT


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


@dataclass(frozen=True)
class Settings:
    data_dir: str
    landing: str
    raw: str
    staging: str
    curated: str
    quarantine: str
    docs: str
    ledger_url: str
    config_dir: str
    expectations_dir: str
    sql_dir: str
    restricted: str = ""  # token->plate map (XFORCE_RESTRICTED_URI); see docs/privacy.md
    #: force -> its own landing location (``XFORCE_LANDING_URI_<FORCE>``), holding ``<dataset>/<night>/``
    force_landing: dict[str, str] = field(default_factory=dict)
    #: force -> Airflow Connection reaching its landing location (``XFORCE_LANDING_CONN_<FORCE>``)
    force_landing_conn: dict[str, str] = field(default_factory=dict)

    def landing_location(self, force: str) -> tuple[str, str | None, str]:
        """``(uri, connection id or None, folder of the force inside uri)`` for a force's deliveries."""
        conn_id = self.force_landing_conn.get(force)
        own = self.force_landing.get(force)
        return (own, conn_id, "") if own else (self.landing, conn_id, force)

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = str(Path(_env("XFORCE_DATA_DIR", "data")).resolve())

        def zone(var: str, name: str) -> str:
            value = _env(var, os.path.join(data_dir, name))
            return value if value.startswith("s3://") else str(Path(value).resolve())

        return cls(
            data_dir=data_dir,
            landing=zone("XFORCE_LANDING_URI", "landing"),
            raw=zone("XFORCE_RAW_URI", "raw"),
            staging=zone("XFORCE_STAGING_URI", "staging"),
            curated=zone("XFORCE_CURATED_URI", "curated"),
            quarantine=zone("XFORCE_QUARANTINE_URI", "quarantine"),
            docs=zone("XFORCE_DOCS_URI", "docs"),
            ledger_url=_env("XFORCE_LEDGER_URL", f"sqlite:///{os.path.join(data_dir, 'ledger.sqlite')}"),
            config_dir=_env("XFORCE_CONFIG_DIR", str(RUNTIME_ROOT / "config")),
            expectations_dir=_env("XFORCE_EXPECTATIONS_DIR", str(RUNTIME_ROOT / "expectations")),
            sql_dir=_env("XFORCE_SQL_DIR", str(RUNTIME_ROOT / "sql")),
            restricted=zone("XFORCE_RESTRICTED_URI", "restricted"),
            force_landing={f: zone(v, "") for f, v in _per_force("XFORCE_LANDING_URI_").items()},
            force_landing_conn={f: os.environ[v].strip() for f, v in _per_force("XFORCE_LANDING_CONN_").items()},
        )


def _per_force(prefix: str) -> dict[str, str]:
    """``{force: env var name}`` for set variables ``<prefix><FORCE>`` (force code upper-cased)."""
    return {
        name[len(prefix) :].lower(): name
        for name, value in os.environ.items()
        if name.startswith(prefix) and len(name) > len(prefix) and value.strip()
    }


#: The Airflow Connection holding the plate key (password = the key; extra ``{"version": "k2"}`` optional).
KEY_CONNECTION = "xforce_hmac_key"
#: The shortest plate key accepted, in characters.
MIN_KEY_CHARS = 16


def default_key_file(data_dir: str | None = None) -> str:
    """``<XFORCE_DATA_DIR>/secrets/hmac.key`` (absolute): the development key ``make run`` creates."""
    base = data_dir or _env("XFORCE_DATA_DIR", "data")
    return os.path.join(str(Path(base).resolve()), "secrets", "hmac.key")


def hmac_key() -> tuple[str, bytes]:
    """The plate-pseudonymisation key and its version (``XFORCE_HMAC_KEY_VERSION``, default ``k1``).

    Every process resolves it the same way, first found wins:

    1. ``XFORCE_HMAC_KEY``: the key itself (tests, CI);
    2. ``XFORCE_HMAC_KEY_FILE``: a file holding it (a mounted secret); named but missing is an error;
    3. the Airflow Connection ``xforce_hmac_key`` (password = key, extra ``{"version": ...}`` optional),
       looked up only inside an Airflow task process (or when ``AIRFLOW_CONN_XFORCE_HMAC_KEY`` is set);
    4. ``<XFORCE_DATA_DIR>/secrets/hmac.key``, the development key ``make run`` creates.

    None (or one shorter than 16 characters) is a :class:`ConfigError` naming the settings and the
    file looked at. Never logged, never passed through XCom; described only by length.
    """
    version = _env("XFORCE_HMAC_KEY_VERSION", "k1")
    key = os.environ.get("XFORCE_HMAC_KEY", "")
    if key.strip():
        return version, _usable(key, "XFORCE_HMAC_KEY")
    named = os.environ.get("XFORCE_HMAC_KEY_FILE", "").strip()
    if named:
        path = os.path.abspath(named)
        if not os.path.exists(path):
            raise ConfigError(
                f"no plate pseudonymisation key: XFORCE_HMAC_KEY_FILE names {path}, which does not exist "
                "(is the secret mounted?); set it to the file holding the key, or unset it"
            )
        return version, _usable(_read_key_file(path), f"the key file {path} (XFORCE_HMAC_KEY_FILE)")
    conn_key, conn_version = _key_from_airflow_connection()
    if conn_key:
        return conn_version or version, _usable(conn_key, f"the Airflow Connection {KEY_CONNECTION!r}")
    default = default_key_file()
    if os.path.exists(default):
        return version, _usable(_read_key_file(default), f"the development key file {default}")
    raise ConfigError(
        f"no plate pseudonymisation key: set XFORCE_HMAC_KEY (the key, at least {MIN_KEY_CHARS} characters) or "
        f"XFORCE_HMAC_KEY_FILE (a file holding it), or the Airflow Connection {KEY_CONNECTION!r} (password = the key); "
        f"no development key at {default} either (`make run`/`xforce run` create it under XFORCE_DATA_DIR)"
    )


def _usable(key: str, source: str) -> bytes:
    if len(key) < MIN_KEY_CHARS:
        raise ConfigError(
            f"no plate pseudonymisation key: {source} holds {len(key)} character(s), "
            f"a key needs at least {MIN_KEY_CHARS} (XFORCE_HMAC_KEY, XFORCE_HMAC_KEY_FILE)"
        )
    return key.encode("utf-8")


def _read_key_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:  # the reason, never the content
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"no plate pseudonymisation key: cannot read the key file {path}: {reason}") from None


def _in_airflow_task() -> bool:
    """Whether this process runs an Airflow task (the Task SDK's runner is talking to its supervisor).

    Looks only at modules already imported: outside a task nothing of Airflow is imported for this."""
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def _key_from_airflow_connection() -> tuple[str, str]:
    """``(key, version from the extra or "")`` of the Connection ``xforce_hmac_key``, or ``("", "")``."""
    if not (_in_airflow_task() or os.environ.get("AIRFLOW_CONN_" + KEY_CONNECTION.upper())):
        return "", ""
    return _connection_key(KEY_CONNECTION)


@functools.lru_cache(maxsize=4)
def _connection_key(conn_id: str) -> tuple[str, str]:
    """Looked up once per process (a task process is short-lived; a missing Connection is asked once)."""
    try:
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:  # pragma: no cover - plain-python use without Airflow
        return "", ""
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        return "", ""
    extra = conn.extra_dejson or {}
    return conn.password or "", str(extra.get("version") or "")
