"""The reader thread (readers.prefetched) and the writer thread (writers.StagedWriters)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xforce.errors import ExtractError
from xforce.exchange.writers import StagedWriters
from xforce.intake.readers import SourceBatch, prefetched
from xforce.schemas import CANONICAL
from xforce.store.zones import Zone

pytestmark = pytest.mark.unit


def _batches(n: int, fail_at: int | None = None, log: list[str] | None = None) -> Iterator[SourceBatch]:
    try:
        for i in range(n):
            if i == fail_at:
                raise ExtractError(f"broken at batch {i}")
            yield SourceBatch(pa.table({"i": [i]}))
    finally:
        if log is not None:
            log.append(f"closed in {threading.current_thread().name}")


def test_prefetched_keeps_order_and_reads_in_another_thread() -> None:
    seen = [b.table.column("i")[0].as_py() for b in prefetched(_batches(50))]
    assert seen == list(range(50))


def test_prefetched_raises_the_readers_error_after_the_batches_before_it() -> None:
    got: list[int] = []
    with pytest.raises(ExtractError, match="broken at batch 3"):
        for b in prefetched(_batches(10, fail_at=3)):
            got.append(b.table.column("i")[0].as_py())
    assert got == [0, 1, 2]


def test_prefetched_stops_the_thread_and_closes_the_reader_when_the_caller_stops() -> None:
    log: list[str] = []
    threads = threading.active_count()
    gen = prefetched(_batches(1000, log=log))
    assert next(gen).table.column("i")[0].as_py() == 0
    gen.close()
    assert log and log[0].startswith("closed")
    assert threading.active_count() == threads


def _published(n: int, start: int = 0) -> pa.Table:
    ids = [f"R{i}" for i in range(start, start + n)]
    return pa.table(
        {
            "record_id": [f"norfolk:{i}" for i in ids],
            "source_id": ids,
            "force_code": ["norfolk"] * n,
            "source_file": ["reads.csv"] * n,
            "source_record": list(range(start + 1, start + n + 1)),
            "read_at": pa.array([datetime(2026, 11, 27, 12, tzinfo=UTC)] * n, pa.timestamp("us", tz="UTC")),
            "camera_id": ["NFK-CAM-0001"] * n,
            "plate_token": ["0" * 64] * n,
        }
    )


def test_writers_write_every_batch_in_order_from_their_thread(tmp_path: Path) -> None:
    w = StagedWriters(Zone(str(tmp_path)), "run", "anpr_reads", "2026-11-27", "norfolk")
    for k in range(7):
        w.write("published", _published(100, start=k * 100))
    w.close()
    assert w.counts["published"] == 700
    table = pq.read_table(tmp_path / w.paths["published"])
    assert table.schema == CANONICAL["anpr_reads"]
    assert table.column("source_id").to_pylist() == [f"R{i}" for i in range(700)]
    # ids (a value a row) and plate tokens (mostly one a read) are not dictionary-encoded; cameras are
    meta = pq.ParquetFile(tmp_path / w.paths["published"]).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "RLE_DICTIONARY" not in encodings["source_id"] and "RLE_DICTIONARY" not in encodings["record_id"]
    assert "RLE_DICTIONARY" not in encodings["plate_token"]
    assert "RLE_DICTIONARY" in encodings["camera_id"]


def test_writers_raise_a_failed_write_and_still_close_the_files(tmp_path: Path) -> None:
    w = StagedWriters(Zone(str(tmp_path)), "run", "anpr_reads", "2026-11-27", "norfolk")
    w.write("published", _published(10))
    broken = _published(1).set_column(4, "source_record", pa.array(["not a number"]))
    w.write("published", broken)  # fails in the writer thread
    with pytest.raises(pa.ArrowInvalid):
        for k in range(5):  # the failure surfaces on a later write or at close
            w.write("published", _published(10, start=10 * (k + 1)))
        w.close()
    w.close()  # closing again after the failure is harmless
    assert pq.read_table(tmp_path / w.paths["quarantine"]).num_rows == 0
