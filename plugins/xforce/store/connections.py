"""Airflow Connections -> storage settings: which endpoint and credentials reach an S3 location.

* The hub's own zones use the standard AWS settings (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
  ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, config files, instance roles), or the
  Airflow Connection named by ``XFORCE_S3_CONN_ID`` when it is set.
* A force's landing location may have its own Connection (``XFORCE_LANDING_CONN_<FORCE>``): its
  own account, credentials and endpoint.

Connections follow the Amazon provider's ``aws`` conventions: login = access key id, password =
secret access key, extra ``{"endpoint_url": ..., "region_name": ..., "aws_session_token": ...}``
(``service_config.s3.endpoint_url`` is honoured too). Airflow is imported only when a Connection
is actually named; secrets are never logged.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from xforce.errors import ConfigError
from xforce.store.s3 import S3Config, policy_from_env
from xforce.store.zones import PRIVATE_ZONES, Zone, loose_permissions

if TYPE_CHECKING:
    from xforce.settings import Settings


def default_s3_config() -> S3Config:
    """The hub's S3 settings: ``XFORCE_S3_CONN_ID``'s Connection, else the standard AWS environment."""
    conn_id = (os.environ.get("XFORCE_S3_CONN_ID") or "").strip()
    return s3_config_from_connection(conn_id) if conn_id else S3Config.from_env()


@functools.lru_cache(maxsize=32)
def s3_config_from_connection(conn_id: str) -> S3Config:
    """S3 settings from an Airflow Connection of type ``aws`` (cached per process)."""
    conn = _get_connection(conn_id)
    extra: dict[str, Any] = dict(conn.get("extra") or {})
    service = (extra.get("service_config") or {}).get("s3") or {}
    env = S3Config.from_env()
    return S3Config(
        endpoint_url=service.get("endpoint_url") or extra.get("endpoint_url") or env.endpoint_url,
        region=extra.get("region_name") or env.region,
        access_key=conn.get("login") or extra.get("aws_access_key_id") or None,
        secret_key=conn.get("password") or extra.get("aws_secret_access_key") or None,
        session_token=extra.get("aws_session_token") or None,
        source=f"connection {conn_id}",
        **policy_from_env(),
    )


def _get_connection(conn_id: str) -> dict[str, Any]:
    try:
        from airflow.sdk import Connection
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError as exc:  # pragma: no cover - Airflow is a dependency of the package
        raise ConfigError(f"Airflow is needed to read Connection {conn_id!r}: {exc}") from exc
    try:
        conn = Connection.get(conn_id)
    except AirflowNotFoundException:
        raise ConfigError(f"Airflow Connection {conn_id!r} is not defined") from None
    return {
        "conn_type": conn.conn_type,
        "login": conn.login,
        "password": conn.password,
        "host": conn.host,
        "port": conn.port,
        "schema": conn.schema,
        "extra": conn.extra_dejson or {},
    }


def connection_fields(conn_id: str) -> dict[str, Any]:
    """An Airflow Connection's fields as a plain dict (type, login, password, host, port, schema, extra)."""
    return _get_connection(conn_id)


def open_zone(uri: str, *, private: bool = False) -> Zone:
    """The hub's zone at ``uri`` (a local folder, or S3 reached with :func:`default_s3_config`).

    ``private``: local files 0600 and folders 0700 (the restricted zone; ``Zone.private``).
    """
    if uri.startswith("s3://"):
        return Zone(uri, s3=default_s3_config(), private=private)
    return Zone(uri, private=private)


#: The hub's own zones, as named in settings, ``config/retention.yaml`` and the docs.
ZONE_NAMES = ("landing", "raw", "staging", "curated", "quarantine", "docs", "restricted")


class Zones:
    """The hub's zones for one set of settings, each opened once, when first used."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def named(self, name: str) -> Zone:
        """A zone by name (one of :data:`ZONE_NAMES`)."""
        if name not in ZONE_NAMES:
            raise ConfigError(f"no zone named {name!r} (zones: {', '.join(ZONE_NAMES)})")
        zone: Zone = getattr(self, name)
        return zone

    @functools.cached_property
    def landing(self) -> Zone:
        return open_zone(self.settings.landing)

    @functools.cached_property
    def raw(self) -> Zone:
        return open_zone(self.settings.raw, private=True)  # the forces' files as sent: clear plates

    @functools.cached_property
    def staging(self) -> Zone:
        return open_zone(self.settings.staging)

    @functools.cached_property
    def curated(self) -> Zone:
        return open_zone(self.settings.curated)

    @functools.cached_property
    def quarantine(self) -> Zone:
        return open_zone(self.settings.quarantine)

    @functools.cached_property
    def docs(self) -> Zone:
        return open_zone(self.settings.docs)

    @functools.cached_property
    def restricted(self) -> Zone:
        return open_zone(self.settings.restricted, private=True)


def key_file(data_dir: str) -> str:
    """The key file: ``XFORCE_HMAC_KEY_FILE``, else the development key ``<data dir>/secrets/hmac.key``."""
    return (os.environ.get("XFORCE_HMAC_KEY_FILE") or "").strip() or os.path.join(data_dir, "secrets", "hmac.key")


def loose_zone_permissions(settings: Settings) -> list[dict[str, str]]:
    """:func:`xforce.store.zones.loose_permissions` for these settings' raw and restricted zones and key file."""
    return loose_permissions({name: getattr(settings, name) for name in PRIVATE_ZONES}, key_file(settings.data_dir))


def landing_for(settings: Settings, force: str) -> tuple[Zone, str]:
    """Where ``force`` delivers: the zone to read and the folder of its ``<dataset>/<night>/`` inside it.

    By default that is the shared landing zone and the force's folder in it. With
    ``XFORCE_LANDING_URI_<FORCE>`` the force has its own location (its root holds
    ``<dataset>/<night>/``); ``XFORCE_LANDING_CONN_<FORCE>`` names the Connection that reaches it.
    """
    uri, conn_id, base = settings.landing_location(force)
    if not uri.startswith("s3://"):
        if conn_id:
            raise ConfigError(f"{force}: a landing Connection only applies to an s3:// location, not {uri!r}")
        return Zone(uri), base
    if not conn_id:
        return open_zone(uri), base
    return Zone(uri, s3=s3_config_from_connection(conn_id)), base
