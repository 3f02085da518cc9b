"""Canonical schemas: one per dataset, the same for every force.

Versioned: additive changes (a new nullable column) stay within a version; anything else
(removing, renaming or retyping a column) needs a new ``SCHEMA_VERSION`` and a new path.
The partition columns ``dataset``, ``date`` and ``force`` live in the path, not in the files.
"""

from __future__ import annotations

import pyarrow as pa

from xforce.datasets import DATASETS as DATASETS  # re-exported: the canonical schemas are per dataset

SCHEMA_VERSION = "v1"

UTC_TS = pa.timestamp("us", tz="UTC")

_LINEAGE = [
    pa.field("record_id", pa.string(), nullable=False),
    pa.field("source_id", pa.string()),
    pa.field("force_code", pa.string(), nullable=False),
    pa.field("source_file", pa.string(), nullable=False),
    pa.field("source_record", pa.int64(), nullable=False),
]
_WHERE = [pa.field("latitude", pa.float64()), pa.field("longitude", pa.float64())]
_TOKEN = [pa.field("plate_key_version", pa.string())]

CANONICAL: dict[str, pa.Schema] = {
    "incidents": pa.schema(
        [
            *_LINEAGE,
            pa.field("occurred_at", UTC_TS, nullable=False),
            pa.field("time_precision", pa.string(), nullable=False),
            *_WHERE,
            pa.field("location_precision", pa.string(), nullable=False),
            pa.field("location_name", pa.string()),
            pa.field("lsoa_code", pa.string()),
            pa.field("offence", pa.string(), nullable=False),
            pa.field("outcome", pa.string()),
            pa.field("vehicle_token", pa.string()),
            *_TOKEN,
        ]
    ),
    "anpr_reads": pa.schema(
        [
            *_LINEAGE,
            pa.field("read_at", UTC_TS, nullable=False),
            pa.field("camera_id", pa.string(), nullable=False),
            *_WHERE,
            pa.field("plate_token", pa.string(), nullable=False),
            *_TOKEN,
        ]
    ),
    "seizures": pa.schema(
        [
            *_LINEAGE,
            pa.field("seized_at", UTC_TS, nullable=False),
            pa.field("incident_record_id", pa.string(), nullable=False),
            pa.field("item_type", pa.string(), nullable=False),
            pa.field("quantity", pa.int64()),
            pa.field("vehicle_token", pa.string()),
            *_TOKEN,
            *_WHERE,
        ]
    ),
}

#: Which canonical column holds each dataset's event time and its plate token.
TIME_COLUMN = {"incidents": "occurred_at", "anpr_reads": "read_at", "seizures": "seized_at"}
TOKEN_COLUMN = {"incidents": "vehicle_token", "anpr_reads": "plate_token", "seizures": "vehicle_token"}

_QUARANTINE_EXTRA = [pa.field("reason", pa.string(), nullable=False), pa.field("detail", pa.string())]


#: Columns with a value of their own on (nearly) every row: Parquet dictionary encoding is not tried on them
#: (it would build a dictionary of every value and then fall back to plain).
ROW_UNIQUE = frozenset({"record_id", "source_id", "source_record"})


def quarantine_schema(dataset: str) -> pa.Schema:
    """The quarantine table of a dataset: every canonical column nullable, plus why."""
    fields = [f.with_nullable(True) for f in CANONICAL[dataset]]
    fields = [f.with_nullable(False) if f.name in ("force_code", "source_file", "source_record") else f for f in fields]
    return pa.schema(fields + _QUARANTINE_EXTRA)
