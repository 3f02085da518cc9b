"""64-bit hashes of strings, computed by DuckDB on the Arrow data (no Python object per value).

Used where an extract must remember what it has seen in bounded memory: re-sent ids
(``pipeline.SeenIds``) and plates already tokenised (``tokenise.PlateTokens``). Hashes live only
for one process: nothing stores them, so DuckDB's hash function may change between versions.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pyarrow as pa


@functools.lru_cache(maxsize=1)
def _duckdb() -> Any:
    import duckdb

    return duckdb.connect(config={"threads": 2})


def hash64(values: pa.Array) -> np.ndarray:
    """A 64-bit hash of each string, in row order (give it no nulls)."""
    rel = _duckdb().from_arrow(pa.table({"v": values}))
    return rel.project("hash(v) AS h").to_arrow_table().column("h").to_numpy()


def stable_order(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")``, faster on 64-bit keys: an unstable sort (several times
    quicker than the stable one there), then equal keys (rare: a hash seen twice) put back in order."""
    order = np.argsort(keys)
    ks = keys[order]
    tie = ks[1:] == ks[:-1]
    if tie.any():
        in_run = np.flatnonzero(np.concatenate([tie, [False]]) | np.concatenate([[False], tie]))
        order[in_run] = order[in_run[np.lexsort((order[in_run], ks[in_run]))]]
    return order


def lookup_sorted(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Position of each key in ``sorted_keys``, or -1 (keys sorted too: a cache-friendly search)."""
    if not len(sorted_keys):
        return np.full(len(keys), -1, dtype=np.int64)
    idx = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return np.where(sorted_keys[idx] == keys, idx, -1)
