"""The staged Parquet files of one extract: published and quarantined rows, written by a
background thread so that encoding overlaps the next batch's validation."""

from __future__ import annotations

from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import pyarrow as pa

from xforce.dictionary import field_metadata, file_metadata
from xforce.schemas import ROW_UNIQUE, TOKEN_COLUMN, quarantine_schema
from xforce.store import layout

if TYPE_CHECKING:
    from xforce.store.zones import Zone


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for f in schema:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


#: Batches handed to the writer thread and not yet written (bounds the memory it holds).
MAX_PENDING_WRITES = 1


class StagedWriters:
    """The staged published and quarantine Parquet files of one extract.

    Written by one background thread: Parquet encoding and compression run without the GIL, so
    they overlap the next batch's validation on the other core. ``close`` waits for every write
    and raises the first that failed.
    """

    def __init__(self, staging: Zone, run_id: str, dataset: str, night: str, force: str) -> None:
        self.staging, self.dataset = staging, dataset
        self.paths = {kind: layout.staged(run_id, kind, dataset, night, force) for kind in layout.STAGED_KINDS}
        # the published file carries the data dictionary: each field's entry, and the file's own facts
        published = field_metadata(dataset).with_metadata(file_metadata(dataset, night, force, run_id))
        self.schemas = {"published": published, "quarantine": quarantine_schema(dataset)}
        # no dictionary tried where values rarely repeat within a row group: ids, and plate tokens
        # (a batch of 128 Ki reads has some 70 k vehicles; the dictionary was dropped for plain anyway)
        plain = {*ROW_UNIQUE, *TOKEN_COLUMN.values()}
        self.writers = {
            k: staging.parquet_writer(
                p, self.schemas[k], use_dictionary=[f.name for f in self.schemas[k] if f.name not in plain]
            )
            for k, p in self.paths.items()
        }
        self.counts: Counter[str] = Counter()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xforce-writer")
        self._pending: deque[Future[None]] = deque()

    def write(self, kind: str, table: pa.Table) -> None:
        if table.num_rows:
            self.counts[kind] += table.num_rows
            self._pending.append(self._thread.submit(self._write, kind, table))
            while len(self._pending) > MAX_PENDING_WRITES:
                self._pending.popleft().result()

    def _write(self, kind: str, table: pa.Table) -> None:
        self.writers[kind].write_table(_conform(table, self.schemas[kind]))

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._thread.shutdown(wait=True)
            for w in self.writers.values():
                w.close()
