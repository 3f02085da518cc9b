"""Retention as code: exactly the expired copies of a night go, from every zone, each deletion logged.

Derived copies follow their data: Data Docs and reports follow the datasets they name, dead runs'
staging goes, a live run's stays; landing is touched only when asked; a far-off ``--today`` is refused.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from xforce import cli
from xforce.airflow import tasks
from xforce.errors import ConfigError
from xforce.privacy import retention
from xforce.privacy import tokenmap as privacy
from xforce.privacy.tokens import tokenise
from xforce.reports.queries import reports_uri
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
    for var in ("XFORCE_RESTRICTED_URI", "XFORCE_DOCS_URI", "XFORCE_REPORTS_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XFORCE_LANDING_URI", str(data_dir / "landing"))
    return Settings.from_env()


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger(settings.ledger_url, settings.sql_dir)


def _parquet(rows: int) -> bytes:
    return privacy._parquet_bytes(pa.table({"record_id": [f"r{i}" for i in range(rows)]}))


#: The cutoff of the shortest rule (ANPR's): a copy naming every dataset goes before it.
SHORTEST = "2026-10-26"
#: A run that died (no lease) and one still running (its lease is live).
DEAD_RUN, LIVE_RUN = "scheduled__2027-10-20T02:30:00+00:00", "manual__2027-10-26T02:30:00+00:00"


def _zones(settings: Settings) -> dict[str, Zone]:
    out = {name: Zone(getattr(settings, name)) for name in retention.ZONES if name != "reports"}
    location = retention.reports_location(settings)
    assert location is not None
    out["reports"] = Zone(location)
    return out


def _build(settings: Settings, ledger: Ledger) -> set[tuple[str, str]]:
    """Every zone's layout for every night above; returns the (zone, path) pairs that must expire
    (landing excluded: it is cleaned only when asked, see ``_landing_expired``)."""
    z = _zones(settings)
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
                results = layout.validation_results(night, force, dataset)
                z["docs"].write_bytes(results, b'{"record_ids": ["norfolk:R1"]}')
                if expired:
                    expect |= {("raw", f"{force}/{dataset}/{night}"), ("docs", results)}
            z["curated"].write_json(f"dataset={dataset}/date={night}/_manifest.json", {"night": night})
            if expired:
                expect |= {
                    ("curated", f"dataset={dataset}/date={night}"),
                    ("quarantine", f"dataset={dataset}/date={night}"),
                    ("restricted", f"token_map/key_version=k1/dataset={dataset}/date={night}"),
                }
    # Pages and reports of every night: crossing_vehicles reads ANPR, incidents_by_year incidents only;
    # the night's Data Docs page and report page name every dataset.
    for night in sorted({n for nights in NIGHTS.values() for n in nights}):
        z["docs"].write_bytes(layout.validation_page(night), b"<html>extracts of the night</html>")
        z["reports"].write_bytes(layout.report_page(night), b"<html>every report</html>")
        z["reports"].write_bytes(layout.report_file("crossing_vehicles", night), _parquet(2))
        z["reports"].write_bytes(layout.report_file("incidents_by_year", night), _parquet(1))
        if night < SHORTEST:
            expect |= {
                ("docs", layout.validation_page(night)),
                ("reports", layout.report_page(night)),
                ("reports", layout.report_file("crossing_vehicles", night).rsplit("/", 1)[0]),
            }
        if night < "2024-10-26":  # incidents: 36 months
            expect.add(("reports", layout.report_file("incidents_by_year", night).rsplit("/", 1)[0]))
    # Staging: a dead run's folder goes, a running one's stays.
    for run in (DEAD_RUN, LIVE_RUN):
        z["staging"].write_bytes(layout.staged(run, "published", "anpr_reads", "2027-10-25", "kent"), _parquet(1))
    ledger.acquire_lease("2027-10-25", LIVE_RUN, 900)
    expect.add(("staging", layout.run_key(DEAD_RUN)))
    # Things that are not night folders are never touched.
    z["curated"].write_bytes("dataset=anpr_reads/README.txt", b"not a partition")
    z["raw"].write_bytes("norfolk/anpr_reads/not-a-date/x.csv", b"x")
    z["landing"].write_bytes("_truth.json", b"{}")
    z["docs"].write_bytes(layout.VALIDATION_INDEX, b"<html>every night</html>")
    z["reports"].write_bytes("index.html", b"<html>every night</html>")
    return expect


def _landing_expired() -> set[tuple[str, str]]:
    return {
        ("landing", f"{force}/{dataset}/{night}")
        for dataset, nights in NIGHTS.items()
        for night, expired in nights.items()
        if expired
        for force in FORCES
    }


def _snapshot(settings: Settings) -> dict[str, str]:
    out = {}
    for name, zone in _zones(settings).items():
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
    expected_gone = {
        p for p in before if any(p == f"{zone}/{path}" or p.startswith(f"{zone}/{path}/") for zone, path in expect)
    }
    assert gone == expected_gone and gone  # exactly the files of the expired folders and pages
    assert {p: before[p] for p in after} == after  # every younger file is byte-identical
    assert not any(p.startswith("landing/") for p in gone)  # landing is not touched unless asked
    zones = _zones(settings)
    for zone, path in expect:
        assert not zones[zone].exists(path) and not zones[zone].is_dir(path)
    logged = [e for e in ledger.events() if e["event"] == "retention_deleted"]
    assert {(json.loads(e["detail"])["zone"], json.loads(e["detail"])["path"]) for e in logged} == expect
    assert len(logged) == len(expect)
    for e in logged:
        d = json.loads(e["detail"])
        assert d["files"] >= 1 and d["bytes"] > 0 and e["run_id"] == "test"
        if d["zone"] == "staging":
            assert (e["night"], e["dataset"], d["retention"]) == (None, None, retention.RUN_ENDED)
        elif d["zone"] in ("curated", "quarantine", "raw", "restricted") or d["path"].endswith(".json"):
            assert e["night"] in NIGHTS[e["dataset"]] and NIGHTS[e["dataset"]][e["night"]] is True
        else:  # pages and reports: the rule of the shortest dataset they hold, passed
            assert e["night"] < d["cutoff"]
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
    assert cli.main(["retention", "--dry-run", "--today", TODAY.isoformat(), "--force"]) == 0
    out = capsys.readouterr().out
    assert f"would delete {len(expect)} folder(s) or file(s)" in out
    assert all(folder in out for _, folder in expect)
    assert _snapshot(settings) == before
    planned = tasks.plan_retention({"today": TODAY.isoformat(), "force": True})
    assert {(p["zone"], p["path"]) for p in planned} == expect
    assert json.loads(json.dumps(planned)) == planned  # XCom-safe
    assert (
        tasks.apply_retention({"today": TODAY.isoformat(), "force": True, "dry_run": True}, planned, "r1")["deleted"]
        == 0
    )
    assert _snapshot(settings) == before
    # Only what was planned (and is still expired) goes.
    result = tasks.apply_retention({"today": TODAY.isoformat(), "force": True, "dry_run": False}, planned[:2], "r2")
    assert result == {"dry_run": False, "deleted": 2, "planned": 2}
    assert len([e for e in ledger.events() if e["event"] == "retention_deleted"]) == 2
    assert cli.main(["retention", "--today", TODAY.isoformat(), "--force"]) == 0
    assert f"deleted {len(expect) - 2} folder(s) or file(s)" in capsys.readouterr().out


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
        ("zones: [curated, landing]\ndatasets: {}", "include_landing: true"),
        ("include_landing: yes please\ndatasets: {}", "include_landing must be true or false"),
    ],
)
def test_bad_rules_are_refused(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "retention.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        retention.load_policy(str(tmp_path))


def test_shipped_rules(settings: Settings) -> None:
    policy = retention.load_policy(settings.config_dir)
    assert policy.rules["anpr_reads"] == retention.Rule("anpr_reads", months=12)
    assert policy.zones == retention.DEFAULT_ZONES and policy.timezone == "Europe/London"
    assert "landing" not in policy.zones and set(policy.with_landing().zones) == set(retention.ZONES)


# ------------------------------------------------------------------------------ landing only when asked
def test_landing_is_cleaned_only_when_asked(
    settings: Settings, ledger: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expect = _build(settings, ledger)
    landing = _landing_expired()
    policy = retention.load_policy(settings.config_dir)
    assert not [e for e in retention.plan(settings, policy, TODAY) if e.zone == "landing"]
    # Asked on the command line ...
    listed = retention.apply(settings, ledger, policy.with_landing(), TODAY, dry_run=True)
    assert {(e.zone, e.path) for e in listed} == expect | landing
    assert cli.main(["retention", "--today", TODAY.isoformat(), "--force", "--include-landing"]) == 0
    assert not any(Zone(settings.landing).is_dir(path) for _, path in landing)
    assert Zone(settings.landing).exists("_truth.json")  # not a night folder: kept
    # ... or in the configuration.
    config = tmp_path / "config"
    config.mkdir()
    text = (Path(settings.config_dir) / "retention.yaml").read_text(encoding="utf-8")
    (config / "retention.yaml").write_text(text.replace("include_landing: false", "include_landing: true"))
    assert "landing" in retention.load_policy(str(config)).zones


# ------------------------------------------------------------------------------ --today far ahead
def test_a_today_far_ahead_is_refused_without_force(
    settings: Settings, ledger: Ledger, capsys: pytest.CaptureFixture[str]
) -> None:
    _build(settings, ledger)
    before, events = _snapshot(settings), len(ledger.events())
    policy = retention.load_policy(settings.config_dir)
    ahead = policy.today() + timedelta(days=2)
    assert cli.main(["retention", "--today", ahead.isoformat()]) == 2
    err = capsys.readouterr().err
    assert f"--today {ahead}" in err and "--force" in err
    assert cli.main(["retention", "--dry-run", "--today", ahead.isoformat()]) == 2
    assert _snapshot(settings) == before and len(ledger.events()) == events
    # Tomorrow is accepted (a run just after midnight elsewhere); nothing of these nights expires by then.
    tomorrow = retention.latest_today(policy)
    assert tomorrow == policy.today() + timedelta(days=1)
    assert cli.main(["retention", "--dry-run", "--today", tomorrow.isoformat()]) == 0


# ------------------------------------------------------------------------------ staging of runs
def test_staging_of_running_runs_is_kept_and_a_lease_taken_after_the_plan_saves_it(
    settings: Settings, ledger: Ledger
) -> None:
    staging = Zone(settings.staging)
    runs = {"dead": DEAD_RUN, "live": LIVE_RUN, "publishing": "manual__publishing", "late": "manual__late"}
    for run in runs.values():
        staging.write_bytes(layout.staged(run, "quarantine", "incidents", "2027-10-24", "kent"), _parquet(1))
    ledger.acquire_lease("2027-10-25", LIVE_RUN, 900)
    ledger.begin_publish("2027-10-24", runs["publishing"], {"incidents": {}})  # a crashed publish to complete
    policy = retention.load_policy(settings.config_dir)
    planned = [e for e in retention.plan(settings, policy, TODAY) if e.zone == "staging"]
    assert {e.path for e in planned} == {layout.run_key(runs["dead"]), layout.run_key(runs["late"])}
    assert retention.running_runs(ledger) == {layout.run_key(runs["live"]), layout.run_key(runs["publishing"])}
    # The late run starts (takes its lease) between the plan and the deletion: its staging stays.
    ledger.acquire_lease("2027-10-23", runs["late"], 900)
    done = retention.delete(settings, ledger, planned, "r1")
    assert [e.path for e in done] == [layout.run_key(runs["dead"])]
    assert sorted(staging.list_dirs("")) == sorted(layout.run_key(r) for r in runs.values() if r != runs["dead"])
    # Once its lease has expired (the run died), the next retention sweeps it.
    ledger.acquire_lease("2027-10-23", runs["late"], -1)
    assert layout.run_key(runs["late"]) in {e.path for e in retention.apply(settings, ledger, policy, TODAY)}


# ------------------------------------------------------------------------------ derived copies
def test_reports_and_docs_follow_the_datasets_they_are_built_from(settings: Settings) -> None:
    sql = settings.sql_dir
    assert "anpr_reads" in retention.report_datasets(sql, "crossing_vehicles")
    assert retention.report_datasets(sql, "incidents_by_year") == ("incidents",)
    assert retention.report_datasets(sql, "no_such_report") == retention.DATASETS  # unknown: the shortest rule
    assert set(retention.report_datasets(sql)) == set(retention.DATASETS)
    policy = retention.load_policy(settings.config_dir)
    assert policy.shortest(retention.report_datasets(sql, "crossing_vehicles"), TODAY).dataset == "anpr_reads"
    reports = Zone(str(retention.reports_location(settings)))
    night = "2026-10-25"  # past ANPR's 12 months, within incidents' 36
    reports.write_bytes(layout.report_file("no_such_report", night), _parquet(1))
    docs = Zone(settings.docs)
    for dataset in retention.DATASETS:
        docs.write_bytes(layout.validation_results(night, "kent", dataset), b"{}")
    docs.write_bytes(layout.validation_page(night), b"<html></html>")
    found = {(e.zone, e.path): e for e in retention.plan(settings, policy, TODAY)}
    assert set(found) == {
        ("reports", layout.report_file("no_such_report", night).rsplit("/", 1)[0]),
        ("docs", layout.validation_results(night, "kent", "anpr_reads")),
        ("docs", layout.validation_page(night)),
    }
    page = found[("docs", layout.validation_page(night))]
    assert (page.kind, page.dataset, page.cutoff) == ("file", "anpr_reads", "2026-10-26")


@pytest.mark.parametrize(
    ("curated", "reports"),
    [
        (None, None),
        ("s3://hub-data/curated", None),
        ("s3://hub-curated", "s3://hub-reports/nightly"),
        (None, "relative/reports"),
    ],
)
def test_reports_location_is_where_the_reports_are_written(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, curated: str | None, reports: str | None
) -> None:
    """Retention (a layer below the reports) restates their location: the two must agree."""
    if curated:
        monkeypatch.setenv("XFORCE_CURATED_URI", curated)
    if reports:
        monkeypatch.setenv("XFORCE_REPORTS_URI", reports)
    s = Settings.from_env()
    assert retention.reports_location(s) == reports_uri(s)


def test_no_reports_location_for_a_bucket_root_curated_zone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XFORCE_CURATED_URI", "s3://hub-curated")
    s = Settings.from_env()
    assert retention.reports_location(s) is None
    with pytest.raises(ConfigError):
        reports_uri(s)
