"""Cross-force reports (sql/reports/*.sql through DuckDB) on generated, synthesised and real data."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from helpers import run_night_plain, s3_in_process
from xforce import context, html
from xforce.exchange import land, process, publish
from xforce.privacy.tokens import tokenise
from xforce.reports import page as report_page
from xforce.reports import queries as reports
from xforce.schemas import CANONICAL
from xforce.settings import Settings, hmac_key
from xforce.store import layout
from xforce.store.zones import Zone
from xforce_tools.generate import generate_night

pytestmark = pytest.mark.component

NIGHT = "2026-11-27"
LONDON = ZoneInfo("Europe/London")


def token(plate: str) -> str:
    _, key = hmac_key()
    return str(tokenise(pa.array([plate]), key)[0].as_py())


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    """One night of all seven forces with the crossing vehicle and its decoys planted, run without Airflow."""
    data = tmp_path_factory.mktemp("planted") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XFORCE_DATA_DIR", str(data))
        for var in ("XFORCE_CURATED_URI", "XFORCE_LEDGER_URL", "XFORCE_REPORTS_URI", "XFORCE_LANDING_URI"):
            mp.delenv(var, raising=False)
        truth = generate_night(
            date.fromisoformat(NIGHT), data / "landing", anpr_reads=50, seed=3, plant_crossing_vehicle=True
        )
        ctx = context.Context.from_env()
        run_night_plain(ctx, NIGHT)
        built = reports.build_reports(ctx.settings, NIGHT)
        yield {"data": data, "truth": truth, "ctx": ctx, "built": built}


def _report(data: Path, name: str, night: str = NIGHT) -> pa.Table:
    return pq.read_table(data / "reports" / name / f"date={night}" / "part-0.parquet")


def test_report_finds_exactly_the_planted_vehicle(planted) -> None:
    scenario = planted["truth"]["_planted"]
    vehicles = {v["role"]: v for v in scenario["vehicles"]}
    target = vehicles["crossing_vehicle"]
    crossing = _report(planted["data"], "crossing_vehicles")
    assert crossing.column("plate_token").to_pylist() == [token(target["plate"])]
    row = crossing.to_pylist()[0]
    assert row["forces"] == sorted(r["force"] for r in target["reads"]) == ["cambridgeshire", "norfolk", "suffolk"]
    assert row["n_forces"] == 3 and row["n_reads"] == 3
    # its planted incidents, and any generated hare coursing that happened to be near too
    assert {i.split(":", 1)[0] for i in row["incident_record_ids"]} == set(row["forces"])
    assert [s["force"] for s in row["sightings"]] == ["norfolk", "suffolk", "cambridgeshire"]  # in time order
    # The decoys were published (so the report saw them) and did not qualify.
    anpr = publish.read_curated(planted["ctx"].settings.curated, "anpr_reads")
    for role, v in vehicles.items():
        if role == "crossing_vehicle":
            continue
        reads = anpr.filter(pc.equal(anpr.column("plate_token"), token(v["plate"])))
        assert reads.num_rows == len(v["reads"]), role
        assert sorted(reads.column("force").to_pylist()) == sorted(r["force"] for r in v["reads"]), role
        assert not v["qualifies"]
    # No clear plate reached the report.
    for v in vehicles.values():
        assert v["plate"] not in crossing.to_pandas().to_string()


def test_truth_consumers_ignore_planted_key(planted) -> None:
    from helpers import check_against_truth

    check_against_truth(planted["ctx"], NIGHT, planted["truth"])


def test_hare_coursing_incidents_of_the_night(planted) -> None:
    hare = _report(planted["data"], "hare_coursing_night")
    inc = publish.read_curated(planted["ctx"].settings.curated, "incidents")
    expected = inc.filter(pc.equal(inc.column("offence"), "hare_coursing"))
    assert sorted(hare.column("record_id").to_pylist()) == sorted(expected.column("record_id").to_pylist())
    # planting leaves no hare coursing in the quiet hours (the decoys rely on it)
    q0, q1 = planted["truth"]["_planted"]["quiet_hours_local"]
    hours = [t.astimezone(LONDON).hour for t in hare.column("occurred_at").to_pylist()]
    assert not [h for h in hours if q0 <= h < q1]


def test_seizures_per_force_and_item_type(planted) -> None:
    got = {(r["force"], r["item_type"]): r for r in _report(planted["data"], "seizures_by_item").to_pylist()}
    sz = publish.read_curated(planted["ctx"].settings.curated, "seizures").to_pylist()
    assert sz
    expected: dict[tuple[str, str], list[int]] = {}
    for r in sz:
        for key in ((r["force"], r["item_type"]), ("all forces", r["item_type"])):
            e = expected.setdefault(key, [0, 0])
            e[0] += 1
            e[1] += r["quantity"] if r["quantity"] is not None else 1
    assert set(got) == set(expected)
    for key, (n, items) in expected.items():
        assert got[key]["seizures_night"] == got[key]["seizures_year_to_date"] == n, key
        assert got[key]["items_night"] == got[key]["items_year_to_date"] == items, key


def test_html_page_is_static_with_inline_svg_charts(planted) -> None:
    page = (planted["data"] / "reports" / "html" / f"{NIGHT}.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 4
    assert "<script" not in page.lower() and "<img" not in page.lower() and "<link" not in page.lower()
    # nothing is fetched: the only URL is the SVG namespace, which browsers never load
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "default-src 'none'" in page
    target = next(v for v in planted["truth"]["_planted"]["vehicles"] if v["role"] == "crossing_vehicle")
    assert token(target["plate"])[:16] in page and target["plate"] not in page
    index = (planted["data"] / "reports" / "index.html").read_text(encoding="utf-8")
    assert f'href="html/{NIGHT}.html"' in index


def test_reports_are_rebuilt_not_appended(planted) -> None:
    before = {n: _report(planted["data"], n) for n in reports.REPORTS}
    reports.build_reports(planted["ctx"].settings, NIGHT)
    for name, table in before.items():
        assert _report(planted["data"], name).equals(table), name


# --------------------------------------------------------------------------- year on year
def _incidents(force: str, times: list[datetime], start: int, offence: str = "hare_coursing") -> pa.Table:
    n = len(times)
    ids = [f"{force}:SYN-{start + i:06d}" for i in range(n)]
    cols = {
        "record_id": ids,
        "source_id": [i.split(":", 1)[1] for i in ids],
        "force_code": [force] * n,
        "source_file": ["synthetic.csv"] * n,
        "source_record": list(range(1, n + 1)),
        "occurred_at": times,
        "time_precision": ["exact"] * n,
        "latitude": [52.0] * n,
        "longitude": [0.5] * n,
        "location_precision": ["exact"] * n,
        "offence": [offence] * n,
    }
    schema = CANONICAL["incidents"]
    return pa.table({f.name: pa.array(cols.get(f.name, [None] * n), f.type) for f in schema}, schema=schema)


def _synthesise_history(curated: Path) -> None:
    """2,044 incidents in financial year 2020-21 and 1,415 in 2021-22, spread over forces and months.

    Each month's incidents are published with a night in that month, as the nightly exchange does;
    a few are delivered again with the next month's night (they must count once).
    """
    forces = ["norfolk", "suffolk", "cambridgeshire", "bedfordshire", "hertfordshire", "essex", "kent"]
    totals = {2020: 2044, 2021: 1415}
    seq = 0
    for fy, total in totals.items():
        months = [(fy + (m + 3) // 12, (m + 3) % 12 + 1) for m in range(12)]  # April .. March
        per_month = [total // 12 + (1 if i < total % 12 else 0) for i in range(12)]
        for (y, m), n in zip(months, per_month, strict=True):
            night = date(y, m, 15)
            for fi, force in enumerate(forces):
                k = n // 7 + (1 if fi < n % 7 else 0)
                # times spread over the month, local evening (incl. the last day at 23:30 local)
                times = [
                    datetime(y, m, 1 + (j * 27) // max(k, 1), 19, 30, tzinfo=LONDON).astimezone(UTC) for j in range(k)
                ]
                table = _incidents(force, times, seq)
                seq += k
                part = curated / f"dataset=incidents/date={night.isoformat()}/force={force}"
                part.mkdir(parents=True, exist_ok=True)
                pq.write_table(table, part / "part-0.parquet")
                if force == "kent" and k >= 3:  # re-sent with the next night: counts once
                    again = curated / f"dataset=incidents/date={(night + timedelta(days=20)).isoformat()}/force=kent"
                    again.mkdir(parents=True, exist_ok=True)
                    pq.write_table(table.slice(0, 3), again / "part-0.parquet")


def test_year_on_year_line_from_data(tmp_path: Path) -> None:
    curated = tmp_path / "curated"
    _synthesise_history(curated)
    tables = reports.run_reports(str(curated), "2022-03-31", Settings.from_env().sql_dir)
    years = {(r["force"], r["financial_year"]): r for r in tables["incidents_by_year"].to_pylist()}
    line = years[("all forces", "2021-22")]
    assert line["incidents"] == 1415 and line["previous_incidents"] == 2044
    assert line["change"] == -629 and line["change_pct"] == -30.8
    assert line["months_with_data"] == 12
    assert years[("all forces", "2020-21")]["incidents"] == 2044
    assert years[("all forces", "2020-21")]["previous_incidents"] is None
    # per force lines add up to the total
    assert sum(r["incidents"] for (f, fy), r in years.items() if fy == "2021-22" and f != "all forces") == 1415
    # months: 24 of them, adding up to both years
    months = [r for r in tables["incidents_by_month"].to_pylist() if r["force"] == "all forces"]
    assert len(months) == 24 and sum(r["incidents"] for r in months) == 2044 + 1415
    assert months[0]["month"] == "2020-04" and months[-1]["month"] == "2022-03"
    # The page says it the way the partnership does.
    page = report_page.render_page("2022-03-31", tables, ["norfolk", "kent"])
    assert "2021-22: 1,415 incidents, −31% on 2,044 the year before" in page


def test_only_nights_up_to_the_report_night_count(tmp_path: Path) -> None:
    curated = tmp_path / "curated"
    _synthesise_history(curated)
    tables = reports.run_reports(str(curated), "2021-03-31", Settings.from_env().sql_dir)
    fys = {r["financial_year"] for r in tables["incidents_by_year"].to_pylist()}
    assert fys == {"2020-21"}


def test_empty_dataset_gives_empty_reports_and_a_page(tmp_path: Path) -> None:
    tables = reports.run_reports(str(tmp_path / "nothing"), NIGHT, Settings.from_env().sql_dir)
    assert set(tables) == set(reports.REPORTS)
    assert all(t.num_rows == 0 for t in tables.values())
    page = report_page.render_page(NIGHT, tables, ["norfolk"])
    assert page.count("<svg") == 4 and "no vehicle was read" in page


# ------------------------------------------------------------------------- real police.uk
def test_real_police_uk_month(police_uk: Path, data_dir: Path) -> None:
    """The real January 2019 files load with month precision and the report counts them as such."""
    night = "2019-01-15"
    ctx = context.Context.from_env()
    run_id = "test-police-uk"
    for path in sorted(police_uk.glob("2019-01-*-street.csv")):
        force = path.name.split("-")[2]
        ctx.zones.landing.copy_from(Zone(str(path.parent)), path.name, f"{force}/incidents/{night}/{path.name}")
        process.process_extract(ctx, land.land_extract(ctx, night, force, "incidents", run_id), run_id)
    publish.publish_night(ctx, night, run_id)
    published = sum(r["rows_published"] or 0 for r in ctx.ledger.extracts(night))
    assert published > 60_000
    built = reports.build_reports(ctx.settings, night)
    assert built["rows"]["incidents_by_month"] == 8  # seven forces and the total
    month = {r["force"]: r for r in _report(data_dir, "incidents_by_month", night).to_pylist()}
    assert month["all forces"]["month"] == "2019-01"
    assert month["all forces"]["incidents"] == month["all forces"]["month_precision"] == published
    year = {r["force"]: r for r in _report(data_dir, "incidents_by_year", night).to_pylist()}
    assert year["all forces"]["financial_year"] == "2018-19" and year["all forces"]["months_with_data"] == 1
    assert year["all forces"]["incidents"] == published and year["all forces"]["previous_incidents"] is None
    # Month-precision incidents are never "within two hours" of anything.
    assert _report(data_dir, "hare_coursing_night", night).num_rows == 0


# ------------------------------------------------------------------------ plain functions
def test_nights_to_report_follows_the_triggering_runs(data_dir: Path) -> None:
    ctx = context.Context.from_env()
    for night, run in (("2026-11-20", "scheduled__a"), ("2026-11-21", "scheduled__b"), ("2026-11-22", "manual__c")):
        ctx.ledger.event("night_published", night=night, run_id=run)
    assert reports.nights_to_report(ctx.ledger, ["scheduled__a"]) == ["2026-11-20", "2026-11-22"]
    assert reports.nights_to_report(ctx.ledger, ["scheduled__a", "scheduled__b"], "2026-11-01") == [
        "2026-11-01",
        "2026-11-20",
        "2026-11-21",
        "2026-11-22",
    ]
    assert reports.nights_to_report(ctx.ledger, ["unknown"]) == ["2026-11-22"]

    class Event:
        def __init__(self, run_id: str | None) -> None:
            self.source_run_id = run_id

    events = {"a": [Event("scheduled__a"), Event(None)], "b": [Event("scheduled__a"), Event("scheduled__b")]}
    assert reports.source_run_ids(events) == ["scheduled__a", "scheduled__b"]
    assert reports.source_run_ids(None) == []


def test_html_helpers_escape_markup() -> None:
    nasty = """<script>alert('x') & "y"</script>"""
    safe = "&lt;script&gt;alert(&#x27;x&#x27;) &amp; &quot;y&quot;&lt;/script&gt;"
    assert html.escape(nasty) == safe
    assert html.escape(None) == "" and html.escape(3) == "3"
    doc = html.document(nasty, "<p>body</p>", "p{color:red}")
    assert f"<title>{safe}</title>" in doc and "<script" not in doc and "<p>body</p>" in doc
    assert "default-src 'none'" in doc
    cells = html.table([nasty, "n"], [[nasty, 1]], {1})
    assert "<script" not in cells and cells.count(safe) == 2 and "<td class=n>1</td>" in cells
    assert html.table(["a"], [], empty="<none>") == '<p class="empty">&lt;none&gt;</p>'
    night = report_page.render_index(['2026-11-27"><script>'])
    assert "<script" not in night and 'href="html/2026-11-27&quot;&gt;&lt;script&gt;.html"' in night


def test_reports_zone(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert reports.reports_uri(Settings.from_env()) == str(data_dir.resolve() / "reports")
    monkeypatch.setenv("XFORCE_CURATED_URI", "s3://exchange/prod/curated")
    assert reports.reports_uri(Settings.from_env()) == "s3://exchange/prod/reports"
    monkeypatch.setenv("XFORCE_REPORTS_URI", "s3://analysts/reports")
    assert reports.reports_uri(Settings.from_env()) == "s3://analysts/reports"


def test_reports_read_and_write_s3(planted, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same reports from an s3:// curated zone (pyarrow's S3 filesystem; no DuckDB extension), into s3://."""
    import boto3

    curated = planted["data"] / "curated"
    with s3_in_process(monkeypatch) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="exchange", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
        for path in curated.rglob("*.parquet"):  # the planted night, all seven forces
            s3.upload_file(str(path), "exchange", f"prod/curated/{path.relative_to(curated)}")
        monkeypatch.setenv("XFORCE_CURATED_URI", "s3://exchange/prod/curated")
        monkeypatch.delenv("XFORCE_REPORTS_URI", raising=False)
        settings = Settings.from_env()
        built = reports.build_reports(settings, NIGHT)
        where = f"s3://exchange/prod/reports/crossing_vehicles/date={NIGHT}/part-0.parquet"
        assert built["files"]["crossing_vehicles"] == where and built["rows"]["crossing_vehicles"] == 1
        reports_zone = Zone("s3://exchange/prod/reports")
        for name in reports.REPORTS:  # the same tables as from the local folder
            assert reports_zone.read_parquet(layout.report_file(name, NIGHT)).equals(_report(planted["data"], name))
        page = reports_zone.read_bytes(layout.report_page(NIGHT)).decode()
        target = next(v for v in planted["truth"]["_planted"]["vehicles"] if v["qualifies"])
        assert token(target["plate"])[:16] in page
