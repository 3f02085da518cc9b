"""Data quality through the pipeline's own functions: each kind of defect and drift and its exact outcome.

Small hand-written extracts land in a fresh data dir and go through ``land_extract``,
``process_extract`` and ``publish_night``; each test asserts what the ledger, the manifest, the
quarantine and the night's validation results (docs zone) say: a row quarantined with its reason,
the extract quarantined, or a warning flagged. Also: the deadline alert and its Airflow callback,
the Data Docs page, and that a night with 30 stored nights of history does the same work as with one.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from xforce import context
from xforce.airflow.callbacks import on_validate_skipped
from xforce.exchange import land, publish
from xforce.exchange.process import process_extract
from xforce.outcome import Outcome
from xforce.quality import docs_site
from xforce.quality.config import load_config
from xforce.quality.deadlines import alert_missing_extract
from xforce.settings import PROJECT_ROOT
from xforce.store import layout

pytestmark = pytest.mark.component

NIGHT = "2026-11-27"
PLATES = ["AB12CDE", "XY51ABC", "KL65MNO", "PR70STU"]
ANPR_HEADER = ["read_id", "read_at", "camera_id", "latitude", "longitude", "vrm"]
INC_HEADER = ["incident_id", "occurred_at", "latitude", "longitude", "offence_code", "outcome_code", "vehicle_reg"]
SZ_HEADER = ["seizure_id", "incident_id", "seized_at", "item_code", "quantity", "vrm", "latitude", "longitude"]


# ------------------------------------------------------------------------------- helpers
@pytest.fixture
def ctx(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> context.Context:
    monkeypatch.delenv("XFORCE_DOCS_URI", raising=False)
    monkeypatch.delenv("XFORCE_CONFIG_DIR", raising=False)
    return context.Context.from_env()


def anpr(n: int, night: str = NIGHT, start: int = 1) -> list[list[str]]:
    d = night.replace("-", "")
    return [
        [
            f"NFK-ANPR-{d}-{i:08d}",
            f"{night}T{i % 24:02d}:{i % 60:02d}:00Z",
            "NFK-CAM-0001",
            "52.6",
            "1.0",
            PLATES[i % 4],
        ]
        for i in range(start, start + n)
    ]


def incidents(n: int = 3, night: str = NIGHT) -> list[list[str]]:
    d = night.replace("-", "")
    return [
        [f"NFK-INC-{d}-{i:06d}", f"{night}T2{i}:00:00Z", "52.6", "1.0", "HC", "UI", PLATES[i % 4]]
        for i in range(1, n + 1)
    ]


def write(ctx: context.Context, force: str, dataset: str, header: list[str] | None, rows: list[list[str]],
          night: str = NIGHT, name: str | None = None, sep: str = ",") -> None:  # fmt: skip
    folder = Path(ctx.settings.landing) / force / dataset / night
    folder.mkdir(parents=True, exist_ok=True)
    lines = ([sep.join(header)] if header is not None else []) + [sep.join(r) for r in rows]
    (folder / (name or f"{dataset}.csv")).write_text("\n".join(lines) + "\n", encoding="utf-8")


def process(ctx: context.Context, force: str, dataset: str, run_id: str, night: str = NIGHT) -> Outcome:
    ref = land.land_extract(ctx, night, force, dataset, run_id)
    return process_extract(ctx, ref, run_id)


def run(ctx: context.Context, *extracts: tuple[str, str], night: str = NIGHT) -> str:
    """Land, process and publish the given extracts (others of the night stay missing)."""
    run_id = f"test__{uuid.uuid4().hex[:8]}"
    for force, dataset in extracts:
        process(ctx, force, dataset, run_id, night)
    publish.publish_night(ctx, night, run_id)
    return run_id


def results(ctx: context.Context, force: str, dataset: str, night: str = NIGHT) -> dict[str, Any]:
    doc = docs_site.read_results(ctx.zones.docs, night, force, dataset)
    assert doc is not None
    return doc


def manifest(ctx: context.Context, dataset: str, night: str = NIGHT) -> dict[str, Any]:
    doc: dict[str, Any] = ctx.zones.curated.read_json(f"dataset={dataset}/date={night}/_manifest.json")
    return doc


def quarantined(ctx: context.Context, force: str, dataset: str, night: str = NIGHT) -> dict[str, str]:
    rel = layout.part_file(dataset, night, force)
    t = ctx.zones.quarantine.read_parquet(rel)
    return dict(zip(t.column("source_id").to_pylist(), t.column("reason").to_pylist(), strict=True))


def events(ctx: context.Context, kind: str, night: str = NIGHT) -> list[dict[str, Any]]:
    return [e for e in ctx.ledger.events(night) if e["event"] == kind]


def with_config(ctx: context.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **drift: str) -> None:
    """A copy of config/ whose quality.yaml sets the given schema_drift actions (policy is configuration)."""
    import yaml

    conf = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", conf)
    doc = yaml.safe_load((conf / "quality.yaml").read_text())
    doc["schema_drift"].update(drift)
    (conf / "quality.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.setenv("XFORCE_CONFIG_DIR", str(conf))
    ctx.settings = dataclasses.replace(ctx.settings, config_dir=str(conf))


# ------------------------------------------------------------------------ row-level defects
def test_clean_extract_publishes_with_results_and_data_docs(ctx: context.Context) -> None:
    write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, anpr(30))
    run(ctx, ("norfolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None
    assert (row["status"], row["rows_published"], row["rows_quarantined"], row["warning"]) == ("published", 30, 0, None)
    res = results(ctx, "norfolk", "anpr_reads")
    assert res["rows"] == {"in": 30, "published": 30, "quarantined": 0}
    assert res["row_level"] and all(r["success"] and r["evaluated"] == 30 for r in res["row_level"])
    assert all(t["success"] for t in res["table_level"]) and res["drift"]["checked"] is True
    page = ctx.zones.docs.read_bytes(layout.validation_page(NIGHT)).decode()
    assert 'id="norfolk-anpr_reads"' in page and "expect_column_values_to_match_regex" in page
    assert '<a href="date=2026-11-27/index.html">' in ctx.zones.docs.read_bytes("validation/index.html").decode()


def test_row_defects_quarantine_rows_with_their_reasons(ctx: context.Context) -> None:
    rows = anpr(30)
    rows[0][0] = "NFK ANPR 1!"  # bad id format (new in the suite)
    rows[1][2] = "CAM #7 west"  # bad camera id
    rows[2][5] = "12345678901"  # bad plate
    rows[3][3] = "55.95"  # Edinburgh
    write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, rows)
    run(ctx, ("norfolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and row["status"] == "published"  # rows, never the whole file
    assert (row["rows_published"], row["rows_quarantined"]) == (26, 4)
    assert row["reasons"] == {"bad_id": 2, "bad_plate": 1, "out_of_region": 1}
    q = quarantined(ctx, "norfolk", "anpr_reads")
    assert q == {
        "NFK ANPR 1!": "bad_id",
        rows[1][0]: "bad_id",
        rows[2][0]: "bad_plate",
        rows[3][0]: "out_of_region",
    }
    res = results(ctx, "norfolk", "anpr_reads")
    assert res["row_ids"]["bad_plate"] == [f"norfolk:{rows[2][0]}"]
    assert sorted(res["row_ids"]["bad_id"]) == sorted(["norfolk:NFK ANPR 1!", f"norfolk:{rows[1][0]}"])
    failing = {(r["column"], r["reason"]): r["unexpected"] for r in res["row_level"] if not r["success"]}
    assert failing == {("source_id", "bad_id"): 1, ("camera_id", "bad_id"): 1, ("plate", "bad_plate"): 1,
                       ("latitude", "out_of_region"): 1}  # fmt: skip
    docs = "".join(p.read_text() for p in Path(ctx.settings.docs).rglob("*") if p.is_file())
    assert not any(p in docs for p in [*PLATES, "12345678901"])  # counts and ids, never values


def test_seizure_before_its_incident_is_flagged_not_quarantined(ctx: context.Context) -> None:
    write(ctx, "norfolk", "incidents", INC_HEADER, incidents(2))  # at 21:00 and 22:00
    sz = [
        ["NFK-SZ-20261127-000001", "NFK-INC-20261127-000002", f"{NIGHT}T21:30:00Z", "DOG", "2", "", "52.6", "1.0"],
        ["NFK-SZ-20261127-000002", "NFK-INC-20261127-000001", f"{NIGHT}T21:30:00Z", "DOG", "1", "", "52.6", "1.0"],
    ]
    write(ctx, "norfolk", "seizures", SZ_HEADER, sz)
    run(ctx, ("norfolk", "incidents"), ("norfolk", "seizures"))
    row = ctx.ledger.get(NIGHT, "norfolk", "seizures")
    assert row is not None and (row["status"], row["rows_published"], row["rows_quarantined"]) == ("published", 2, 0)
    assert row["warning"] == "1 row(s) seizure_before_incident (warning)"
    assert manifest(ctx, "seizures")["forces"]["norfolk"]["warning"] == row["warning"]
    order = results(ctx, "norfolk", "seizures")["cross_dataset"]
    assert [(o["reason"], o["unexpected"], o["evaluated"], o["row_ids"]) for o in order] == [
        ("seizure_before_incident", 1, 2, ["norfolk:NFK-SZ-20261127-000001"])
    ]


def test_incident_from_an_earlier_night_orders_seizures_too(ctx: context.Context) -> None:
    write(ctx, "norfolk", "incidents", INC_HEADER, incidents(1, "2026-11-26"), night="2026-11-26")
    run(ctx, ("norfolk", "incidents"), night="2026-11-26")
    sz = [["NFK-SZ-20261127-000001", "NFK-INC-20261126-000001", f"{NIGHT}T01:00:00Z", "VEH", "1", "AB12CDE", "52.6",
           "1.0"]]  # fmt: skip
    write(ctx, "norfolk", "seizures", SZ_HEADER, sz)
    run(ctx, ("norfolk", "seizures"))
    row = ctx.ledger.get(NIGHT, "norfolk", "seizures")
    assert row is not None and row["status"] == "published" and row["warning"] is None
    assert results(ctx, "norfolk", "seizures")["cross_dataset"][0]["success"] is True


# ----------------------------------------------------------------------- table level
def test_empty_anpr_extract_is_quarantined_others_publish(ctx: context.Context) -> None:
    write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, [])  # a header and no reads
    write(ctx, "suffolk", "anpr_reads", ANPR_HEADER, anpr(10))
    write(ctx, "norfolk", "incidents", INC_HEADER, incidents(3))
    result = process(ctx, "norfolk", "anpr_reads", "r1")
    assert result.status == "quarantined"
    process(ctx, "suffolk", "anpr_reads", "r1")
    process(ctx, "norfolk", "incidents", "r1")
    publish.publish_night(ctx, NIGHT, "r1")
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and row["status"] == "quarantined"
    assert row["error"] == "empty_extract: rows_in = 0 (min 1) [critical]"
    m = manifest(ctx, "anpr_reads")["forces"]
    assert (m["norfolk"]["status"], m["suffolk"]["status"]) == ("quarantined", "published")
    assert manifest(ctx, "incidents")["forces"]["norfolk"]["status"] == "published"
    part = f"{layout.partition('anpr_reads', NIGHT, 'norfolk')}"
    assert not ctx.zones.curated.exists(f"{part}/part-0.parquet")
    assert ctx.zones.quarantine.read_json(f"{part}/_extract_error.json")["error"] == row["error"]


def test_low_volume_against_history_is_flagged(ctx: context.Context) -> None:
    for day in range(20, 26):  # six published nights of 100 reads
        ctx.ledger.record(f"2026-11-{day}", "norfolk", "anpr_reads", status="published", rows_in=100)
    ctx.ledger.record("2026-11-26", "norfolk", "anpr_reads", status="quarantined", rows_in=1)  # not history
    write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, anpr(40))
    run(ctx, ("norfolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and (row["status"], row["rows_published"]) == ("published", 40)
    assert row["warning"] == "low_volume: volume_ratio = 0.4 (min 0.5) [warning]"
    assert manifest(ctx, "anpr_reads")["forces"]["norfolk"]["warning"] == row["warning"]
    res = results(ctx, "norfolk", "anpr_reads")
    assert (res["metrics"]["usual_rows"], res["history_nights"]) == (100.0, 6)


def test_enough_volume_is_not_flagged_and_little_history_is_not_judged(ctx: context.Context) -> None:
    for day in range(20, 26):
        ctx.ledger.record(f"2026-11-{day}", "norfolk", "anpr_reads", status="published", rows_in=100)
    for day in range(22, 26):  # only four nights of suffolk: not judged
        ctx.ledger.record(f"2026-11-{day}", "suffolk", "anpr_reads", status="published", rows_in=1000)
    write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, anpr(60))
    write(ctx, "suffolk", "anpr_reads", ANPR_HEADER, anpr(20))
    run(ctx, ("norfolk", "anpr_reads"), ("suffolk", "anpr_reads"))
    for force, ratio in (("norfolk", 0.6), ("suffolk", None)):
        row = ctx.ledger.get(NIGHT, force, "anpr_reads")
        assert row is not None and row["warning"] is None and row["status"] == "published"
        assert results(ctx, force, "anpr_reads")["metrics"]["volume_ratio"] == ratio


def test_high_rejection_rate_is_flagged(ctx: context.Context) -> None:
    rows = anpr(60)
    for r in rows[:18]:
        r[5] = "#NOREAD#"
    write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, rows)
    write(ctx, "suffolk", "anpr_reads", ANPR_HEADER, rows[:40])  # 45%, but under rejection.min_rows: not judged
    run(ctx, ("norfolk", "anpr_reads"), ("suffolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and (row["status"], row["rows_published"], row["rows_quarantined"]) == ("published", 42, 18)
    assert row["warning"] == "high_rejection_rate: quarantined_share = 0.3 (max 0.25) [warning]"
    row = ctx.ledger.get(NIGHT, "suffolk", "anpr_reads")
    assert row is not None and (row["rows_quarantined"], row["warning"]) == (18, None)


# ----------------------------------------------------------------------------- drift
def test_extra_column_is_tolerated_and_reported_by_name(ctx: context.Context) -> None:
    write(ctx, "norfolk", "anpr_reads", [*ANPR_HEADER, "officer_notes"], [[*r, "n/a"] for r in anpr(12)])
    run(ctx, ("norfolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and (row["status"], row["rows_published"], row["warning"]) == ("published", 12, None)
    drift = events(ctx, "schema_drift")
    assert len(drift) == 1 and json.loads(drift[0]["detail"])["added"] == ["officer_notes"]
    assert json.loads(drift[0]["detail"])["policy"]["extra_column"] == "tolerate"
    res = results(ctx, "norfolk", "anpr_reads")
    assert res["drift"]["lines"] == ["new column(s) 'officer_notes'"]
    assert [t["severity"] for t in res["table_level"] if t["metric"] == "drift_extra"] == ["tolerated"]


def test_extra_column_quarantines_when_the_policy_says_so(
    ctx: context.Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_config(ctx, tmp_path, monkeypatch, extra_column="quarantine")
    write(ctx, "norfolk", "anpr_reads", [*ANPR_HEADER, "officer_notes"], [[*r, "n/a"] for r in anpr(12)])
    run(ctx, ("norfolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and row["status"] == "quarantined"
    assert (row["rows_published"], row["rows_quarantined"], row["reasons"]) == (0, 12, {"extra_column": 12})
    assert row["error"] == "schema drift: new column(s) 'officer_notes' [critical]"


def test_renamed_required_column_quarantines_the_extract(ctx: context.Context) -> None:
    header = [("offence_cd" if h == "offence_code" else h) for h in INC_HEADER]
    write(ctx, "norfolk", "incidents", header, incidents(3))
    write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, anpr(10))
    run(ctx, ("norfolk", "incidents"), ("norfolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "incidents")
    assert row is not None and row["status"] == "quarantined"
    assert row["error"].startswith(
        "schema drift: renamed 'offence_code' -> 'offence_cd' (field offence, required column) [critical]; "
        "incidents.csv: wrong header: missing required column(s) offence ('offence_code')"
    )
    detail = json.loads(events(ctx, "schema_drift")[0]["detail"])
    assert (
        detail["renamed"] == [{"field": "offence", "column": "offence_code", "to": "offence_cd", "required": True}]
        and detail["added"] == []
    )
    assert manifest(ctx, "incidents")["forces"]["norfolk"]["status"] == "quarantined"
    assert manifest(ctx, "anpr_reads")["forces"]["norfolk"]["status"] == "published"  # the other extract goes on


def jsonl(ctx: context.Context, force: str, dataset: str, records: list[dict[str, Any]]) -> None:
    folder = Path(ctx.settings.landing) / force / dataset / NIGHT
    folder.mkdir(parents=True)
    with gzip.open(folder / f"{dataset}.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps(r) + "\n" for r in records))


def test_dropped_optional_key_publishes_with_a_warning(ctx: context.Context) -> None:
    """JSON Lines: a key whose values are optional (a vehicle's plate on an incident) may go; flagged."""
    recs = [
        {"ref": f"CAMBS/INC/20261127/{i:06d}", "reported": 1795740000000 + i * 60000, "crime": {"code": "POACHING"},
         "location": {"lat": 52.4, "lon": 0.0}, "result": "OPEN"}
        for i in range(3)
    ]  # fmt: skip
    jsonl(ctx, "cambridgeshire", "incidents", recs)
    run(ctx, ("cambridgeshire", "incidents"))
    row = ctx.ledger.get(NIGHT, "cambridgeshire", "incidents")
    assert row is not None and (row["status"], row["rows_published"]) == ("published", 3)
    assert row["warning"] == (
        "schema drift: missing column 'vehicle.registration' (field plate, optional column) [warning]"
    )
    assert manifest(ctx, "incidents")["forces"]["cambridgeshire"]["warning"] == row["warning"]


def test_dropped_csv_column_the_contract_maps_quarantines(ctx: context.Context) -> None:
    """CSV: every column the contract maps (and does not list as optional) must be in the header."""
    header = [h for h in INC_HEADER if h != "vehicle_reg"]
    write(ctx, "norfolk", "incidents", header, [r[:-1] for r in incidents(3)])
    run(ctx, ("norfolk", "incidents"))
    row = ctx.ledger.get(NIGHT, "norfolk", "incidents")
    assert row is not None and (row["status"], row["rows_published"]) == ("quarantined", 0)
    assert row["error"].startswith(
        "schema drift: missing column 'vehicle_reg' (field plate, required column) [critical]; incidents.csv: "
    )


def test_retyped_required_column_quarantines_the_extract(ctx: context.Context) -> None:
    rows = anpr(12)
    for r in rows:  # another time format: every value stops parsing
        r[1] = "27/11/2026 " + r[1][11:19]
    write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, rows)
    run(ctx, ("norfolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and (row["status"], row["rows_quarantined"]) == ("quarantined", 12)
    assert row["error"] == (
        "schema drift: retyped 'read_at' (field timestamp, required values): 12 of 12 values do not parse as "
        "time format '%Y-%m-%dT%H:%M:%SZ' [critical]"
    )


def test_a_few_bad_values_are_rows_not_a_retyped_column(ctx: context.Context) -> None:
    rows = anpr(12)
    rows[0][1] = "yesterday"
    write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, rows)
    run(ctx, ("norfolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and (row["status"], row["rows_quarantined"], row["reasons"]) == (
        "published",
        1,
        {"impossible_timestamp": 1},
    )
    assert results(ctx, "norfolk", "anpr_reads")["drift"]["retyped"] == []


def test_jsonl_dropped_key_is_drift_by_path(ctx: context.Context) -> None:
    recs = [
        {
            "ref": f"CAMBS/ANPR/20261127/{i:08d}",
            "observed": 1795740000000 + i * 60000,
            "camera": {"id": "CAMBS-CAM-0001", "location": {"lat": 52.4, "lon": 0.0}},
            "registration": PLATES[i % 4],  # the contract's key is "plate"
        }
        for i in range(12)
    ]
    jsonl(ctx, "cambridgeshire", "anpr_reads", recs)
    run(ctx, ("cambridgeshire", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "cambridgeshire", "anpr_reads")
    assert row is not None and (row["status"], row["rows_published"], row["rows_quarantined"]) == ("quarantined", 0, 12)
    assert row["error"] == "schema drift: missing column 'plate' (field plate, required column) [critical]"
    drift = results(ctx, "cambridgeshire", "anpr_reads")["drift"]
    assert drift["added"] == ["registration"] and drift["dropped"][0]["column"] == "plate"


def test_headerless_csv_withholds_names(ctx: context.Context) -> None:
    write(ctx, "norfolk", "anpr_reads", None, anpr(5))  # no header line: the first record is read as one
    run(ctx, ("norfolk", "anpr_reads"))
    row = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row is not None and row["status"] == "quarantined"
    drift = json.loads(events(ctx, "schema_drift")[0]["detail"])
    assert drift["added"] == [] and drift["withheld"] == 6 and drift["renamed"] == []
    texts = [json.dumps(e) for e in ctx.ledger.events(NIGHT)] + [
        p.read_text() for p in Path(ctx.settings.docs).rglob("*") if p.is_file()
    ]
    assert not any(p in t for p in PLATES for t in texts)


# --------------------------------------------------------------------------------- alerts
def test_missing_extract_alert_after_its_cutoff(ctx: context.Context) -> None:
    from datetime import datetime

    cfg = load_config(ctx.settings.config_dir)
    due = cfg.cutoff_at(NIGHT, "kent", "anpr_reads")
    assert due.isoformat() == "2026-11-28T02:00:00+00:00"  # 02:00 Europe/London, GMT in November
    land.land_extract(ctx, NIGHT, "kent", "anpr_reads", "r1")  # nothing in landing: missing
    early = datetime.fromisoformat("2026-11-28T01:59:00+00:00")
    late = datetime.fromisoformat("2026-11-28T02:30:00+00:00")
    assert alert_missing_extract(ctx, NIGHT, "kent", "anpr_reads", "r1", now=early) is None
    alert = alert_missing_extract(ctx, NIGHT, "kent", "anpr_reads", "r1", now=late)
    assert alert is not None and "kent" in alert["message"] and "anpr_reads" in alert["message"]
    assert alert_missing_extract(ctx, NIGHT, "kent", "anpr_reads", "r1", now=late) is None  # once
    got = events(ctx, "alert")
    assert [(e["force"], e["dataset"], json.loads(e["detail"])["kind"]) for e in got] == [
        ("kent", "anpr_reads", "extract_missing")
    ]
    write(ctx, "essex", "incidents", ["Ref"], [["x"]])
    land.land_extract(ctx, NIGHT, "essex", "incidents", "r1")  # landed: no alert
    assert alert_missing_extract(ctx, NIGHT, "essex", "incidents", "r1", now=late) is None


def test_a_night_nothing_landed_for_is_one_alert_not_one_per_extract(ctx: context.Context) -> None:
    from datetime import datetime

    from xforce.quality.deadlines import alert_nothing_landed

    late = datetime.fromisoformat("2026-11-28T02:30:00+00:00")
    assert land.nothing_delivered(ctx, NIGHT)
    assert alert_nothing_landed(ctx, NIGHT, "r1", now=datetime.fromisoformat("2026-11-27T23:00:00+00:00")) is None
    alert = alert_nothing_landed(ctx, NIGHT, "r1", now=late)
    assert alert is not None and alert["kind"] == "night_empty" and "from any force" in alert["message"]
    assert alert_nothing_landed(ctx, NIGHT, "r1", now=late) is None  # once
    for force in ctx.registry.forces:  # then no alert per extract: the night's says it
        land.land_extract(ctx, NIGHT, force, "anpr_reads", "r1")
        assert alert_missing_extract(ctx, NIGHT, force, "anpr_reads", "r1", now=late) is None
    assert [(e["force"], e["dataset"]) for e in events(ctx, "alert")] == [(None, None)]
    assert ctx.ledger.alert_counts(NIGHT, NIGHT) == {}  # not held against any force's scorecard
    write(ctx, "essex", "incidents", ["Ref"], [["x"]])
    assert not land.nothing_delivered(ctx, NIGHT)  # one file from one force is not nothing


def test_deadline_cutoffs_are_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "c"
    conf.mkdir()
    (conf / "quality.yaml").write_text(
        "deadlines: {cutoff: '03:15', forces: {kent: '01:30', essex: {anpr_reads: '00:45'}}}\n"
    )
    cfg = load_config(str(conf))
    assert cfg.cutoff_at("2026-07-01", "norfolk", "incidents").isoformat() == "2026-07-02T02:15:00+00:00"  # BST
    assert cfg.cutoff_at("2026-07-01", "kent", "seizures").isoformat() == "2026-07-02T00:30:00+00:00"
    assert cfg.cutoff_at("2026-07-01", "essex", "anpr_reads").isoformat() == "2026-07-01T23:45:00+00:00"
    assert cfg.cutoff_at("2026-07-01", "essex", "incidents").isoformat() == "2026-07-02T02:15:00+00:00"


def test_airflow_skip_callback_alerts_naming_force_and_dataset(ctx: context.Context) -> None:
    """The validate tasks' on_skipped_callback, with stand-ins for Airflow's context (both lookups)."""
    ref = land.land_extract(ctx, "2026-11-01", "kent", "seizures", "r9")
    assert ref["status"] == "missing"
    by_kwargs = {"task": SimpleNamespace(op_kwargs={"ref": ref}), "run_id": "r9"}
    alert = on_validate_skipped(by_kwargs)
    assert alert is not None and "kent has not delivered its seizures extract" in alert["message"]
    ref2 = land.land_extract(ctx, "2026-11-01", "essex", "anpr_reads", "r9")

    class TI:
        map_index = 3

        def xcom_pull(self, task_ids: str, map_indexes: int) -> Any:
            assert (task_ids, map_indexes) == ("land_extract", 3)
            return ref2

    by_xcom = {"task": SimpleNamespace(op_kwargs={}, upstream_task_ids={"land_extract"}), "ti": TI(), "run_id": "r9"}
    assert on_validate_skipped(by_xcom) is not None
    landed = {"task": SimpleNamespace(op_kwargs={"ref": {**ref, "status": "landed"}}), "run_id": "r9"}
    assert on_validate_skipped(landed) is None
    # (events are ordered by their time, to the second: compare as a set)
    assert sorted((e["force"], e["dataset"]) for e in events(ctx, "alert", "2026-11-01")) == [
        ("essex", "anpr_reads"),
        ("kent", "seizures"),
    ]


def test_policy_config_is_checked(tmp_path: Path) -> None:
    from xforce.errors import ConfigError

    (tmp_path / "quality.yaml").write_text("schema_drift: {missing_required: warn}\n")
    with pytest.raises(ConfigError, match="missing_required can only be quarantine"):
        load_config(str(tmp_path))
    (tmp_path / "quality.yaml").write_text("schema_drift: {extra_column: ignore}\n")
    load_config.cache_clear()
    with pytest.raises(ConfigError, match="extra_column must be one of"):
        load_config(str(tmp_path))


# ------------------------------------------------------------------------ history and tonight's work
def test_history_does_not_slow_validation(ctx: context.Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """Validating and publishing a night does the same work with 30 stored nights of history as with
    one: counted, not timed. The same reads, existence checks and listings of the zones, path by path,
    and the same ledger statements; none of them names another night.

    History is what validation and publishing could touch: ledger rows of every force and dataset,
    stored results and Data Docs pages, and published incidents (seizures look their incidents up).
    What does grow with it is what two listings return (the nights of the Data Docs index and of the
    published incidents, each listed once a run): one name per stored night. Wall-clock timings of the
    same runs: the benchmark.
    """
    import re
    from collections import Counter

    import sqlalchemy as sa

    from xforce.store.zones import Zone

    nights = [f"2026-10-{d:02d}" for d in range(1, 31)]
    tonight = "2026-10-31"
    plan = [("norfolk", "incidents"), ("norfolk", "anpr_reads"), ("norfolk", "seizures")]

    def deliver(night: str) -> None:
        d = night.replace("-", "")
        write(ctx, "norfolk", "anpr_reads", ANPR_HEADER, anpr(200, night), night=night)
        inc = [[f"NFK-INC-{d}-{i:06d}", f"{night}T2{i}:00:00Z", "52.6", "1.0", "HC", "UI", ""] for i in range(1, 4)]
        write(ctx, "norfolk", "incidents", INC_HEADER, inc, night=night)
        sz = [[f"NFK-SZ-{d}-000001", f"NFK-INC-{d}-000001", f"{night}T22:00:00Z", "DOG", "1", "", "52.6", "1.0"]]
        write(ctx, "norfolk", "seizures", SZ_HEADER, sz, night=night)

    src = Path(ctx.settings.data_dir)
    touched: list[tuple[str, str]] = []  # (what, path under the data dir, the run's own id made "<run>")
    statements: list[str] = []

    def counted(what: str) -> Any:
        real = getattr(Zone, what)

        def touch(self: Zone, rel: str, *args: Any, **kwargs: Any) -> Any:
            path = Path(self.full(rel)).relative_to(src).as_posix()
            touched.append((what, re.sub(r"test__[0-9a-f]{8}(-[0-9a-f]{8})?", "<run>", path)))
            return real(self, rel, *args, **kwargs)

        return touch

    for what in ("exists", "is_dir", "head", "list_files", "list_dirs", "open", "read_bytes", "read_json",
                 "read_parquet", "sha256"):  # fmt: skip
        monkeypatch.setattr(Zone, what, counted(what))

    def statement(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        statements.append(" ".join(sql.split()))

    sa.event.listen(ctx.ledger.engine, "before_cursor_execute", statement)

    def work(night: str) -> tuple[Counter[tuple[str, str]], Counter[str]]:
        touched.clear()
        statements.clear()
        run(ctx, *plan, night=night)
        return Counter(touched), Counter(statements)

    try:
        deliver(nights[0])
        run(ctx, *plan, night=nights[0])
        deliver(tonight)
        run(ctx, *plan, night=tonight)  # its files land; the runs counted below find them landed
        with_one = work(tonight)
        for night in nights[1:]:  # 29 more stored nights, copied from the first
            for zone in ("curated", "quarantine"):
                for ds in ("incidents", "anpr_reads", "seizures"):
                    a = src / zone / f"dataset={ds}" / f"date={nights[0]}"
                    if a.exists():
                        shutil.copytree(a, src / zone / f"dataset={ds}" / f"date={night}")
            shutil.copytree(src / "docs/validation" / f"date={nights[0]}", src / "docs/validation" / f"date={night}")
            for r in ctx.ledger.extracts(nights[0]):
                fields = {k: r[k] for k in ("status", "rows_in", "rows_published", "rows_quarantined", "reasons")}
                ctx.ledger.record(night, r["force"], r["dataset"], **fields)
        assert len(list((src / "docs/validation").glob("date=*"))) == 31  # 30 nights of history + tonight
        assert len(list((src / "curated/dataset=incidents").glob("date=*"))) == 31
        with_thirty = work(tonight)
    finally:
        sa.event.remove(ctx.ledger.engine, "before_cursor_execute", statement)

    reads, sql = with_one
    assert sum(reads.values()) > 20 and sum(sql.values()) > 20  # what is counted is the run's work
    assert ("list_dirs", "docs/validation") in reads  # (the index of nights)
    assert with_thirty[0] == reads, "zone reads differ with 30 nights of history"
    assert with_thirty[1] == sql, "ledger statements differ with 30 nights of history"
    assert not [p for _, p in reads if any(n in p for n in nights)]  # no other night's file
