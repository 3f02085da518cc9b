"""What a step of the exchange is given: settings, the force registry, the ledger and the zones.

Built once at the edge (an Airflow task, a CLI command) by :meth:`Context.from_env`; everything
below takes it, or the parts of it it needs, as an argument and looks nothing up itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xforce.intake.contracts import Registry, load_registry
from xforce.settings import Settings, hmac_key
from xforce.store.connections import Zones
from xforce.store.ledger import Ledger, open_ledger


@dataclass
class Context:
    settings: Settings
    registry: Registry
    ledger: Ledger
    zones: Zones = field(init=False)

    def __post_init__(self) -> None:
        self.zones = Zones(self.settings)

    @classmethod
    def from_env(cls) -> Context:
        """Settings from the environment; this process's ledger for them (migrated once)."""
        s = Settings.from_env()
        return cls(s, load_registry(s.config_dir), open_ledger(s.ledger_url, s.sql_dir))

    def plate_key(self) -> tuple[str, bytes]:
        """The plate key and its version (:func:`xforce.settings.hmac_key`), checked against the version's
        fingerprint in this ledger (recorded on first use; another key under it is refused:
        :func:`xforce.privacy.tokens.claim_key_version`, asked once per process)."""
        from xforce.privacy.tokens import claim_key_version  # numpy, pyarrow: only where tokens are made

        version, key = hmac_key()
        claim_key_version(self.ledger, version, key)
        return version, key
