"""Real police.uk street-level files: every row accounted for, nothing silently dropped."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.compute as pc
import pytest

from helpers import null_count
from xforce import context
from xforce.exchange import land, process, publish
from xforce.store import layout
from xforce.store.zones import Zone

pytestmark = pytest.mark.component

NIGHT = "2019-01-15"


def _ingest(ctx: context.Context, force: str, path: Path) -> None:
    ctx.zones.landing.copy_from(Zone(str(path.parent)), path.name, f"{force}/incidents/{NIGHT}/{path.name}")
    run_id = f"test-{force}"
    ref = land.land_extract(ctx, NIGHT, force, "incidents", run_id)
    process.process_extract(ctx, ref, run_id)
    publish.publish_night(ctx, NIGHT, run_id)


@pytest.mark.parametrize(
    "force", ["bedfordshire", "cambridgeshire", "essex", "hertfordshire", "kent", "norfolk", "suffolk"]
)
def test_real_file_ingests_with_exact_accounting(force: str, police_uk: Path, data_dir: Path) -> None:
    path = police_uk / f"2019-01-{force}-street.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    asb_no_id = sum(1 for r in rows if not r["Crime ID"])
    no_location = sum(1 for r in rows if r["Location"] == "No Location")
    ctx = context.Context.from_env()
    _ingest(ctx, force, path)

    ledger = ctx.ledger.get(NIGHT, force, "incidents")
    assert ledger is not None and ledger["status"] == "published"
    assert ledger["rows_in"] == len(rows)
    assert ledger["rows_in"] == ledger["rows_published"] + ledger["rows_quarantined"]

    part = layout.part_file("incidents", NIGHT, force)
    pub = ctx.zones.curated.read_parquet(part)
    quar = ctx.zones.quarantine.read_parquet(part)
    assert pub.num_rows + quar.num_rows == len(rows)
    # Anti-social behaviour rows without a Crime ID are kept (published, with a null source_id).
    assert null_count(pub, "source_id") + null_count(quar, "source_id") == asb_no_id
    assert null_count(pub, "source_id") > 0
    # No Location rows are kept, published without coordinates.
    no_loc_pub = pc.sum(pc.equal(pub.column("location_precision"), "none")).as_py() or 0
    no_loc_quar = pc.sum(pc.equal(quar.column("location_precision"), "none")).as_py() or 0
    assert no_loc_pub + no_loc_quar == no_location
    assert (no_loc_pub > 0) == (no_location > 0)
    assert set(pub.column("time_precision").to_pylist()) == {"month"}
    # record ids are unique across the published rows (ASB rows get a file-and-record id).
    assert len(set(pub.column("record_id").to_pylist())) == pub.num_rows
    # Every quarantined row says why and where it was in the file.
    assert null_count(quar, "reason") == 0 and null_count(quar, "source_record") == 0
    assert set(quar.column("reason").to_pylist()) <= {"duplicate_id", "out_of_region"}


def test_kent_repeated_crime_id_is_a_quarantined_resend(police_uk: Path, data_dir: Path) -> None:
    path = police_uk / "2019-01-kent-street.csv"
    with path.open(newline="", encoding="utf-8") as f:
        ids = [r["Crime ID"] for r in csv.DictReader(f) if r["Crime ID"]]
    repeated = {i for i in ids if ids.count(i) > 1}
    assert len(repeated) == 1
    ctx = context.Context.from_env()
    _ingest(ctx, "kent", path)
    part = layout.part_file("incidents", NIGHT, "kent")
    pub = ctx.zones.curated.read_parquet(part).column("source_id").to_pylist()
    quar = ctx.zones.quarantine.read_parquet(part)
    (rid,) = repeated
    assert pub.count(rid) == 1
    dup = quar.filter(pc.equal(quar.column("source_id"), rid))
    assert dup.column("reason").to_pylist() == ["duplicate_id"]
