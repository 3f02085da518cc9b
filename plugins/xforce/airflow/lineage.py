"""Lineage of a night's publish: OpenLineage datasets with facets, and the curated Assets' event metadata.

``publish_night`` is a TaskFlow task: the OpenLineage provider sees no inputs or outputs for it unless
it is told. This module tells it, from what the publish already wrote down, never from the data:

* **inputs**: the raw objects (``raw/<force>/<dataset>/<night>/<sha256>/<file>``, from the ledger's
  file refs) of every extract this run published, each with its size (and its row count when the
  extract is one file);
* **outputs**: the curated and quarantine partitions this run wrote, each with the columns and types
  of its file (``schema`` facet) and its row count (``outputStatistics``), from the manifest entries.

Counts, column names and types, paths and checksums only: never a value. The facets are built by
plain functions (:func:`night_lineage`, :func:`asset_extra`), turned into OpenLineage objects by
:func:`operator_lineage`, and handed to the provider by :func:`report_publish`, which the task's
adapter calls: it gives the running task a ``get_openlineage_facets_on_complete`` (the provider's
``DefaultExtractor`` reads it when the task succeeds) and puts the night's summary on each curated
Asset's event as ``extra``.

Nothing here is imported at DAG-parse time; Airflow and OpenLineage are imported inside functions.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from xforce.dictionary import suite_version
from xforce.exchange import publish
from xforce.schemas import CANONICAL, DATASETS, SCHEMA_VERSION, quarantine_schema
from xforce.store import layout

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pyarrow as pa

    from xforce.context import Context

log = logging.getLogger(__name__)

#: The curated Asset's event ``extra`` carries, per force, these manifest counts.
COUNTS = ("rows_in", "rows_published", "rows_quarantined")


@dataclass(frozen=True)
class LineageDataset:
    """One OpenLineage dataset: where it is (OpenLineage naming: ``namespace`` + ``name``) and what
    is known of it (counts, columns). ``kind`` is ``raw``, ``curated`` or ``quarantine``."""

    namespace: str
    name: str
    kind: str
    dataset: str
    force: str
    rows: int | None = None
    size: int | None = None
    columns: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NightLineage:
    """What one run's publish of a night read and wrote."""

    night: str
    run_id: str
    inputs: list[LineageDataset] = field(default_factory=list)
    outputs: list[LineageDataset] = field(default_factory=list)


def location(zone_uri: str, rel: str) -> tuple[str, str]:
    """OpenLineage's name for ``rel`` in a zone: ``("s3://bucket", "key")`` or ``("file", "/abs/path")``."""
    uri = zone_uri.rstrip("/")
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        return f"s3://{bucket}", "/".join(p for p in (prefix.strip("/"), rel) if p)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return "file", f"{uri}/{rel}"


def columns(schema: pa.Schema) -> tuple[tuple[str, str], ...]:
    """``(name, Arrow type)`` of each column of a file (the partition columns live in its path)."""
    return tuple((f.name, str(f.type)) for f in schema)


def published_here(entry: Mapping[str, Any], extract: Mapping[str, Any] | None, run_id: str) -> bool:
    """True when this run published the extract: published in the manifest, validated by this run
    (the ledger row's run id), not an earlier publication kept after a refused re-delivery."""
    return (
        entry.get("status") == "published"
        and not entry.get("redelivery_rejected")
        and extract is not None
        and extract.get("run_id") == run_id
    )


def night_lineage(
    night: str,
    run_id: str,
    manifests: Mapping[str, Mapping[str, Any]],
    extracts: Iterable[Mapping[str, Any]],
    zones: Mapping[str, str],
) -> NightLineage:
    """The inputs and outputs of this run's publish of ``night``.

    ``manifests`` is ``{dataset: the night's _manifest.json}``, ``extracts`` the ledger's rows of the
    night (their ``files``: ``name``, ``sha256``, ``bytes``, ``raw``), ``zones`` the ``raw``,
    ``curated`` and ``quarantine`` zone URIs. An extract refused whole, missing, failed or kept from
    an earlier run wrote no partition in this run and is not in the lineage.
    """
    rows = {(r["force"], r["dataset"]): r for r in extracts}
    out = NightLineage(night, run_id)
    for dataset in DATASETS:
        forces = (manifests.get(dataset) or {}).get("forces") or {}
        for force in sorted(forces):
            entry, extract = forces[force], rows.get((force, dataset))
            if not published_here(entry, extract, run_id):
                continue
            assert extract is not None
            files = [f for f in extract.get("files") or [] if f.get("raw")]
            for f in files:
                namespace, name = location(zones["raw"], str(f["raw"]))
                one = len(files) == 1 and extract.get("rows_in") is not None
                out.inputs.append(
                    LineageDataset(
                        namespace,
                        name,
                        "raw",
                        dataset,
                        force,
                        rows=int(extract["rows_in"]) if one else None,
                        size=int(f["bytes"]) if f.get("bytes") is not None else None,
                    )
                )
            part = layout.part_file(dataset, night, force)
            published = int(entry.get("rows_published") or 0)
            if entry.get("file") or published:
                namespace, name = location(zones["curated"], str(entry.get("file") or part))
                out.outputs.append(
                    LineageDataset(
                        namespace,
                        name,
                        "curated",
                        dataset,
                        force,
                        rows=published,
                        columns=columns(CANONICAL[dataset]),
                    )
                )
            quarantined = int(entry.get("rows_quarantined") or 0)
            if quarantined:
                namespace, name = location(zones["quarantine"], part)
                out.outputs.append(
                    LineageDataset(
                        namespace,
                        name,
                        "quarantine",
                        dataset,
                        force,
                        rows=quarantined,
                        columns=columns(quarantine_schema(dataset)),
                    )
                )
    return out


def asset_extra(night: str, run_id: str, dataset: str, manifest: Mapping[str, Any], suite: str = "") -> dict[str, Any]:
    """The curated Asset's event ``extra`` for one dataset: the night, each force's status and counts,
    the totals, the schema and suite versions (what ``xforce_reports`` or an analyst's DAG needs to
    know what was published without reading the manifest)."""
    forces = manifest.get("forces") or {}
    return {
        "night": night,
        "run_id": run_id,
        "dataset": dataset,
        "schema_version": manifest.get("schema_version") or SCHEMA_VERSION,
        "suite_version": suite,
        "forces": {
            f: {"status": e.get("status"), **{k: int(e.get(k) or 0) for k in COUNTS}} for f, e in sorted(forces.items())
        },
        "published_forces": sorted(f for f, e in forces.items() if e.get("status") == "published"),
        "totals": {k: int((manifest.get("totals") or {}).get(k) or 0) for k in COUNTS},
    }


# ------------------------------------------------------------------------------ OpenLineage
def operator_lineage(night_lineage: NightLineage) -> Any:
    """The provider's ``OperatorLineage`` for :class:`NightLineage`: ``InputDataset``s with an
    ``inputStatistics`` facet, ``OutputDataset``s with ``schema`` and ``outputStatistics`` facets."""
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        input_statistics_input_dataset,
        output_statistics_output_dataset,
        schema_dataset,
    )

    def schema(d: LineageDataset) -> dict[str, Any]:
        if not d.columns:
            return {}
        fields = [schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in d.columns]
        return {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)}

    inputs = [
        InputDataset(
            namespace=d.namespace,
            name=d.name,
            facets=schema(d),
            inputFacets={
                "inputStatistics": input_statistics_input_dataset.InputStatisticsInputDatasetFacet(
                    rowCount=d.rows, size=d.size, fileCount=1
                )
            },
        )
        for d in night_lineage.inputs
    ]
    outputs = [
        OutputDataset(
            namespace=d.namespace,
            name=d.name,
            facets=schema(d),
            outputFacets={
                "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=d.rows, size=d.size, fileCount=1
                )
            },
        )
        for d in night_lineage.outputs
    ]
    return OperatorLineage(inputs=inputs, outputs=outputs)


def _on_complete(found: NightLineage, task_instance: Any = None) -> Any:
    return operator_lineage(found)


# ----------------------------------------------------------------------------- in the task
def report_publish(ctx: Context, night: str, run_id: str) -> NightLineage:
    """Called by ``publish_night`` after the publish: its lineage for OpenLineage, and the night's
    summary on each curated Asset's event. Outside a running task (a test calling the adapter) only
    the lineage is returned."""
    manifests = {d: publish.read_manifest(ctx, d, night) for d in DATASETS}
    found = night_lineage(
        night,
        run_id,
        manifests,
        ctx.ledger.extracts(night),
        {"raw": ctx.settings.raw, "curated": ctx.settings.curated, "quarantine": ctx.settings.quarantine},
    )
    try:
        from airflow.sdk import get_current_context

        context: Any = get_current_context()
    except Exception:  # not in a running task
        return found
    from xforce.airflow.assets import curated_asset

    outlet_events = context.get("outlet_events")
    for dataset in DATASETS:
        if outlet_events is None:
            break
        suite = suite_version(dataset, ctx.settings.expectations_dir)
        extra = asset_extra(night, run_id, dataset, manifests[dataset], suite)
        outlet_events[curated_asset(dataset)].extra.update(extra)
    task = context.get("task")
    if task is not None:
        # the provider's DefaultExtractor calls this when the task succeeds (a TaskFlow task has none)
        task.get_openlineage_facets_on_complete = functools.partial(_on_complete, found)
    log.info(
        "lineage: %d raw object(s) in, %d partition(s) out (curated %d rows, quarantine %d rows)",
        len(found.inputs),
        len(found.outputs),
        sum(d.rows or 0 for d in found.outputs if d.kind == "curated"),
        sum(d.rows or 0 for d in found.outputs if d.kind == "quarantine"),
    )
    return found
