"""The ids an extract has used so far (re-sent records), in memory that does not grow with it."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pyarrow as pa

from xforce.hashing import hash64, lookup_sorted, stable_order


class SeenIds:
    """The ids an extract has used so far, in memory that does not grow with the extract.

    Each id is kept as a 64-bit hash (DuckDB hashes them straight from the Arrow buffers, no
    Python string per id), in 256 buckets by the hash's top byte. A bucket is a sorted file on
    local disk plus a small sorted array of recent hashes in memory (at most ``RECENT_MAX``),
    merged into the file when full: about 16 MB of memory and 8 bytes of disk a read, whatever
    the extract's size. A batch reads each bucket's file once (one bucket in memory at a time).

    A hash collision (about 1 in 10^5 for a 20 M-row extract) would quarantine one clean row as
    ``duplicate_id``: kept and explained, never lost.
    """

    BUCKETS = 256
    RECENT_MAX = 8192
    _EDGES = np.arange(1, BUCKETS, dtype=np.uint64) << np.uint64(56)

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="xforce-seen-")
        self.on_disk = np.zeros(self.BUCKETS, dtype=np.int64)
        self.recent = [np.empty(0, dtype=np.uint64)] * self.BUCKETS

    def __len__(self) -> int:
        return int(self.on_disk.sum()) + sum(len(a) for a in self.recent)

    def close(self) -> None:
        """Delete the bucket files."""
        self._dir.cleanup()

    def _file(self, bucket: int) -> str:
        return os.path.join(self._dir.name, f"{bucket:03d}.u64")

    def _stored(self, bucket: int) -> np.ndarray:
        if not self.on_disk[bucket]:
            return np.empty(0, dtype=np.uint64)
        return np.fromfile(self._file(bucket), dtype=np.uint64)

    def first_occurrences(self, ids: pa.Array) -> pa.Array:
        """True for the first time an id is seen in this extract (nulls are never duplicates)."""
        valid = ids.is_valid().to_numpy(zero_copy_only=False)
        out = np.ones(len(ids), dtype=bool)
        if not valid.any():
            return pa.array(out)
        h = hash64(ids.drop_null())
        order = stable_order(h)  # equal hashes keep row order: the first is the earliest
        hs = h[order]
        new = np.ones(len(hs), dtype=bool)
        new[1:] = hs[1:] != hs[:-1]  # first in this batch
        bounds = [0, *np.searchsorted(hs, self._EDGES).tolist(), len(hs)]
        for b in range(self.BUCKETS):
            lo, hi = bounds[b], bounds[b + 1]
            if lo == hi:
                continue
            q = hs[lo:hi]
            stored = self._stored(b)
            fresh = new[lo:hi] & (lookup_sorted(q, stored) < 0) & (lookup_sorted(q, self.recent[b]) < 0)
            new[lo:hi] = fresh
            if fresh.any():
                recent = np.sort(np.concatenate([self.recent[b], q[fresh]]), kind="stable")
                if len(recent) > self.RECENT_MAX:
                    np.sort(np.concatenate([stored, recent]), kind="stable").tofile(self._file(b))
                    self.on_disk[b] += len(recent)
                    recent = recent[:0]
                self.recent[b] = recent
        keep = np.empty(len(hs), dtype=bool)
        keep[order] = new
        out[np.flatnonzero(valid)] = keep
        return pa.array(out)
