"""A force's incident history as one bounded index: which incident ids exist, and when they occurred.

Seizures point at incidents (``incident_record_id``). The index answers for the ids a seizure
extract names, looking first at the incidents this run staged, then at the published nights on or
before the night, newest first, and stopping as soon as every id asked for is found. Only the two
columns it needs are read, and it keeps only the ids asked for: memory follows the seizures, not
the history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from xforce.store import layout

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from xforce.store.zones import Zone


class IncidentIndex:
    def __init__(self, staging: Zone, curated: Zone, run_id: str, force: str, night: str) -> None:
        self.staging, self.curated = staging, curated
        self.run_id, self.force, self.night = run_id, force, night
        self._found: dict[str, Any] = {}  # record_id -> occurred_at
        self._absent: set[str] = set()  # looked for everywhere, not there
        self.partitions_read = 0

    def _sources(self) -> Iterator[tuple[Zone, str]]:
        yield self.staging, layout.staged(self.run_id, "published", "incidents", self.night, self.force)
        base = layout.dataset_dir("incidents")
        nights = sorted(
            (n for d in self.curated.list_dirs(base) if (n := layout.night_of(d)) and n <= self.night), reverse=True
        )
        for night in nights:
            yield self.curated, layout.part_file("incidents", night, self.force)

    def occurred_at(self, wanted: Iterable[str]) -> dict[str, Any]:
        """``record_id -> occurred_at`` of those of ``wanted`` that exist (staged first, then newest night)."""
        wanted = {w for w in wanted if w is not None}
        todo = wanted - self._found.keys() - self._absent
        if todo:
            for zone, rel in self._sources():
                if not todo:
                    break
                if not zone.exists(rel):
                    continue
                t = zone.read_parquet(rel, columns=["record_id", "occurred_at"])
                self.partitions_read += 1
                t = t.filter(pc.is_in(t.column("record_id"), value_set=pa.array(sorted(todo), pa.string())))
                for rid, at in zip(t.column("record_id").to_pylist(), t.column("occurred_at").to_pylist(), strict=True):
                    if rid in todo:
                        self._found[rid] = at
                        todo.discard(rid)
            self._absent |= todo
        return {w: self._found[w] for w in wanted if w in self._found}

    def known(self, ids: pa.Array | pa.ChunkedArray) -> pa.Array:
        """True where the id names an existing incident (null where the id is null)."""
        found = self.occurred_at(pc.unique(ids).drop_null().to_pylist())
        return pc.is_in(ids, value_set=pa.array(sorted(found), pa.string()))
