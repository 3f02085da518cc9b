"""Faults around a night: a second run beside the first, a run killed (``os._exit``, as ``kill -9``)
at every write of its publish, and re-deliveries refused whole.

What a reader could see is checked at every instant: a manifest either says ``publishing`` or lists
files whose SHA-256 and row counts are what it says; after the next attempt every record of every
extract is in curated or quarantine exactly once and staging is empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from helpers import run_night_plain
from xforce.context import Context
from xforce.errors import NightBusyError
from xforce.exchange import land, process, publish
from xforce.store import layout
from xforce_tools.generate import extract_path, generate_night

pytestmark = pytest.mark.component

NIGHT = "2026-11-20"
FORCES = ["norfolk", "kent"]
ROOT = Path(__file__).resolve().parents[2]


def _generate(landing: Path, reads: int = 60, seed: int = 3) -> None:
    generate_night(
        date.fromisoformat(NIGHT), landing, anpr_reads=reads, seed=seed, forces=FORCES, datasets=["anpr_reads"]
    )


def _stage(ctx: Context, run_id: str) -> None:
    """Land and process every extract of the night for ``run_id`` (everything but publish)."""
    for force in FORCES:
        process.process_extract(ctx, land.land_extract(ctx, NIGHT, force, "anpr_reads", run_id), run_id)


def _reader_sees_no_mixed_night(ctx: Context) -> dict[str, Any] | None:
    """What a reader following the manifest sees is whole, or it is told to wait. Returns the manifest."""
    rel = layout.manifest("anpr_reads", NIGHT)
    if not ctx.zones.curated.exists(rel):
        return None
    manifest: dict[str, Any] = ctx.zones.curated.read_json(rel)
    if manifest["state"] == "publishing":
        return manifest
    assert manifest["state"] == "published"
    for force, entry in manifest["forces"].items():
        if entry.get("file"):
            assert ctx.zones.curated.sha256(entry["file"]) == entry["file_sha256"], force
            rows = pq.read_metadata(ctx.zones.curated.full(entry["file"])).num_rows
            assert rows == entry["rows_published"], force
    return manifest


def _every_record_once(ctx: Context, data_dir: Path) -> None:
    for force in FORCES:
        row = ctx.ledger.get(NIGHT, force, "anpr_reads")
        assert row is not None and row["status"] == "published", (force, row and row["status"])
        part = layout.part_file("anpr_reads", NIGHT, force)
        n = sum(z.read_parquet(part).num_rows for z in (ctx.zones.curated, ctx.zones.quarantine) if z.exists(part))
        assert n == row["rows_in"], force
        assert (
            len(list((data_dir / "curated" / "dataset=anpr_reads" / f"date={NIGHT}" / f"force={force}").iterdir())) == 1
        )
    assert not any((data_dir / "staging").iterdir()), "staging swept"
    assert ctx.ledger.unfinished_publishes(NIGHT) == []


_CRASHING_PUBLISH = """
import os, sys
from xforce.context import Context
from xforce.exchange import publish
from xforce.store.ledger import Ledger
from xforce.store.zones import Zone

night, run_id, crash_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = [0]

def crashing(original):
    def write(*args, **kwargs):
        if calls[0] == crash_at:
            os._exit(9)  # no cleanup, no finally: as kill -9 at this instant
        calls[0] += 1
        return original(*args, **kwargs)
    return write

for cls, name in ((Zone, "copy_from"), (Zone, "write_json"), (Zone, "delete"), (Ledger, "commit_publish")):
    setattr(cls, name, crashing(getattr(cls, name)))
publish.publish_night(Context.from_env(), night, run_id)
print("COMPLETED", calls[0])
"""


def _publish_in_child(data_dir: Path, run_id: str, crash_at: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XFORCE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-c", _CRASHING_PUBLISH, NIGHT, run_id, str(crash_at)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )


_CRASHING_STAGE = """
import os, sys
from xforce.context import Context
from xforce.exchange import land, process
from xforce.store.ledger import Ledger
from xforce.store.zones import Zone

night, run_id, target, crash_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
calls = [0]
cls, name = {"Zone": Zone, "Ledger": Ledger}[target.split(".")[0]], target.split(".")[1]
original = getattr(cls, name)

def crashing(*args, **kwargs):
    if calls[0] == crash_at:
        os._exit(9)  # as kill -9 at this instant: no cleanup, no finally, the GX worker orphaned
    calls[0] += 1
    return original(*args, **kwargs)

setattr(cls, name, crashing)
ctx = Context.from_env()
for force in sys.argv[5:]:
    process.process_extract(ctx, land.land_extract(ctx, night, force, "anpr_reads", run_id), run_id)
print("COMPLETED", calls[0])
"""

#: Boundaries of land and validate where a run is killed: (method, which call of it, what it means).
_STAGE_BOUNDARIES = [
    ("Zone.copy_from", 0, "land: the first raw copy half made"),
    ("Ledger.record", 0, "land: raw copied, the ledger not yet told"),
    ("Ledger.event", 0, "land: the ledger says landed, its event not written"),
    ("Zone.parquet_writer", 0, "validate: the first staged file being opened"),
    ("Ledger.record_outcome", 0, "validate: staged, the outcome not recorded"),
    ("Ledger.record", 2, "land of the second force, after the first was staged and recorded"),
]


@pytest.mark.parametrize("redelivered", [False, True], ids=["first-time", "re-delivered"])
@pytest.mark.parametrize(("target", "crash_at", "meaning"), _STAGE_BOUNDARIES, ids=[b[2] for b in _STAGE_BOUNDARIES])
def test_a_run_killed_in_land_or_validate_leaves_the_night_whole_for_the_next(
    redelivered: bool, target: str, crash_at: int, meaning: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _generate(data_dir / "landing")
    monkeypatch.setenv("XFORCE_NIGHT_LEASE_SECONDS", "1")
    ctx = Context.from_env()
    before: dict[str, Any] | None = None
    if redelivered:  # a night already published; then both forces deliver again, with other reads
        run_night_plain(ctx, NIGHT)
        before = _reader_sees_no_mixed_night(ctx)
        _generate(data_dir / "landing", reads=45, seed=11)
    killed = subprocess.run(
        [sys.executable, "-c", _CRASHING_STAGE, NIGHT, "run__killed", target, str(crash_at), *FORCES],
        env={**os.environ, "XFORCE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert killed.returncode == 9, (meaning, killed.stdout[-500:], killed.stderr[-2000:])
    assert _reader_sees_no_mixed_night(ctx) == before  # readers see the last published night, untouched
    time.sleep(2.2)  # the killed run's lease expires (leases are kept to the second)
    run_night_plain(ctx, NIGHT)  # the next run
    manifest = _reader_sees_no_mixed_night(ctx)
    assert manifest is not None and manifest["state"] == "published"
    _every_record_once(ctx, data_dir)
    for force in FORCES:  # what was published is the last delivery, all of it
        row = ctx.ledger.get(NIGHT, force, "anpr_reads")
        assert row is not None and manifest["forces"][force]["sha256"] == row["sha256"]


@pytest.mark.parametrize("redelivered", [False, True], ids=["first-time", "re-delivered"])
def test_publish_killed_at_every_write_is_completed_by_the_retry(
    redelivered: bool, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _generate(data_dir / "landing")
    ctx = Context.from_env()
    if redelivered:  # a night already published; then both forces deliver again, with other reads
        run_night_plain(ctx, NIGHT)
        _generate(data_dir / "landing", reads=45, seed=11)
    run_id = f"test__{uuid.uuid4().hex[:8]}"
    _stage(ctx, run_id)
    staged = tmp_path / "staged"
    shutil.copytree(data_dir, staged)  # the night just before its publish
    shutil.copytree(staged, tmp_path / "probe")
    probe = _publish_in_child(tmp_path / "probe", run_id, crash_at=10**6)
    assert probe.returncode == 0, probe.stderr[-2000:]
    writes = int(probe.stdout.split("COMPLETED")[1])
    assert writes >= 10  # manifests marked, partitions copied, errors cleared, manifests, the commit
    for crash_at in range(writes):
        night_dir = tmp_path / f"crash-{crash_at}"
        shutil.copytree(staged, night_dir)
        monkeypatch.setenv("XFORCE_DATA_DIR", str(night_dir))
        killed = _publish_in_child(night_dir, run_id, crash_at)
        assert killed.returncode == 9, (crash_at, killed.stderr[-2000:])
        crashed = Context.from_env()
        _reader_sees_no_mixed_night(crashed)  # at the instant of the crash
        publish.publish_night(crashed, NIGHT, run_id)  # Airflow's retry of publish_night: same run
        manifest = _reader_sees_no_mixed_night(crashed)
        assert manifest is not None and manifest["state"] == "published" and manifest["run_id"] == run_id
        _every_record_once(crashed, night_dir)


def test_a_second_run_of_a_night_is_refused_while_the_first_holds_it(data_dir: Path) -> None:
    _generate(data_dir / "landing", reads=20)
    ctx = Context.from_env()
    first, second = "run__first", "run__second"
    land.land_extract(ctx, NIGHT, "norfolk", "anpr_reads", first)
    for step in (
        lambda: land.land_extract(ctx, NIGHT, "kent", "anpr_reads", second),
        lambda: publish.publish_night(ctx, NIGHT, second),
    ):
        with pytest.raises(NightBusyError, match=f"night {NIGHT} is being run by {first}"):
            step()
    assert ctx.ledger.get(NIGHT, "kent", "anpr_reads") is None  # the refused run touched nothing
    refusals = [e for e in ctx.ledger.events(NIGHT) if e["event"] == "night_busy"]
    assert [e["run_id"] for e in refusals] == [second, second]  # and said so, for the operator
    land.land_extract(ctx, NIGHT, "kent", "anpr_reads", first)
    for force in FORCES:
        ref = {"night": NIGHT, "force": force, "dataset": "anpr_reads", "status": "landed"}
        ref["files"] = ctx.ledger.get(NIGHT, force, "anpr_reads")["files"]  # type: ignore[index]
        process.process_extract(ctx, ref, first)
    publish.publish_night(ctx, NIGHT, first)  # releases the night
    run_night_plain(ctx, NIGHT)  # now the next run may
    _every_record_once(ctx, data_dir)


def test_a_dead_runs_lease_expires_and_its_staging_is_swept(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _generate(data_dir / "landing", reads=20)
    monkeypatch.setenv("XFORCE_NIGHT_LEASE_SECONDS", "1")
    ctx = Context.from_env()
    _stage(ctx, "run__died")  # staged everything, then died before publishing
    assert (data_dir / "staging" / layout.run_key("run__died")).is_dir()
    time.sleep(2.2)
    run_night_plain(ctx, NIGHT)
    _every_record_once(ctx, data_dir)
    swept = [json.loads(e["detail"])["folder"] for e in ctx.ledger.events() if e["event"] == "staging_swept"]
    assert swept == [layout.run_key("run__died")]


@pytest.mark.parametrize("redelivery", [b"", b"\x1f\x8b not gzip at all"], ids=["empty", "undecodable"])
def test_a_redelivery_refused_whole_keeps_the_published_night(redelivery: bytes, data_dir: Path) -> None:
    _generate(data_dir / "landing")
    ctx = Context.from_env()
    run_night_plain(ctx, NIGHT)
    part = layout.part_file("anpr_reads", NIGHT, "kent")
    before = ctx.zones.curated.read_parquet(part)
    kept = ctx.ledger.get(NIGHT, "kent", "anpr_reads")
    path = extract_path(data_dir / "landing", "kent", "anpr_reads", date.fromisoformat(NIGHT))
    path.write_bytes(redelivery)  # a half-uploaded or broken re-delivery
    run_night_plain(ctx, NIGHT)
    assert ctx.zones.curated.read_parquet(part).equals(before)
    row = ctx.ledger.get(NIGHT, "kent", "anpr_reads")
    assert row is not None and kept is not None
    assert (row["status"], row["rows_published"], row["sha256"]) == (
        "published",
        kept["rows_published"],
        kept["sha256"],
    )
    assert "re-delivery refused" in row["warning"]
    (event,) = [e for e in ctx.ledger.events(NIGHT) if e["event"] == "redelivery_rejected"]
    assert event["force"] == "kent" and json.loads(event["detail"])["sha256"] != kept["sha256"]
    entry = _reader_sees_no_mixed_night(ctx)["forces"]["kent"]  # type: ignore[index]
    assert entry["status"] == "published" and entry["redelivery_rejected"]["error"]
    raw = [f for f in (data_dir / "raw" / "kent" / "anpr_reads" / NIGHT).rglob("*") if f.is_file()]
    assert len(raw) == 2  # the refused delivery's raw copy is kept beside the published one
    _every_record_once(ctx, data_dir)


@pytest.mark.timeout(180)
def test_intake_never_blocks_and_never_skips_in_silence(data_dir: Path) -> None:
    _generate(data_dir / "landing", reads=20)
    folder = extract_path(data_dir / "landing", "kent", "anpr_reads", date.fromisoformat(NIGHT)).parent
    os.mkfifo(folder / "pipe.csv")  # opening it would wait for a writer for ever
    (folder / "later").mkdir()
    (folder / "later" / "more.csv").write_bytes(b"never read")
    (folder / ".upload.tmp").write_bytes(b"half an upload")
    ctx = Context.from_env()
    run_id = run_night_plain(ctx, NIGHT)
    row = ctx.ledger.get(NIGHT, "kent", "anpr_reads")
    assert row is not None and row["status"] == "published" and len(row["files"]) == 1
    refused = sorted(
        json.loads(e["detail"])
        for e in ctx.ledger.events(NIGHT)
        if e["event"] == "refused_file" and e["run_id"] == run_id
    )
    assert refused == [
        "'.upload.tmp': hidden (dot) file refused",
        "'pipe.csv': not a regular file (FIFO, socket or device) refused",
        "later/: subfolder refused",
    ]
    for reason in refused:
        assert reason in row["warning"]
    _every_record_once(ctx, data_dir)


def test_xforce_repair_completes_a_publish_a_crash_left_begun(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xforce import cli

    _generate(data_dir / "landing", reads=20)
    ctx = Context.from_env()
    run_id = "run__crashed"
    _stage(ctx, run_id)
    killed = _publish_in_child(data_dir, run_id, crash_at=6)  # the manifests marked, a partition copied
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert [p["run_id"] for p in ctx.ledger.unfinished_publishes(NIGHT)] == [run_id]
    assert _reader_sees_no_mixed_night(ctx)["state"] == "publishing"  # type: ignore[index]
    assert cli.main(["repair", "--date", NIGHT]) == 0
    said = capsys.readouterr()
    assert f"completed the interrupted publish of {run_id}" in said.out + said.err
    ctx.ledger.release_lease(NIGHT, run_id)  # (the crashed run's lease would expire; the operator may not wait)
    _every_record_once(ctx, data_dir)
    assert cli.main(["repair", "--date", NIGHT]) == 0  # nothing left to do


def test_a_file_still_being_written_is_left_for_a_later_run(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xforce.exchange import late

    _generate(data_dir / "landing", reads=20)
    ctx = Context.from_env()
    run_night_plain(ctx, NIGHT)  # published; then Kent starts uploading a re-delivery
    monkeypatch.setenv("XFORCE_SETTLE_SECONDS", "60")
    path = extract_path(data_dir / "landing", "kent", "anpr_reads", date.fromisoformat(NIGHT))
    path.write_bytes(path.read_bytes()[:100])  # half an upload, written just now
    assert late.find_late_nights(ctx, today=date.fromisoformat(NIGHT)) == []  # not a changed file yet
    ref = land.land_extract(ctx, NIGHT, "kent", "anpr_reads", "run__early")
    assert ref["status"] == "landed" and ref["files"][0]["bytes"] > 100  # the raw copy of the last delivery
    early = [(e["event"], e["detail"]) for e in ctx.ledger.events(NIGHT) if e["run_id"] == "run__early"]
    assert ("not_yet_stable", json.dumps(path.name)) in early
    ctx.ledger.release_lease(NIGHT, "run__early")
    old = time.time() - 120
    os.utime(path, (old, old))  # the upload settled two minutes ago: now it is taken (and judged)
    assert [n.night for n in late.find_late_nights(ctx, today=date.fromisoformat(NIGHT))] == [NIGHT]
    taken = land.land_extract(ctx, NIGHT, "kent", "anpr_reads", "run__later")
    assert taken["files"][0]["bytes"] == 100


def test_a_correction_beside_the_original_replaces_what_it_corrects(data_dir: Path) -> None:
    import csv
    import io

    _generate(data_dir / "landing", reads=40)
    ctx = Context.from_env()
    run_night_plain(ctx, NIGHT)
    part = layout.part_file("anpr_reads", NIGHT, "kent")
    first = ctx.zones.curated.read_parquet(part)
    original = extract_path(data_dir / "landing", "kent", "anpr_reads", date.fromisoformat(NIGHT))
    header, *lines = list(csv.reader(io.StringIO(original.read_text("cp1252")), delimiter=";"))
    published = {sid: at for sid, at in zip(first["source_id"].to_pylist(), first["read_at"].to_pylist(), strict=True)}
    chosen = [row for row in lines if row[0] in published and sum(r[0] == row[0] for r in lines) == 1][:3]
    assert len(chosen) == 3
    fixed = [[row[0], row[1][:-2] + ("01" if row[1][-2:] != "01" else "02"), *row[2:]] for row in chosen]
    out = io.StringIO()
    csv.writer(out, delimiter=";", quoting=csv.QUOTE_ALL, lineterminator="\n").writerows([header, *fixed, fixed[0]])
    correction = original.with_name("anpr_reads_fix.csv")  # sent beside the original, after it
    correction.write_text(out.getvalue(), "cp1252")
    old = time.time() - 3600
    os.utime(original, (old, old))

    run_night_plain(ctx, NIGHT)

    now = ctx.zones.curated.read_parquet(part)
    ids = now["source_id"].to_pylist()
    quarantined = ctx.zones.quarantine.read_parquet(part).to_pylist()
    for row, fix in zip(chosen, fixed, strict=True):
        assert ids.count(row[0]) == 1  # published once, from the correction
        at = now["read_at"].to_pylist()[ids.index(row[0])]
        assert at != published[row[0]] and at.second == int(fix[1][-2:])
        older = [q for q in quarantined if q["source_id"] == row[0]]
        reasons = sorted((q["reason"], q["source_file"]) for q in older)
        expected = [("corrected", original.name)]
        if row is chosen[0]:  # sent twice in the correction: its second copy is a duplicate there
            expected = sorted([*expected, ("duplicate_id", correction.name)])
        assert reasons == expected
    assert sorted(set(ids)) == sorted(set(published))  # the other records stay published
    kent = ctx.ledger.get(NIGHT, "kent", "anpr_reads")
    assert kent is not None and kent["status"] == "published" and len(kent["files"]) == 2
    assert kent["rows_in"] == len(lines) + len(fixed) + 1 == kent["rows_published"] + kent["rows_quarantined"]
    assert kent["rows_published"] == now.num_rows
    assert [e["force"] for e in ctx.ledger.events(NIGHT) if e["event"] == "superseded"] == ["kent"]
    manifest = _reader_sees_no_mixed_night(ctx)
    assert manifest is not None and manifest["forces"]["kent"]["rows_published"] == now.num_rows
    _every_record_once(ctx, data_dir)
