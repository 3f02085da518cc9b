"""What a step of the exchange is given: settings, the force registry, the ledger and the zones.

Built once at the edge (an Airflow task, a CLI command) by :meth:`Context.from_env`; everything
below takes it, or the parts of it it needs, as an argument and looks nothing up itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xforce.intake.contracts import Registry, load_registry
from xforce.settings import Settings
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
