"""The lineage of a publish, built from manifests and ledger rows (``xforce.airflow.lineage``), and the
OpenLineage settings every Airflow process gets (``xforce.airflow.env.lineage_env``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xforce.airflow.env import airflow_env, lineage_env, lineage_file
from xforce.airflow.lineage import asset_extra, location, night_lineage
from xforce.schemas import CANONICAL, quarantine_schema
from xforce.settings import Settings

pytestmark = pytest.mark.unit

NIGHT, RUN = "2026-11-27", "manual__2026-11-28T02:30:00+00:00"
ZONES = {"raw": "/d/raw", "curated": "s3://xf-curated/hub", "quarantine": "file:///d/quarantine"}
PART = f"dataset=anpr_reads/date={NIGHT}/force=%s/part-0.parquet"


def _files(force: str, n: int) -> list[dict]:
    return [
        {"name": f"r{i}.csv", "sha256": "ab" * 32, "bytes": 100 + i, "raw": f"{force}/anpr_reads/{NIGHT}/x/r{i}.csv"}
        for i in range(n)
    ]


def _world() -> tuple[dict, list[dict]]:
    forces = {
        # published by this run: one file, rows in both zones
        "norfolk": {"status": "published", "rows_in": 10, "rows_published": 8, "rows_quarantined": 2,
                    "file": PART % "norfolk"},
        # published by this run from two files, nothing quarantined
        "suffolk": {"status": "published", "rows_in": 5, "rows_published": 5, "rows_quarantined": 0,
                    "file": PART % "suffolk"},
        # a refused re-delivery: the earlier publication kept, not written by this run
        "kent": {"status": "published", "rows_in": 4, "rows_published": 4, "rows_quarantined": 0,
                 "file": PART % "kent", "redelivery_rejected": {"error": "empty"}},
        # published by an earlier run, untouched
        "essex": {"status": "published", "rows_in": 3, "rows_published": 3, "rows_quarantined": 0,
                  "file": PART % "essex"},
        "bedfordshire": {"status": "quarantined", "rows_in": None, "error": "not gzip"},
        "hertfordshire": {"status": "missing"},
    }  # fmt: skip
    manifest = {
        "dataset": "anpr_reads",
        "night": NIGHT,
        "schema_version": "v1",
        "forces": forces,
        "totals": {"rows_in": 22, "rows_published": 20, "rows_quarantined": 2},
    }
    extracts = [
        {"force": "norfolk", "dataset": "anpr_reads", "run_id": RUN, "rows_in": 10, "files": _files("norfolk", 1)},
        {"force": "suffolk", "dataset": "anpr_reads", "run_id": RUN, "rows_in": 5, "files": _files("suffolk", 2)},
        {"force": "kent", "dataset": "anpr_reads", "run_id": RUN, "rows_in": 4, "files": _files("kent", 1)},
        {"force": "essex", "dataset": "anpr_reads", "run_id": "an_earlier_run", "rows_in": 3,
         "files": _files("essex", 1)},
        {"force": "bedfordshire", "dataset": "anpr_reads", "run_id": RUN, "files": _files("bedfordshire", 1)},
    ]  # fmt: skip
    return {"anpr_reads": manifest}, extracts


def test_location_follows_openlineage_naming() -> None:
    assert location("/d/raw", "a/b.csv") == ("file", "/d/raw/a/b.csv")
    assert location("file:///d/raw/", "a/b.csv") == ("file", "/d/raw/a/b.csv")
    assert location("s3://bucket/pre/fix/", "a/b") == ("s3://bucket", "pre/fix/a/b")
    assert location("s3://bucket", "a/b") == ("s3://bucket", "a/b")


def test_only_what_this_run_published_with_counts_and_schemas() -> None:
    manifests, extracts = _world()
    found = night_lineage(NIGHT, RUN, manifests, extracts, ZONES)

    assert {(d.force, d.name) for d in found.inputs} == {
        ("norfolk", f"/d/raw/norfolk/anpr_reads/{NIGHT}/x/r0.csv"),
        ("suffolk", f"/d/raw/suffolk/anpr_reads/{NIGHT}/x/r0.csv"),
        ("suffolk", f"/d/raw/suffolk/anpr_reads/{NIGHT}/x/r1.csv"),
    }
    by_name = {d.name: d for d in found.inputs}
    assert by_name[f"/d/raw/norfolk/anpr_reads/{NIGHT}/x/r0.csv"].rows == 10  # one file: the extract's rows
    assert by_name[f"/d/raw/suffolk/anpr_reads/{NIGHT}/x/r1.csv"].rows is None  # two files: per-file rows unknown
    assert by_name[f"/d/raw/suffolk/anpr_reads/{NIGHT}/x/r1.csv"].size == 101
    assert all(d.namespace == "file" and d.kind == "raw" and not d.columns for d in found.inputs)

    outputs = {(d.kind, d.force): d for d in found.outputs}
    assert set(outputs) == {("curated", "norfolk"), ("quarantine", "norfolk"), ("curated", "suffolk")}
    curated = outputs[("curated", "norfolk")]
    assert (curated.namespace, curated.name) == ("s3://xf-curated", "hub/" + PART % "norfolk")
    assert curated.rows == 8
    assert [c for c, _ in curated.columns] == CANONICAL["anpr_reads"].names
    assert dict(curated.columns)["read_at"] == "timestamp[us, tz=UTC]"
    quarantine = outputs[("quarantine", "norfolk")]
    assert (quarantine.namespace, quarantine.name) == ("file", "/d/quarantine/" + PART % "norfolk")
    assert quarantine.rows == 2
    assert [c for c, _ in quarantine.columns] == quarantine_schema("anpr_reads").names
    assert outputs[("curated", "suffolk")].rows == 5


def test_nothing_published_here_means_no_lineage() -> None:
    manifests, extracts = _world()
    found = night_lineage(NIGHT, "another_run", manifests, extracts, ZONES)
    assert found.inputs == [] and found.outputs == []
    assert night_lineage(NIGHT, RUN, {}, [], ZONES).outputs == []


def test_asset_extra_carries_night_forces_counts_and_versions_and_no_error_text() -> None:
    manifests, _ = _world()
    extra = asset_extra(NIGHT, RUN, "anpr_reads", manifests["anpr_reads"], "sha256:0123456789ab")
    assert extra["night"] == NIGHT and extra["run_id"] == RUN and extra["dataset"] == "anpr_reads"
    assert extra["schema_version"] == "v1" and extra["suite_version"] == "sha256:0123456789ab"
    assert extra["published_forces"] == ["essex", "kent", "norfolk", "suffolk"]
    assert extra["forces"]["norfolk"] == {"status": "published", "rows_in": 10, "rows_published": 8,
                                          "rows_quarantined": 2}  # fmt: skip
    assert extra["forces"]["hertfordshire"] == {"status": "missing", "rows_in": 0, "rows_published": 0,
                                                "rows_quarantined": 0}  # fmt: skip
    assert extra["totals"] == {"rows_in": 22, "rows_published": 20, "rows_quarantined": 2}
    assert "not gzip" not in json.dumps(extra)  # statuses and counts only


def _settings(tmp_path: Path) -> Settings:
    d = str(tmp_path / "data")
    return Settings(d, *(f"{d}/{z}" for z in ("landing", "raw", "staging", "curated", "quarantine", "docs")),
                    "sqlite://", d, d, d)  # fmt: skip


def test_lineage_goes_to_a_local_file_by_default(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    env = lineage_env(settings, {})
    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    assert transport == {"type": "file", "log_file_path": lineage_file(settings), "append": True}
    assert transport["log_file_path"] == str(tmp_path / "data" / "lineage" / "events.jsonl")
    assert (tmp_path / "data" / "lineage").is_dir()
    assert env["AIRFLOW__OPENLINEAGE__NAMESPACE"] == "xforce"
    assert "AIRFLOW__OPENLINEAGE__DISABLED" not in env

    elsewhere = lineage_env(settings, {"XFORCE_LINEAGE": str(tmp_path / "ol" / "night.jsonl")})
    assert json.loads(elsewhere["AIRFLOW__OPENLINEAGE__TRANSPORT"])["log_file_path"] == str(
        tmp_path / "ol" / "night.jsonl"
    )
    chosen = '{"type": "console"}'
    assert "AIRFLOW__OPENLINEAGE__TRANSPORT" not in lineage_env(settings, {"AIRFLOW__OPENLINEAGE__TRANSPORT": chosen})


def test_xforce_lineage_off_disables_the_provider_even_over_a_transport(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    base = {"XFORCE_LINEAGE": "off", "AIRFLOW__OPENLINEAGE__TRANSPORT": '{"type": "console"}'}
    env = airflow_env(settings, base)
    assert env["AIRFLOW__OPENLINEAGE__DISABLED"] == "True"
    assert not (tmp_path / "data" / "lineage").exists()
    on = airflow_env(settings, {})
    assert json.loads(on["AIRFLOW__OPENLINEAGE__TRANSPORT"])["type"] == "file"
