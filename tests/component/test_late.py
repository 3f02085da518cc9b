"""Corrections and late extracts without Airflow: the `superseded` ledger event and `xforce.exchange.late`."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest

from helpers import run_night_plain
from xforce import context
from xforce.exchange import late
from xforce.store import layout
from xforce_tools.generate import extract_path, generate_night

pytestmark = pytest.mark.component

NIGHT = "2026-11-20"


def _generate(landing: Path, force: str, dataset: str) -> None:
    """One extract only: the other force x dataset pairs are missing, which costs nothing to process."""
    generate_night(date.fromisoformat(NIGHT), landing, anpr_reads=40, seed=5, forces=[force], datasets=[dataset])


def _partition_rows(ctx: context.Context, dataset: str, force: str) -> int:
    part = layout.part_file(dataset, NIGHT, force)
    n = 0
    for zone in ("curated", "quarantine"):
        if ctx.zones.named(zone).exists(part):
            n += ctx.zones.named(zone).read_parquet(part).num_rows
    return n


def test_changed_redelivery_supersedes_the_earlier_one(data_dir: Path) -> None:
    landing = data_dir / "landing"
    _generate(landing, "norfolk", "incidents")
    ctx = context.Context.from_env()
    run_night_plain(ctx, NIGHT)
    before = ctx.ledger.get(NIGHT, "norfolk", "incidents")
    assert before is not None and before["status"] == "published"
    # The force re-delivers a corrected file: its last record withdrawn.
    path = extract_path(landing, "norfolk", "incidents", date.fromisoformat(NIGHT))
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    run_night_plain(ctx, NIGHT)
    after = ctx.ledger.get(NIGHT, "norfolk", "incidents")
    assert after is not None and after["status"] == "published"
    assert after["sha256"] != before["sha256"] and after["rows_in"] == before["rows_in"] - 1
    (event,) = [e for e in ctx.ledger.events(NIGHT) if e["event"] == "superseded"]
    import json

    detail = json.loads(event["detail"])
    assert (detail["old_sha256"], detail["new_sha256"]) == (before["sha256"], after["sha256"])
    assert (event["force"], event["dataset"]) == ("norfolk", "incidents")
    # The audit copy of the first delivery is kept beside the new one.
    raw = ctx.zones.raw
    assert all(raw.exists(p) for p in detail["old_raw"])
    assert all(raw.exists(f["raw"]) for f in after["files"])
    assert {f["raw"] for f in after["files"]}.isdisjoint(detail["old_raw"])
    # The night now holds exactly the corrected extract.
    assert _partition_rows(ctx, "incidents", "norfolk") == after["rows_in"]
    # An identical re-delivery supersedes nothing.
    run_night_plain(ctx, NIGHT)
    assert [e["event"] for e in ctx.ledger.events(NIGHT)].count("superseded") == 1


def test_late_extract_is_found_once_and_not_after_its_rerun(data_dir: Path) -> None:
    landing = data_dir / "landing"
    _generate(landing, "norfolk", "incidents")
    _generate(landing, "kent", "anpr_reads")
    held_back = landing / "kent" / "anpr_reads" / NIGHT
    stash = data_dir / "stash"
    shutil.move(held_back, stash)
    ctx = context.Context.from_env()
    today = date.fromisoformat(NIGHT) + timedelta(days=1)
    assert late.find_late_nights(ctx, today=today) == []  # nothing landed for an unpublished night counts
    run_night_plain(ctx, NIGHT)
    assert ctx.ledger.get(NIGHT, "kent", "anpr_reads")["status"] == "missing"  # type: ignore[index]
    assert late.find_late_nights(ctx, today=today) == []  # everything in landing is in the ledger

    shutil.move(stash, held_back)  # kent's ANPR extract arrives after the run
    (found,) = late.find_late_nights(ctx, today=today)
    assert found.night == NIGHT
    assert [(e.force, e.dataset, e.reason) for e in found.extracts] == [("kent", "anpr_reads", "missing at its run")]
    assert found.conf() == {"trigger_run_id": found.run_id, "conf": {"night": NIGHT}}
    assert late.find_late_nights(ctx, today=today)[0].run_id == found.run_id  # same files, same run id
    assert late.find_late_nights(ctx, today=today + timedelta(days=30)) == []  # outside the look-back

    run_night_plain(ctx, NIGHT)  # what the triggered run does
    assert ctx.ledger.get(NIGHT, "kent", "anpr_reads")["status"] == "published"  # type: ignore[index]
    assert late.find_late_nights(ctx, today=today) == []

    # A same-size change is caught by its checksum, and gets a run id of its own.
    path = next(held_back.iterdir())
    data = bytearray(path.read_bytes())
    i = data.rindex(b"\n", 0, len(data) - 1) - 1
    data[i] = ord("7") if data[i] != ord("7") else ord("8")
    path.write_bytes(bytes(data))
    (changed,) = late.find_late_nights(ctx, today=today)
    assert [(e.force, e.dataset, e.reason) for e in changed.extracts] == [("kent", "anpr_reads", "changed file")]
    assert changed.run_id != found.run_id
    # A new file beside a landed one is late too; names the pipeline refuses are not.
    (held_back / ".partial.tmp").write_text("x")
    (held_back / "bad name.csv").write_text("x")
    (changed_again,) = late.find_late_nights(ctx, today=today)
    assert changed_again.extracts == changed.extracts
    (landing / "norfolk" / "incidents" / NIGHT / "incidents-extra.csv").write_text("x")
    (more,) = late.find_late_nights(ctx, today=today)
    assert ("norfolk", "incidents", "new file") in [(e.force, e.dataset, e.reason) for e in more.extracts]
