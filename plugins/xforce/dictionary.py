"""The data dictionary: what every published column means, from one source.

The source is ``schemas/<version>/<dataset>.json`` (one file per published dataset): per column its
name, type and nullability (the snapshot the schema policy checks against :data:`PUBLISHED`), and a
description, a unit, a time zone, a privacy class and, for coded columns, ``"code_list": "suite"``:
the code list itself is read from the dataset's Great Expectations suite
(``expectations/<dataset>.json``, ``expect_column_values_to_be_in_set``), the same place validation
takes it from, so the dictionary can never list other codes than the ones enforced.

From it come:

* :func:`field_metadata`: the canonical Arrow schema with each field's dictionary entry as field
  metadata (``description``, ``unit``, ``timezone``, ``privacy``, ``code_list``), for the writers;
* :func:`file_metadata`: the key-value metadata every published Parquet file carries (schema version,
  night, force, suite version, run id);
* :func:`render_markdown`: ``docs/data-dictionary.md`` (``python -m xforce.dictionary --write``; a
  test fails when the committed page is stale).

It also holds :data:`COMPLETENESS`, the schema of the ``completeness`` dataset (one row per force and
dataset of a night, see :mod:`xforce.exchange.completeness`), published beside the three datasets.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from xforce.schemas import CANONICAL, SCHEMA_VERSION, UTC_TS
from xforce.settings import PROJECT_ROOT, RUNTIME_ROOT

#: Where the dictionary's source lives (``schemas/<version>/``) and the suites' code lists: the
#: repository's folders, or the installed package's copies (:data:`xforce.settings.RUNTIME_ROOT`).
SCHEMAS_DIR = RUNTIME_ROOT / "schemas"
EXPECTATIONS_DIR = RUNTIME_ROOT / "expectations"
#: The generated page (checked by tests/unit/test_schema_policy.py; in a source checkout only).
MARKDOWN = PROJECT_ROOT / "docs" / "data-dictionary.md"

#: Privacy classes: what a column can reveal (docs/privacy.md).
PRIVACY_CLASSES = {
    "none": "reveals nothing about a person or vehicle on its own",
    "pseudonymous": "a keyed token (HMAC) standing for a number plate: links records, never shows the plate",
    "location": "a place; its precision is in the row's location_precision (exact, anonymised, none)",
    "free_text": "text written by a force; may name places",
    "lineage": "where the record came from (file, line, the force's own id)",
}

#: The completeness dataset's name in the curated zone (``dataset=completeness/date=<night>/``).
COMPLETENESS_DATASET = "completeness"
#: Statuses of an extract in the completeness table, worst first.
COMPLETENESS_STATUSES = ("failed", "quarantined", "missing", "late", "published_with_warnings", "published")

COMPLETENESS = pa.schema(
    [
        pa.field("night", pa.string(), nullable=False),
        pa.field("force", pa.string(), nullable=False),
        pa.field("force_name", pa.string()),
        pa.field("dataset_name", pa.string(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("received_at", UTC_TS),
        pa.field("cutoff_at", UTC_TS, nullable=False),
        pa.field("late", pa.bool_(), nullable=False),
        pa.field("minutes_after_cutoff", pa.int64()),
        pa.field("rows_in", pa.int64(), nullable=False),
        pa.field("rows_published", pa.int64(), nullable=False),
        pa.field("rows_quarantined", pa.int64(), nullable=False),
        pa.field(
            "reasons",
            pa.list_(pa.struct([pa.field("reason", pa.string()), pa.field("rows", pa.int64())])),
        ),
        pa.field("error", pa.string()),
        pa.field("warning", pa.string()),
        pa.field("sha256", pa.string()),
        pa.field("run_id", pa.string()),
    ]
)

#: Every dataset published in the curated zone, with its schema (the three datasets and completeness).
PUBLISHED: dict[str, pa.Schema] = {**CANONICAL, COMPLETENESS_DATASET: COMPLETENESS}

#: The keys of a column's entry beyond name, type and nullable (in this order in the snapshot).
ENTRY_KEYS = ("description", "unit", "timezone", "privacy", "code_list")


# ------------------------------------------------------------------------------------ read
@functools.lru_cache(maxsize=8)
def _load(schemas_dir: str, version: str) -> dict[str, list[dict[str, Any]]]:
    folder = Path(schemas_dir) / version
    return {p.stem: json.loads(p.read_text(encoding="utf-8"))["columns"] for p in sorted(folder.glob("*.json"))}


def entries(dataset: str, schemas_dir: str | Path = SCHEMAS_DIR) -> list[dict[str, Any]]:
    """The dictionary entries of ``dataset``'s columns, in column order (as in ``schemas/<version>/``)."""
    return _load(str(schemas_dir), SCHEMA_VERSION).get(dataset, [])


@functools.lru_cache(maxsize=8)
def _suite(dataset: str, expectations_dir: str) -> dict[str, Any]:
    path = Path(expectations_dir) / f"{dataset}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def code_lists(dataset: str, expectations_dir: str | Path = EXPECTATIONS_DIR) -> dict[str, list[Any]]:
    """``column -> allowed values`` of ``dataset``, as its suite enforces them (internal ``_`` columns left out)."""
    out: dict[str, list[Any]] = {}
    for exp in _suite(dataset, str(expectations_dir)).get("expectations", []):
        kind = exp.get("type") or exp.get("expectation_type")
        column = (exp.get("kwargs") or {}).get("column", "")
        if kind == "expect_column_values_to_be_in_set" and not column.startswith("_"):
            out[column] = list(exp["kwargs"]["value_set"])
    return out


def suite_version(dataset: str, expectations_dir: str | Path = EXPECTATIONS_DIR) -> str:
    """A short content hash of the dataset's row-level suite: which rules a file was validated with."""
    path = Path(expectations_dir) / f"{dataset}.json"
    if not path.is_file():
        return ""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def column_entry(
    dataset: str, column: str, schemas_dir: str | Path = SCHEMAS_DIR, expectations_dir: str | Path = EXPECTATIONS_DIR
) -> dict[str, Any]:
    """One column's entry, its code list resolved from the suite."""
    entry: dict[str, Any] = next(
        (dict(c) for c in entries(dataset, schemas_dir) if c["name"] == column), {"name": column}
    )
    if entry.get("code_list") == "suite":
        entry["code_list"] = code_lists(dataset, expectations_dir).get(column, [])
    return entry


# ---------------------------------------------------------------------------- for writers
def field_metadata(dataset: str, schemas_dir: str | Path = SCHEMAS_DIR) -> pa.Schema:
    """``dataset``'s canonical schema with each field's dictionary entry as field metadata.

    Keys (bytes, as Parquet stores them): ``description``, ``unit``, ``timezone``, ``privacy`` and
    ``code_list`` (JSON), each only when the entry has it. Readers that keep field metadata (pyarrow,
    polars' ``read_parquet_schema``) show it; the values are the same for every file of a version.
    """
    fields = []
    for f in PUBLISHED[dataset]:
        entry = column_entry(dataset, f.name, schemas_dir)
        meta = {}
        for key in ENTRY_KEYS:
            value = entry.get(key)
            if value not in (None, "", []):
                meta[key] = json.dumps(value) if isinstance(value, list) else str(value)
        fields.append(f.with_metadata(meta or None))
    return pa.schema(fields, metadata={"dataset": dataset, "schema_version": SCHEMA_VERSION})


def file_metadata(dataset: str, night: str, force: str | None, run_id: str | None) -> dict[str, str]:
    """The key-value metadata of one published file (schema version, night, force, suite version, run id)."""
    meta = {
        "dataset": dataset,
        "schema_version": SCHEMA_VERSION,
        "night": night,
        "suite_version": suite_version(dataset),
        "run_id": run_id or "",
    }
    if force is not None:
        meta["force"] = force
    return meta


def with_file_metadata(table: pa.Table, dataset: str, night: str, force: str | None, run_id: str | None) -> pa.Table:
    """``table`` cast to :func:`field_metadata` with :func:`file_metadata` attached (ready to write)."""
    schema = field_metadata(dataset).with_metadata(file_metadata(dataset, night, force, run_id))
    return table.select(schema.names).cast(schema)


# ------------------------------------------------------------------------------- markdown
def _type_of(f: pa.Field) -> str:
    return str(f.type)


def render_markdown(schemas_dir: str | Path = SCHEMAS_DIR, expectations_dir: str | Path = EXPECTATIONS_DIR) -> str:
    """``docs/data-dictionary.md``: every published dataset's columns, generated from ``schemas/``."""
    out = [
        "# Data dictionary",
        "",
        "<!-- Generated from schemas/"
        + SCHEMA_VERSION
        + "/*.json and the suites' code lists by `python -m xforce.dictionary --write`. Do not edit:"
        " tests/unit/test_schema_policy.py fails when this page is stale. -->",
        "",
        f"Schema version **{SCHEMA_VERSION}**. Every published dataset is Hive-partitioned: "
        "`curated/dataset=<dataset>/date=<night>/force=<force>/part-0.parquet` (the completeness table: "
        "`curated/dataset=completeness/date=<night>/part-0.parquet`). `date` and `force` are in the path, not "
        "in the files; how each reader types them is in the README (*Reading the dataset*).",
        "",
        "Times are UTC instants (`timestamp[us, tz=UTC]`); convert to Europe/London for local time. Each "
        "file carries its column entries as Parquet field metadata and, as key-value metadata, "
        "`schema_version`, `night`, `force`, `suite_version` and `run_id`.",
        "",
        "## Privacy classes",
        "",
        "| class | meaning |",
        "|---|---|",
        *(f"| `{k}` | {v} |" for k, v in PRIVACY_CLASSES.items()),
        "",
    ]
    for dataset, schema in PUBLISHED.items():
        out += [f"## `{dataset}`", "", "| column | type | null? | unit / time zone | privacy | description |"]
        out.append("|---|---|---|---|---|---|")
        for f in schema:
            entry = column_entry(dataset, f.name, schemas_dir, expectations_dir)
            unit = " ".join(str(entry[k]) for k in ("unit", "timezone") if entry.get(k))
            desc = str(entry.get("description", "")).replace("|", "\\|")
            codes = entry.get("code_list")
            if codes:
                desc += " Codes: " + ", ".join(f"`{c}`" for c in codes) + "."
            out.append(
                f"| `{f.name}` | `{_type_of(f)}` | {'yes' if f.nullable else 'no'} | {unit} | "
                f"{entry.get('privacy', '')} | {desc} |"
            )
        out.append("")
    return "\n".join(out)


def write_markdown(path: Path = MARKDOWN) -> Path:
    path.write_text(render_markdown(), encoding="utf-8")
    return path


if __name__ == "__main__":  # pragma: no cover - the developer's command
    if sys.argv[1:] == ["--write"]:
        print(f"wrote {write_markdown()}")
    else:
        sys.stdout.write(render_markdown())
