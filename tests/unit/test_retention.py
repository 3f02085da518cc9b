"""Retention as code: exactly the expired partitions go, from every zone, each deletion logged."""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest

from xforce import cli
from xforce.airflow import tasks
from xforce.errors import ConfigError
from xforce.privacy import retention
from xforce.privacy import tokenmap as privacy
from xforce.privacy.tokens import tokenise
from xforce.settings import Settings
from xforce.store import layout
from xforce.store.ledger import Ledger
from xforce.store.zones import Zone

pytestmark = pytest.mark.unit

TODAY = date(2027, 10, 26)  # ANPR (12 months) keeps nights from 2026-10-26; incidents/seizures (36) from 2024-10-26
NIGHTS = {
    "anpr_reads": {"2026-09-30": True, "2026-10-25": True, "2026-10-26": False, "2027-10-25": False},
    "incidents": {"2024-10-25": True, "2024-10-26": False, "2026-10-25": False},
    "seizures": {"2023-01-01": True, "2026-10-25": False},
}
FORCES = ("norfolk", "kent")


@pytest.fixture
def settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("XFORCE_RESTRICTED_URI", raising=False)
    monkeypatch.setenv("XFORCE_LANDING_URI", str(data_dir / "landing"))
    return Settings.from_env()


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger(settings.ledger_url, settings.sql_dir)


def _parquet(rows: int) -> bytes:
    return privacy._parquet_bytes(pa.table({"record_id": [f"r{i}" for i in range(rows)]}))


def _build(settings: Settings, ledger: Ledger) -> set[tuple[str, str]]:
    """Every zone's layout for every night above; returns the (zone, folder) pairs that must expire."""
    z = {name: Zone(getattr(settings, name)) for name in retention.ZONES}
    expect: set[tuple[str, str]] = set()
    for dataset, nights in NIGHTS.items():
        for night, expired in nights.items():
            for force in FORCES:
                part = layout.partition(dataset, night, force)
                z["curated"].write_bytes(f"{part}/part-0.parquet", _parquet(3))
                z["quarantine"].write_bytes(f"{part}/part-0.parquet", _parquet(1))
                sha = hashlib.sha256(f"{dataset}{night}{force}".encode()).hexdigest()
                z["raw"].write_bytes(f"{force}/{dataset}/{night}/{sha}/{dataset}.csv", b"id,vrm\n1,AB12CDE\n")
                z["landing"].write_bytes(f"{force}/{dataset}/{night}/{dataset}.csv", b"id,vrm\n1,AB12CDE\n")
                plates = pa.array(["AB12CDE"])
                privacy.write_map(settings.restricted, "k1", dataset, night, force, plates, tokenise(plates, b"k" * 32))
                ledger.record(night, force, dataset, replace=True, status="published", files=[{"raw": "x"}])
                if expired:
                    expect |= {("raw", f"{force}/{dataset}/{night}"), ("landing", f"{force}/{dataset}/{night}")}
            z["curated"].write_json(f"dataset={dataset}/date={night}/_manifest.json", {"night": night})
            if expired:
                expect |= {
                    ("curated", f"dataset={dataset}/date={night}"),
                    ("quarantine", f"dataset={dataset}/date={night}"),
                    ("restricted", f"token_map/key_version=k1/dataset={dataset}/date={night}"),
                }
    # Things that are not night folders are never touched.
    z["curated"].write_bytes("dataset=anpr_reads/README.txt", b"not a partition")
    z["raw"].write_bytes("norfolk/anpr_reads/not-a-date/x.csv", b"x")
    z["landing"].write_bytes("_truth.json", b"{}")
    return expect


def _snapshot(settings: Settings) -> dict[str, str]:
    out = {}
    for name in retention.ZONES:
        zone = Zone(getattr(settings, name))
        for f in zone.list_files("", recursive=True):
            out[f"{name}/{f.path}"] = hashlib.sha256(zone.read_bytes(f.path)).hexdigest()
    return out


def test_dry_run_lists_exactly_the_expired_partitions_and_touches_nothing(settings: Settings, ledger: Ledger) -> None:
    expect = _build(settings, ledger)
    policy = retention.load_policy(settings.config_dir)
    before, events = _snapshot(settings), len(ledger.events())
    listed = retention.apply(settings, ledger, policy, TODAY, dry_run=True)
    assert {(e.zone, e.path) for e in listed} == expect
    assert len(listed) == len(expect)  # no folder listed twice
    assert _snapshot(settings) == before and len(ledger.events()) == events
    assert all(r["status"] == "published" for r in ledger.extracts())
    anpr = next(e for e in listed if e.dataset == "anpr_reads")
    assert (anpr.cutoff, anpr.retention) == ("2026-10-26", "12 months")


def test_real_run_deletes_exactly_those_logs_each_and_keeps_everything_younger(
    settings: Settings, ledger: Ledger
) -> None:
    expect = _build(settings, ledger)
    policy = retention.load_policy(settings.config_dir)
    before = _snapshot(settings)
    done = retention.apply(settings, ledger, policy, TODAY, run_id="test")
    assert {(e.zone, e.path) for e in done} == expect
    after = _snapshot(settings)
    gone = {path for path in before if path not in after}
    expected_gone = {p for p in before if any(p.startswith(f"{zone}/{folder}/") for zone, folder in expect)}
    assert gone == expected_gone and gone  # exactly the files of the expired folders
    assert {p: before[p] for p in after} == after  # every younger file is byte-identical
    for zone, folder in expect:
        assert not Zone(getattr(settings, zone)).exists(folder)
    logged = [e for e in ledger.events() if e["event"] == "retention_deleted"]
    assert {(json.loads(e["detail"])["zone"], json.loads(e["detail"])["path"]) for e in logged} == expect
    assert len(logged) == len(expect)
    for e in logged:
        d = json.loads(e["detail"])
        assert d["files"] >= 1 and d["bytes"] > 0 and e["run_id"] == "test"
        assert e["night"] in NIGHTS[e["dataset"]] and NIGHTS[e["dataset"]][e["night"]] is True
    statuses = {(r["night"], r["dataset"]): (r["status"], r["files"]) for r in ledger.extracts()}
    for dataset, nights in NIGHTS.items():
        for night, expired in nights.items():
            assert statuses[(night, dataset)] == (("expired", None) if expired else ("published", [{"raw": "x"}]))
    # Nothing left to do: a second run deletes nothing and logs nothing.
    assert retention.apply(settings, ledger, policy, TODAY) == []
    assert len([e for e in ledger.events() if e["event"] == "retention_deleted"]) == len(expect)


def test_cli_and_dag_glue(settings: Settings, ledger: Ledger, capsys: pytest.CaptureFixture[str]) -> None:
    expect = _build(settings, ledger)
    before = _snapshot(settings)
    assert cli.main(["retention", "--dry-run", "--today", TODAY.isoformat()]) == 0
    out = capsys.readouterr().out
    assert f"would delete {len(expect)} folder(s)" in out
    assert all(folder in out for _, folder in expect)
    assert _snapshot(settings) == before
    planned = tasks.plan_retention({"today": TODAY.isoformat()})
    assert {(p["zone"], p["path"]) for p in planned} == expect
    assert json.loads(json.dumps(planned)) == planned  # XCom-safe
    assert tasks.apply_retention({"today": TODAY.isoformat(), "dry_run": True}, planned, "r1")["deleted"] == 0
    assert _snapshot(settings) == before
    # Only what was planned (and is still expired) goes.
    result = tasks.apply_retention({"today": TODAY.isoformat(), "dry_run": False}, planned[:2], "r2")
    assert result == {"dry_run": False, "deleted": 2, "planned": 2}
    assert len([e for e in ledger.events() if e["event"] == "retention_deleted"]) == 2
    assert cli.main(["retention", "--today", TODAY.isoformat()]) == 0
    assert f"deleted {len(expect) - 2} folder(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("rule", "today", "cutoff"),
    [
        (retention.Rule("anpr_reads", months=12), date(2027, 10, 26), date(2026, 10, 26)),
        (retention.Rule("anpr_reads", months=12), date(2028, 2, 29), date(2027, 2, 28)),
        (retention.Rule("anpr_reads", months=1), date(2027, 3, 31), date(2027, 2, 28)),
        (retention.Rule("anpr_reads", months=3), date(2027, 1, 15), date(2026, 10, 15)),
        (retention.Rule("seizures", days=30), date(2027, 3, 1), date(2027, 1, 30)),
    ],
)
def test_cutoff(rule: retention.Rule, today: date, cutoff: date) -> None:
    assert rule.cutoff(today) == cutoff


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets: {anpr_reads: {months: 12}, incidents: {months: 1}}", "no retention for \\['seizures'\\]"),
        ("datasets: {anpr_reads: {months: 12, days: 3}, incidents: {months: 1}, seizures: {months: 1}}", "exactly one"),
        ("datasets: {anpr_reads: {months: 0}, incidents: {months: 1}, seizures: {months: 1}}", "positive"),
        ("datasets: {films: {months: 1}}", "unknown dataset"),
        ("zones: [curated, attic]\ndatasets: {}", "unknown zone"),
    ],
)
def test_bad_rules_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "retention.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        retention.load_policy(str(tmp_path))


def test_shipped_rules(settings: Settings) -> None:
    policy = retention.load_policy(settings.config_dir)
    assert policy.rules["anpr_reads"] == retention.Rule("anpr_reads", months=12)
    assert set(policy.zones) == set(retention.ZONES) and policy.timezone == "Europe/London"
