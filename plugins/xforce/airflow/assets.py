"""The hub's Airflow Assets, defined once: ``publish_night`` emits them, ``xforce_reports`` (and any
analyst's DAG) is scheduled on them.

Cheap to import at DAG-parse time (Airflow's SDK and the dataset names only).
"""

from __future__ import annotations

from airflow.sdk import Asset

from xforce.datasets import DATASETS


def curated_asset(dataset: str) -> Asset:
    """The curated dataset ``dataset`` as an Asset (one event per published night)."""
    return Asset(name=f"xforce_curated_{dataset}", uri=f"xforce://curated/dataset={dataset}")


#: One Asset per curated dataset, in :data:`xforce.schemas.DATASETS` order.
CURATED: list[Asset] = [curated_asset(d) for d in DATASETS]
