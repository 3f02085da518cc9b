"""The store's pieces on their own: one ledger per process and URL, the bounded incident index, the layout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from xforce.errors import ConfigError, XforceError
from xforce.outcome import Outcome
from xforce.settings import PROJECT_ROOT
from xforce.store import layout
from xforce.store.connections import ZONE_NAMES, Zones
from xforce.store.incidents import IncidentIndex
from xforce.store.ledger import open_ledger
from xforce.store.zones import Zone

pytestmark = pytest.mark.unit

SQL_DIR = str(PROJECT_ROOT / "sql")


def test_open_ledger_gives_one_ledger_per_url_and_migrates_a_new_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.sqlite'}"
    first = open_ledger(url, SQL_DIR)
    assert open_ledger(url, SQL_DIR) is first
    first.record("2026-11-27", "norfolk", "incidents", status="landed")
    (tmp_path / "l.sqlite").unlink()  # e.g. `make clean` between two commands of one process
    again = open_ledger(url, SQL_DIR)
    assert again is not first
    assert again.get("2026-11-27", "norfolk", "incidents") is None  # a fresh, migrated ledger
    other = open_ledger(f"sqlite:///{tmp_path / 'm.sqlite'}", SQL_DIR)
    assert other is not again


def test_an_outcome_is_recorded_once_with_every_field(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'l.sqlite'}", SQL_DIR)
    ledger.record("2026-11-27", "kent", "seizures", status="landed", sha256="ab" * 32)
    outcome = Outcome(
        "2026-11-27",
        "kent",
        "seizures",
        "validated",
        rows_in=5,
        rows_published=3,
        rows_quarantined=2,
        reasons={"bad_time": 1, "bad_code": 1},
        errors=["a.csv: truncated"],
        warnings=["", "one refused file"],
        staged={"published": "p", "quarantine": "q"},
    )
    outcome.quarantine_whole("too_few_rows", "rows_in = 5 (min 10)")
    ledger.record_outcome(outcome, "r1")
    row = ledger.get("2026-11-27", "kent", "seizures")
    assert row is not None
    assert (row["status"], row["rows_in"], row["rows_published"], row["rows_quarantined"]) == ("quarantined", 5, 0, 5)
    assert row["reasons"] == {"too_few_rows": 5}
    assert row["error"] == "rows_in = 5 (min 10); a.csv: truncated"
    assert row["warning"] == "one refused file"
    assert row["staged"] is None and row["run_id"] == "r1"
    assert row["sha256"] == "ab" * 32  # what the land step recorded is kept
    assert outcome.ref() == {
        "night": "2026-11-27",
        "force": "kent",
        "dataset": "seizures",
        "status": "quarantined",
        "rows_in": 5,
        "rows_published": 0,
        "rows_quarantined": 5,
    }


def test_ledger_queries_answer_from_the_record(tmp_path: Path) -> None:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'l.sqlite'}", SQL_DIR)
    for night, rows in (("2026-11-25", 10), ("2026-11-26", 20), ("2026-11-27", 30)):
        ledger.record(night, "norfolk", "anpr_reads", status="published", rows_in=rows)
        ledger.event("night_published", night=night, run_id=f"run-{night}")
    ledger.record("2026-11-26", "suffolk", "anpr_reads", status="missing")
    ledger.event("alert", night="2026-11-26", force="suffolk", dataset="anpr_reads")
    assert ledger.latest_night() == "2026-11-27"
    assert ledger.latest_published_night() == "2026-11-27"
    assert ledger.published_nights() == {"2026-11-25", "2026-11-26", "2026-11-27"}
    assert ledger.published_nights(["run-2026-11-26", "nope"]) == {"2026-11-26"}
    assert ledger.published_nights([]) == set()
    assert sorted(ledger.published_volumes("norfolk", "anpr_reads", "2026-11-25", "2026-11-27")) == [10, 20]
    assert ledger.has_alert("2026-11-26", "suffolk", "anpr_reads")
    assert not ledger.has_alert("2026-11-27", "suffolk", "anpr_reads")
    assert ledger.alert_counts("2026-11-20", "2026-11-30") == {"suffolk": 1}
    assert {(r["night"], r["force"]) for r in ledger.extract_rows("2026-11-26", "2026-11-26")} == {
        ("2026-11-26", "norfolk"),
        ("2026-11-26", "suffolk"),
    }


def _incidents(zone: Zone, rel: str, ids: list[str], hour: int) -> None:
    at = datetime(2026, 11, 1, hour, tzinfo=UTC)
    table = pa.table({"record_id": ids, "occurred_at": pa.array([at] * len(ids), pa.timestamp("us", "UTC"))})
    with zone.parquet_writer(rel, table.schema) as writer:
        writer.write_table(table)


def test_incident_index_prefers_staged_then_the_newest_night_and_stops_when_all_are_found(tmp_path: Path) -> None:
    staging, curated = Zone(str(tmp_path / "staging")), Zone(str(tmp_path / "curated"))
    _incidents(staging, layout.staged("r1", "published", "incidents", "2026-11-27", "kent"), ["A"], 1)
    _incidents(curated, layout.part_file("incidents", "2026-11-26", "kent"), ["A", "B"], 2)
    _incidents(curated, layout.part_file("incidents", "2026-11-20", "kent"), ["B", "C"], 3)
    _incidents(curated, layout.part_file("incidents", "2026-11-28", "kent"), ["D"], 4)  # after the night: never
    _incidents(curated, layout.part_file("incidents", "2026-11-26", "essex"), ["E"], 5)  # another force: never
    index = IncidentIndex(staging, curated, "r1", "kent", "2026-11-27")
    found = index.occurred_at(["A", "B"])
    assert {k: v.hour for k, v in found.items()} == {"A": 1, "B": 2}
    assert index.partitions_read == 2  # staged, then 2026-11-26: all found, 2026-11-20 never read
    assert {k: v.hour for k, v in index.occurred_at(["B", "C", "D", "E", None]).items()} == {"B": 2, "C": 3}  # type: ignore[list-item]
    assert index.partitions_read == 5  # C, D, E looked for: the three partitions of kent up to the night
    index.occurred_at(["D", "E"])  # known to be absent: nothing read again
    assert index.partitions_read == 5
    known = index.known(pa.chunked_array([["A", None, "D", "C"]]))
    assert known.to_pylist() == [True, False, False, True]


def test_layout_paths() -> None:
    assert (
        layout.part_file("anpr_reads", "2026-11-27", "kent")
        == "dataset=anpr_reads/date=2026-11-27/force=kent/part-0.parquet"
    )
    assert layout.manifest("seizures", "2026-11-27") == "dataset=seizures/date=2026-11-27/_manifest.json"
    assert layout.staged("manual__x", "quarantine", "incidents", "2026-11-27", "kent").startswith("manual__x-")
    assert layout.staged("a", "published", "incidents", "n", "f") != layout.staged(
        "b", "published", "incidents", "n", "f"
    )
    with pytest.raises(ValueError, match="staged kind"):
        layout.staged("r", "elsewhere", "incidents", "2026-11-27", "kent")
    assert layout.raw_partition(layout.raw_file("kent", "seizures", "2026-11-27", "ab12", "s.csv")) == (
        "kent",
        "seizures",
        "2026-11-27",
        "ab12",
    )
    with pytest.raises(XforceError):
        layout.map_dir("bad version!")
    assert layout.night_of("date=2026-11-27") == "2026-11-27" and layout.night_of("force=kent") is None


def test_zones_open_once_and_by_name_only_the_known_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xforce.settings import Settings

    monkeypatch.setenv("XFORCE_DATA_DIR", str(tmp_path))
    zones = Zones(Settings.from_env())
    assert zones.curated is zones.curated is zones.named("curated")
    assert {zones.named(n).uri for n in ZONE_NAMES} == {str(tmp_path / n) for n in ZONE_NAMES}
    with pytest.raises(ConfigError, match="no zone named 'ledger'"):
        zones.named("ledger")
