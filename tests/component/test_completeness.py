"""Completeness as data, and reports that say what they stand on (issue #18).

One night of all seven forces with the crossing vehicle planted in Norfolk, Suffolk and
Cambridgeshire, Suffolk's ANPR extract missing and Kent's seizures refused for a wrong header, run
without Airflow; then the night's completeness table (``write_completeness`` after ``publish_night``)
and the reports.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import run_night_plain
from xforce import context, dictionary
from xforce.exchange import completeness as comp
from xforce.quality.config import load_config
from xforce.reports import page as report_page
from xforce.reports import queries as reports
from xforce.schemas import DATASETS, SCHEMA_VERSION
from xforce_tools.generate import generate_night

pytestmark = pytest.mark.component

NIGHT = "2026-11-26"
FORCES = ("norfolk", "suffolk", "cambridgeshire", "bedfordshire", "hertfordshire", "essex", "kent")


def publish_night_with_gaps(data: Path) -> SimpleNamespace:
    """The scenario: generate, break two extracts, publish the night, write its completeness, build reports.

    (Also used by tests/integration/test_completeness_screens.py.) Zones under ``data``.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XFORCE_DATA_DIR", str(data))
        for var in ("XFORCE_CURATED_URI", "XFORCE_LEDGER_URL", "XFORCE_REPORTS_URI", "XFORCE_LANDING_URI"):
            mp.delenv(var, raising=False)
        landing = data / "landing"
        truth = generate_night(date.fromisoformat(NIGHT), landing, anpr_reads=50, seed=3, plant_crossing_vehicle=True)
        (landing / "suffolk" / "anpr_reads" / NIGHT / "anpr_reads.csv").unlink()  # Suffolk's ANPR: missing
        kent = landing / "kent" / "seizures" / NIGHT / "seizures.csv"  # Kent's seizures: wrong header
        header, rest = kent.read_bytes().split(b"\n", 1)
        kent.write_bytes(header.replace(b'"Item"', b'"Item Kind"') + b"\n" + rest)
        ctx = context.Context.from_env()
        run_id = run_night_plain(ctx, NIGHT)  # publish_night, as the DAG runs it
        table = comp.completeness_from_manifests(
            ctx.zones.curated, NIGHT, ctx.registry, load_config(ctx.settings.config_dir)
        )
        written = comp.write_completeness(ctx.zones.curated, NIGHT, table)
        built = reports.build_reports(ctx.settings, NIGHT)
        return SimpleNamespace(data=data, truth=truth, ctx=ctx, run_id=run_id, written=written, built=built)


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return publish_night_with_gaps(tmp_path_factory.mktemp("completeness") / "data")


def _file(ns: SimpleNamespace) -> Path:
    return ns.data / "curated" / ns.written


def _expected(rows: list[dict]) -> None:
    by = {(r["force"], r["dataset_name"]): r for r in rows}
    assert len(rows) == len(FORCES) * len(DATASETS) == 21
    assert by[("suffolk", "anpr_reads")]["status"] == "missing"
    assert by[("suffolk", "anpr_reads")]["received_at"] is None
    assert by[("suffolk", "anpr_reads")]["rows_published"] == 0
    kent = by[("kent", "seizures")]
    assert kent["status"] == "quarantined" and "wrong header" in kent["error"]
    assert kent["rows_published"] == 0
    others = [r for k, r in by.items() if k not in {("suffolk", "anpr_reads"), ("kent", "seizures")}]
    assert all(r["status"] in ("published", "published_with_warnings", "late") for r in others), others
    assert all(r["rows_published"] > 0 for r in others)


def test_completeness_file_is_where_the_layout_puts_it(night) -> None:
    assert night.written == f"dataset=completeness/date={NIGHT}/part-0.parquet"
    assert _file(night).is_file()
    # written atomically by the zone: no temporary file is left beside it
    assert [p.name for p in _file(night).parent.iterdir()] == ["part-0.parquet"]


def test_completeness_rows_with_pyarrow(night) -> None:
    import pyarrow.dataset as ds

    table = ds.dataset(
        night.data / "curated" / "dataset=completeness", format="parquet", partitioning="hive"
    ).to_table()
    rows = table.to_pylist()
    _expected(rows)
    assert {r["date"] for r in rows} == {NIGHT} and {r["night"] for r in rows} == {NIGHT}
    assert {r["run_id"] for r in rows} == {night.run_id}
    # The same truth as the manifest and the ledger.
    for r in rows:
        manifest = json.loads(
            (night.data / "curated" / f"dataset={r['dataset_name']}" / f"date={NIGHT}" / "_manifest.json").read_text()
        )
        entry = manifest["forces"][r["force"]]
        assert r["rows_published"] == int(entry["rows_published"] or 0)
        assert r["rows_quarantined"] == int(entry["rows_quarantined"] or 0)
        assert {x["reason"]: x["rows"] for x in r["reasons"]} == (entry["reasons"] or {})
        ledger = night.ctx.ledger.get(NIGHT, r["force"], r["dataset_name"])
        assert (ledger or {}).get("status", "missing") == entry["status"]
    # lateness against the cut-off: consistent with received_at
    cfg = load_config(night.ctx.settings.config_dir)
    for r in rows:
        assert r["cutoff_at"] == cfg.cutoff_at(NIGHT, r["force"], r["dataset_name"])
        if r["received_at"] is not None:
            assert r["late"] == (r["received_at"] > r["cutoff_at"])
            assert r["minutes_after_cutoff"] == (r["received_at"] - r["cutoff_at"]).total_seconds() // 60


def test_completeness_rows_with_duckdb(night) -> None:
    import duckdb

    path = (night.data / "curated" / "dataset=completeness" / "**" / "*.parquet").as_posix()
    con = duckdb.connect()
    rel = con.sql(f"SELECT * FROM read_parquet('{path}', hive_partitioning = true) ORDER BY force, dataset_name")
    rows = [dict(zip(rel.columns, r, strict=True)) for r in rel.fetchall()]
    _expected(rows)
    assert {r["dataset"] for r in rows} == {"completeness"}  # DuckDB reads every key=value of the path
    assert {r["date"] for r in rows} == {date.fromisoformat(NIGHT)}  # DATE, as the guide says
    counts = dict(con.sql(f"SELECT status, count(*) FROM read_parquet('{path}') GROUP BY status").fetchall())
    assert counts["missing"] == 1 and counts["quarantined"] == 1
    assert sum(counts.values()) == 21


def test_completeness_rows_with_polars(night) -> None:
    import polars as pl

    df = pl.scan_parquet(
        (night.data / "curated" / "dataset=completeness" / "**" / "*.parquet").as_posix(), hive_partitioning=True
    ).collect()
    _expected(df.to_dicts())
    assert df.schema["date"] == pl.Date and df.schema["received_at"] == pl.Datetime("us", "UTC")
    reasons = df.filter(pl.col("rows_quarantined") > 0).select("reasons").to_series().to_list()
    assert reasons and all(isinstance(x, list) and x and set(x[0]) == {"reason", "rows"} for x in reasons)


def test_completeness_file_carries_field_and_file_metadata(night) -> None:
    pf = pq.ParquetFile(_file(night))
    meta = {k.decode(): v.decode() for k, v in pf.schema_arrow.metadata.items() if k != b"ARROW:schema"}
    assert meta["dataset"] == "completeness" and meta["night"] == NIGHT
    assert meta["schema_version"] == SCHEMA_VERSION and meta["run_id"] == night.run_id
    status = pf.schema_arrow.field("status")
    assert b"published_with_warnings" in status.metadata[b"description"]
    assert pf.schema_arrow.field("minutes_after_cutoff").metadata[b"unit"] == b"minutes"


def test_statuses_from_manifest_entries() -> None:
    cfg = load_config(str(Path(__file__).resolve().parents[2] / "config"))
    registry = SimpleNamespace(forces={"kent": SimpleNamespace(name="Kent Police")})
    cutoff = cfg.cutoff_at(NIGHT, "kent", "incidents")
    late = datetime(2026, 11, 27, 5, 0, tzinfo=UTC).isoformat()
    early = datetime(2026, 11, 27, 0, 30, tzinfo=UTC).isoformat()
    entries = {
        "incidents": {"kent": {"status": "published", "received_at": late, "rows_published": 3}},
        "anpr_reads": {"kent": {"status": "published", "received_at": early, "warning": "low_volume"}},
        "seizures": {"kent": {"status": "validated", "received_at": early, "error": "did not finish"}},
    }
    rows = {r["dataset_name"]: r for r in comp.completeness_table(NIGHT, entries, registry, cfg, "r1").to_pylist()}
    assert rows["incidents"]["status"] == "late" and rows["incidents"]["late"]
    assert rows["incidents"]["minutes_after_cutoff"] == (datetime.fromisoformat(late) - cutoff).total_seconds() // 60
    assert rows["anpr_reads"]["status"] == "published_with_warnings" and not rows["anpr_reads"]["late"]
    assert rows["anpr_reads"]["minutes_after_cutoff"] < 0
    assert rows["seizures"]["status"] == "failed"
    empty = comp.completeness_table(NIGHT, {}, registry, cfg).to_pylist()
    assert [r["status"] for r in empty] == ["missing"] * 3
    assert empty[0]["reasons"] == [] and empty[0]["received_at"] is None
    assert set(dictionary.COMPLETENESS_STATUSES) >= {r["status"] for r in rows.values()}


# -------------------------------------------------------------------------------- reports
def _report(ns: SimpleNamespace, name: str) -> pa.Table:
    return pq.read_table(ns.data / "reports" / name / f"date={NIGHT}" / "part-0.parquet")


def _page(ns: SimpleNamespace) -> str:
    return (ns.data / "reports" / "html" / f"{NIGHT}.html").read_text(encoding="utf-8")


def test_page_opens_with_the_nights_summary_line(night) -> None:
    page = _page(night)
    line = report_page.night_summary(_report(night, "night_coverage").to_pylist())
    assert line.startswith("19 of 21 extracts published; ")
    assert "Suffolk ANPR missing" in line
    assert "Kent seizures quarantined: wrong header" in line
    summary = page.split('id="summary">', 1)[1].split("</p>", 1)[0]
    assert summary.startswith("19 of 21 extracts published; ")
    assert "Suffolk ANPR missing" in summary and "Kent seizures quarantined: wrong header" in summary
    # the summary is the first thing under the title
    assert page.index('id="summary"') < page.index("<h2>")
    # readable header: no raw JSON, the night, built at, schema version and coverage
    assert "{&quot;" not in page and '{"' not in page
    for label in ("Night", "Built at", "Schema version", "Coverage"):
        assert f"<dt>{label}</dt>" in page
    assert "<dd>19 of 21 extracts published</dd>" in page


def test_crossing_vehicles_count_names_the_absent_forces(night) -> None:
    crossing = _report(night, "crossing_vehicles")
    # Planted in Norfolk, Suffolk and Cambridgeshire; with Suffolk's reads missing it shows in two ...
    target = next(v for v in night.truth["_planted"]["vehicles"] if v["role"] == "crossing_vehicle")
    assert {r["force"] for r in target["reads"]} == {"norfolk", "suffolk", "cambridgeshire"}
    rows = crossing.to_pylist()
    assert [r["forces"] for r in rows if r["n_forces"] == 2 and "suffolk" not in r["forces"]]
    # ... and the report's Parquet and page say why.
    assert all(r["anpr_reads_absent_forces"] == ["suffolk"] for r in rows)
    assert all(r["incidents_absent_forces"] == [] for r in rows)
    page = _page(night)
    count = page.split('id="crossing-count">', 1)[1].split("</p>", 1)[0]
    assert f"Vehicles flagged: {crossing.num_rows}" in count and "no ANPR reads from suffolk" in count
    assert "(no ANPR reads from suffolk)" in page  # beside the count in the chart too


def test_whole_tokens_in_monospace(night) -> None:
    crossing = _report(night, "crossing_vehicles")
    page = _page(night)
    for token in crossing.column("plate_token").to_pylist():
        assert len(token) == 64 and f'<code class="token">{token}</code>' in page
    assert "user-select:all" in page and "monospace" in page
    assert "…</td>" not in page


def test_index_shows_coverage_and_headline_numbers(night) -> None:
    index = (night.data / "reports" / "index.html").read_text(encoding="utf-8")
    item = index.split(f'data-night="{NIGHT}"', 1)[1].split("</li>", 1)[0]
    assert f'href="html/{NIGHT}.html"' in item
    assert "19 of 21 extracts published" in item and "Suffolk ANPR missing" in item
    assert f"{_report(night, 'crossing_vehicles').num_rows:,} vehicle(s) flagged" in item
    assert "hare-coursing incidents" in item
    assert "<script" not in index.lower()


def test_history_reports_mark_months_and_forces_with_missing_nights(night) -> None:
    gaps = _report(night, "coverage_by_month").to_pylist()
    key = {(r["force"], r["dataset_name"], r["month"]): r for r in gaps}
    assert key[("suffolk", "anpr_reads", "2026-11")]["absent_nights"] == [NIGHT]
    assert key[("kent", "seizures", "2026-11")]["nights_absent"] == 1
    page = _page(night)
    assert 'data-gaps="seizures"' in page and "2026-11: kent (1 night: 2026-11-26)" in page


def test_a_night_without_completeness_says_coverage_is_unknown(tmp_path: Path) -> None:
    tables = reports.run_reports(str(tmp_path / "nothing"), NIGHT, reports.Path(__file__).parents[2] / "sql")
    assert tables["night_coverage"].num_rows == 0
    page = report_page.render_page(NIGHT, tables, list(FORCES))
    assert "Coverage unknown" in page and "unknown (no completeness table)" in page


def test_data_docs_index_shows_coverage_per_night(night) -> None:
    index = (night.data / "docs" / "validation" / "index.html").read_text(encoding="utf-8")
    row = index.split(f'<tr data-night="{NIGHT}">', 1)[1].split("</tr>", 1)[0]
    assert f'href="date={NIGHT}/index.html"' in row and "19 of 21" in row
    assert "suffolk anpr_reads missing" in row and "kent seizures quarantined" in row
    published = sum(int(r["rows_published"] or 0) for r in night.ctx.ledger.extracts(NIGHT))
    assert f"<td class=num>{published:,}</td>" in row


def test_scorecard_explains_the_cut_off() -> None:
    from xforce.airflow import views

    cfg = load_config(str(Path(__file__).resolve().parents[2] / "config"))

    class Ledger:
        def extract_rows(self, first: str, last: str) -> list[dict]:
            return []

        def alert_counts(self, first: str, last: str) -> dict[str, int]:
            return {}

    registry = SimpleNamespace(forces={"kent": SimpleNamespace(name="Kent Police")})
    html = views.scorecard_html(SimpleNamespace(ledger=Ledger(), quality=cfg, registry=registry), NIGHT)
    head = html.split("<p class=muted id=cutoff>", 1)[1].split("</p>", 1)[0]
    assert f"lands by {cfg.cutoff} {cfg.timezone} on the morning after its night" in head
    assert "counts as late" in head and "config/quality.yaml" in head
