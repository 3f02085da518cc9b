"""The schema-versioning policy (README "Reading the dataset"), enforced against a committed snapshot.

Within a version only additive changes are allowed: a new column that is nullable. Removing,
renaming, retyping a column, changing whether it may be null, reordering columns or dropping a
dataset is breaking: it needs a new ``SCHEMA_VERSION``, a new snapshot ``schemas/<version>/`` and
a new path for the data (``curated/<version>/dataset=…``), published beside the old one.

After an additive change, record it: ``.venv/bin/python tests/unit/test_schema_policy.py --write``.

The snapshot is also the data dictionary's source (:mod:`xforce.dictionary`): each column's
description, unit, time zone, privacy class and code list (``"suite"``: taken from the dataset's GX
suite). ``--write`` keeps those entries; a new column gets an empty description that the tests below
refuse until it is written. ``docs/data-dictionary.md`` is generated from it
(``.venv/bin/python -m xforce.dictionary --write``; the last tests fail when it is stale).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins"))

from xforce import dictionary  # noqa: E402
from xforce.schemas import SCHEMA_VERSION  # noqa: E402

#: Every dataset published in the curated zone (the three datasets and the completeness table).
CANONICAL = dictionary.PUBLISHED

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
        path = folder / f"{dataset}.json"
        old = {c["name"]: c for c in json.loads(path.read_text(encoding="utf-8"))["columns"]} if path.exists() else {}
        columns = []
        for col in describe(schema):  # the dictionary entries of a column are kept; a new one starts empty
            entry = old.get(str(col["name"]), {"description": ""})
            columns.append({**col, **{k: entry[k] for k in dictionary.ENTRY_KEYS if k in entry}})
        doc = {"dataset": dataset, "schema_version": SCHEMA_VERSION, "columns": columns}
        path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


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


# --------------------------------------------------------------------------- data dictionary
@pytest.mark.parametrize("dataset", sorted(CANONICAL))
def test_every_column_is_described(dataset: str) -> None:
    """A description, a known privacy class; a code list that the suite really has; units on times."""
    suite_codes = dictionary.code_lists(dataset)
    for col in snapshot(SCHEMA_VERSION)[dataset]:
        name = col["name"]
        assert str(col.get("description", "")).strip(), f"{dataset}.{name}: no description in schemas/"
        assert col.get("privacy") in dictionary.PRIVACY_CLASSES, f"{dataset}.{name}: privacy class"
        if col.get("code_list") is not None:
            assert col["code_list"] == "suite" and suite_codes.get(name), f"{dataset}.{name}: no code list in suite"
        if str(col["type"]).startswith("timestamp"):
            assert col.get("timezone") == "UTC", f"{dataset}.{name}: time zone"
    # every code list a suite enforces on a published column is in the dictionary
    described = {c["name"] for c in snapshot(SCHEMA_VERSION)[dataset] if c.get("code_list")}
    assert set(suite_codes) & set(CANONICAL[dataset].names) <= described


def test_tokens_and_locations_are_classed() -> None:
    for dataset in ("incidents", "anpr_reads", "seizures"):
        entries = {c["name"]: c for c in snapshot(SCHEMA_VERSION)[dataset]}
        for name, c in entries.items():
            if name.endswith("_token"):
                assert c["privacy"] == "pseudonymous", (dataset, name)
            if name in ("latitude", "longitude", "lsoa_code"):
                assert c["privacy"] == "location", (dataset, name)


@pytest.mark.parametrize("dataset", sorted(CANONICAL))
def test_field_metadata_carries_the_dictionary(dataset: str) -> None:
    schema = dictionary.field_metadata(dataset)
    assert schema.names == CANONICAL[dataset].names
    assert [f.type for f in schema] == [f.type for f in CANONICAL[dataset]]
    for f in schema:
        entry = dictionary.column_entry(dataset, f.name)
        assert f.metadata[b"description"].decode() == entry["description"]
        assert f.metadata[b"privacy"].decode() == entry["privacy"]
        if entry.get("code_list"):
            assert json.loads(f.metadata[b"code_list"]) == entry["code_list"]
    item = dictionary.field_metadata("seizures").field("item_type")
    assert json.loads(item.metadata[b"code_list"]) == ["dog", "vehicle", "equipment"]


def test_published_file_metadata_round_trips(tmp_path: Path) -> None:
    """What a writer gets from the dictionary survives a Parquet file, for pyarrow and polars."""
    import polars as pl
    import pyarrow.parquet as pq

    schema = CANONICAL["anpr_reads"]
    table = pa.table({f.name: pa.array([], f.type) for f in schema}, schema=schema)
    out = dictionary.with_file_metadata(table, "anpr_reads", "2026-11-26", "kent", "scheduled__x")
    pq.write_table(out, tmp_path / "part-0.parquet")
    read = pq.read_schema(tmp_path / "part-0.parquet")
    assert read.metadata[b"night"] == b"2026-11-26" and read.metadata[b"force"] == b"kent"
    assert read.metadata[b"schema_version"] == SCHEMA_VERSION.encode()
    assert read.metadata[b"suite_version"].startswith(b"sha256:")
    assert read.metadata[b"run_id"] == b"scheduled__x"
    assert read.field("plate_token").metadata[b"privacy"] == b"pseudonymous"
    assert pl.read_parquet_metadata(tmp_path / "part-0.parquet")["force"] == "kent"


def test_data_dictionary_page_is_current() -> None:
    page = dictionary.MARKDOWN
    assert page.is_file(), "docs/data-dictionary.md is missing: .venv/bin/python -m xforce.dictionary --write"
    assert page.read_text(encoding="utf-8") == dictionary.render_markdown(), (
        "docs/data-dictionary.md is stale: .venv/bin/python -m xforce.dictionary --write"
    )


# --------------------------------------------------------------------- types per reader
def test_partition_types_per_reader_as_the_guide_says(tmp_path: Path) -> None:
    """The analyst's guide's claims on how each locked reader types ``date`` and ``force``."""
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    part = tmp_path / "dataset=anpr_reads" / "date=2026-11-26" / "force=kent"
    part.mkdir(parents=True)
    pq.write_table(pa.table({"n": [1]}), part / "part-0.parquet")
    base = tmp_path / "dataset=anpr_reads"
    glob = (base / "**" / "*.parquet").as_posix()

    arrow = ds.dataset(base, format="parquet", partitioning="hive").schema
    assert arrow.field("date").type == pa.string() and arrow.field("force").type == pa.string()

    frame = pd.read_parquet(base)
    assert isinstance(frame["date"].dtype, pd.CategoricalDtype) and isinstance(
        frame["force"].dtype, pd.CategoricalDtype
    )

    rel = duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
    types = dict(zip(rel.columns, (str(t) for t in rel.types), strict=True))
    assert types["date"] == "DATE" and types["force"] == "VARCHAR" and types["dataset"] == "VARCHAR"

    lazy = pl.scan_parquet(glob, hive_partitioning=True).collect_schema()
    assert lazy["date"] == pl.Date and lazy["force"] == pl.String and lazy["dataset"] == pl.String

    guide = (ROOT / "docs" / "analyst-guide.md").read_text(encoding="utf-8")
    for claim in (
        'pyarrow (`ds.dataset(..., partitioning="hive")`): `date` and `force` are `string`',
        "pandas: `date` and `force` are `category`",
        "DuckDB (`hive_partitioning = true`): `date` is `DATE`",
        "polars (`hive_partitioning=True`): `date` is `Date`",
    ):
        assert claim in guide, claim


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_snapshot()
        print(f"wrote {SNAPSHOTS / SCHEMA_VERSION}")
