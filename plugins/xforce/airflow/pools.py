"""The hub's Airflow pool: how many extracts validate at once on a deployment.

Each validate task (``validate_incidents``, ``validate_anpr_reads``, ``validate_seizures``) holds a
Great Expectations worker process and a batch in memory; under LocalExecutor or Celery, thirteen at
once took about 9.5 GB. The validate tasks run in the pool :data:`VALIDATE_POOL`, sized by
``intake.validate_slots`` in ``config/forces.yaml``. A pool must exist before a scheduler can queue
its tasks (Airflow leaves tasks of an unknown pool unscheduled), so every way of starting the hub
creates it after migrating the metadata database: ``xforce run``/``backfill``,
``xforce up``, ``xforce pools`` (compose's init step, Celery deployments).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xforce.intake.contracts import Registry

VALIDATE_POOL = "xforce_validate"


def ensure_pools(registry: Registry) -> dict[str, int]:
    """Create or resize the hub's pools in Airflow's metadata database (configured by env); name -> slots."""
    from airflow.models.pool import Pool

    slots = int(registry.intake.validate_slots)
    Pool.create_or_update_pool(
        VALIDATE_POOL,
        slots=slots,
        description="xforce: extracts validated at once (intake.validate_slots in config/forces.yaml)",
        include_deferred=False,
    )
    return {VALIDATE_POOL: slots}
