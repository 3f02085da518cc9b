"""The schema-versioning policy (README "Reading the dataset"), enforced against a committed snapshot.

Within a version only additive changes are allowed: a new column that is nullable. Removing,
renaming, retyping a column, changing whether it may be null, reordering columns or dropping a
dataset is breaking: it needs a new ``SCHEMA_VERSION``, a new snapshot ``schemas/<version>/`` and
a new path for the data (``curated/<version>/dataset=…``), published beside the old one.

After an additive change, record it: ``.venv/bin/python tests/unit/test_schema_policy.py --write``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins"))

from xforce.schemas import CANONICAL, SCHEMA_VERSION  # noqa: E402

pytestmark = pytest.mark.unit

SNAPSHOTS = ROOT / "schemas"


def describe(schema: pa.Schema) -> list[dict[str, object]]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in schema]


def breaking_changes(old: list[dict[str, object]], new: list[dict[str, object]]) -> list[str]:
    """Why ``new`` is not an additive change of ``old`` (empty: it is)."""
    problems = []
    new_by_name = {c["name"]: c for c in new}
    for col in old:
        now = new_by_name.get(str(col["name"]))
        if now is None:
            problems.append(f"column {col['name']} removed or renamed")
        elif now["type"] != col["type"]:
            problems.append(f"column {col['name']} retyped {col['type']} -> {now['type']}")
        elif now["nullable"] != col["nullable"]:
            problems.append(f"column {col['name']} nullable {col['nullable']} -> {now['nullable']}")
    kept = [c["name"] for c in new if c["name"] in {o["name"] for o in old}]
    if not problems and kept != [c["name"] for c in old]:
        problems.append(f"columns reordered: {kept}")
    old_names = {o["name"] for o in old}
    for col in new:
        if col["name"] not in old_names and not col["nullable"]:
            problems.append(f"new column {col['name']} is not nullable")
    return problems


def snapshot(version: str) -> dict[str, list[dict[str, object]]]:
    folder = SNAPSHOTS / version
    return {p.stem: json.loads(p.read_text(encoding="utf-8"))["columns"] for p in sorted(folder.glob("*.json"))}


def write_snapshot() -> None:
    folder = SNAPSHOTS / SCHEMA_VERSION
    folder.mkdir(parents=True, exist_ok=True)
    for dataset, schema in CANONICAL.items():
        doc = {"dataset": dataset, "schema_version": SCHEMA_VERSION, "columns": describe(schema)}
        (folder / f"{dataset}.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


def test_current_schema_is_an_additive_change_of_its_snapshot() -> None:
    recorded = snapshot(SCHEMA_VERSION)
    assert recorded, f"no snapshot for schema version {SCHEMA_VERSION}: add schemas/{SCHEMA_VERSION}/"
    assert set(recorded) == set(CANONICAL), "a dataset was added or removed: record it (or version it)"
    for dataset, columns in recorded.items():
        problems = breaking_changes(columns, describe(CANONICAL[dataset]))
        assert not problems, (
            f"{dataset}: breaking change within {SCHEMA_VERSION}: {problems}; "
            "bump SCHEMA_VERSION and publish under a new version path (README, Reading the dataset)"
        )


def test_the_latest_snapshot_is_the_current_version() -> None:
    versions = sorted((p.name for p in SNAPSHOTS.iterdir() if p.is_dir()), key=lambda v: int(v.lstrip("v")))
    assert versions and versions[-1] == SCHEMA_VERSION


BASE = [
    {"name": "record_id", "type": "string", "nullable": False},
    {"name": "read_at", "type": "timestamp[us, tz=UTC]", "nullable": False},
    {"name": "speed", "type": "double", "nullable": True},
]


@pytest.mark.parametrize(
    ("new", "ok"),
    [
        (BASE, True),
        ([*BASE, {"name": "lane", "type": "int64", "nullable": True}], True),  # nullable addition
        ([BASE[0], {"name": "lane", "type": "int64", "nullable": True}, *BASE[1:]], True),  # inserted
        ([*BASE, {"name": "lane", "type": "int64", "nullable": False}], False),  # required addition
        (BASE[:2], False),  # removed
        ([BASE[0], BASE[1], {**BASE[2], "name": "speed_kmh"}], False),  # renamed
        ([BASE[0], BASE[1], {**BASE[2], "type": "float"}], False),  # retyped
        ([BASE[0], {**BASE[1], "nullable": True}, BASE[2]], False),  # loosened
        ([BASE[0], BASE[1], {**BASE[2], "nullable": False}], False),  # tightened
        ([BASE[1], BASE[0], BASE[2]], False),  # reordered
    ],
)
def test_policy_rules(new: list[dict[str, object]], ok: bool) -> None:
    assert (not breaking_changes(BASE, new)) is ok


def test_old_files_read_under_the_current_schema(tmp_path: Path) -> None:
    """What makes additive changes safe: a file written before a new column reads it as null."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    current = CANONICAL["anpr_reads"]
    older = pa.schema([f for f in current if f.name != "plate_key_version"])
    part = tmp_path / "dataset=anpr_reads" / "date=2026-01-01" / "force=kent"
    part.mkdir(parents=True)
    row = {f.name: [None] for f in older}
    row.update(record_id=["kent:1"], force_code=["kent"], source_file=["a.csv"], source_record=[1])
    row.update(camera_id=["C1"], plate_token=["ab" * 32], read_at=[pa.scalar(0, pa.timestamp("us", tz="UTC"))])
    pq.write_table(
        pa.table({k: pa.array(v, older.field(k).type) for k, v in row.items()}, schema=older), part / "p.parquet"
    )
    table = ds.dataset(
        tmp_path / "dataset=anpr_reads", format="parquet", partitioning="hive", schema=current
    ).to_table()
    assert table.column("plate_key_version").to_pylist() == [None]


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_snapshot()
        print(f"wrote {SNAPSHOTS / SCHEMA_VERSION}")
