"""Where things live, read from the environment (or Airflow Variables/Connections in tasks).

Every location is a local path or an ``s3://bucket/prefix`` URI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from xforce.errors import ConfigError

#: The repository root: ``plugins/xforce/settings.py`` -> ``.``
PROJECT_ROOT = Path(__file__).resolve().parents[2]


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
            config_dir=_env("XFORCE_CONFIG_DIR", str(PROJECT_ROOT / "config")),
            expectations_dir=_env("XFORCE_EXPECTATIONS_DIR", str(PROJECT_ROOT / "expectations")),
            sql_dir=str(PROJECT_ROOT / "sql"),
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


def hmac_key() -> tuple[str, bytes]:
    """The plate-pseudonymisation key and its version.

    Read from ``XFORCE_HMAC_KEY``, else the file named by ``XFORCE_HMAC_KEY_FILE``, else,
    inside Airflow, the Connection ``xforce_hmac`` (password = key, extra ``{"version": "k1"}``).
    Never logged, never passed through XCom.
    """
    version = _env("XFORCE_HMAC_KEY_VERSION", "k1")
    key = os.environ.get("XFORCE_HMAC_KEY", "")
    key_file = os.environ.get("XFORCE_HMAC_KEY_FILE", "")
    if not key and key_file and os.path.exists(key_file):
        key = Path(key_file).read_text(encoding="utf-8").strip()
    if not key:
        key, version = _key_from_airflow_connection(version)
    if len(key) < 16:
        raise ConfigError(
            "no plate pseudonymisation key: set XFORCE_HMAC_KEY (at least 16 characters) "
            "or the Airflow Connection 'xforce_hmac'"
        )
    return version, key.encode("utf-8")


def _key_from_airflow_connection(version: str) -> tuple[str, str]:
    if not (os.environ.get("AIRFLOW_CONN_XFORCE_HMAC") or os.environ.get("AIRFLOW_HOME")):
        return "", version
    try:
        from airflow.sdk import Connection
    except ImportError:  # pragma: no cover - plain-python use without Airflow
        return "", version
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = Connection.get("xforce_hmac")
    except AirflowNotFoundException:
        return "", version
    extra = conn.extra_dejson or {}
    return conn.password or "", str(extra.get("version", version))
