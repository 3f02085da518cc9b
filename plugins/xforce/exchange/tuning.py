"""Memory tuning of a process that ingests extracts: Arrow on jemalloc, glibc's malloc handing freed
batch-sized blocks back at once.

Process-wide changes: applied once per process, at the edge that owns the process (an Airflow
task's own process, ``xforce ingest``), never as a side effect of a library call."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

import pyarrow as pa


@functools.lru_cache(maxsize=1)
def arrow_memory_pool() -> str:
    """Arrow allocates from jemalloc, unless ``ARROW_DEFAULT_MEMORY_POOL`` names a pool.

    It hands the memory of finished batches back sooner than Arrow's default (mimalloc): peak
    RSS of a 10 M-read ingest 772 MB instead of 888 MB, in the same time.
    """
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL") and "jemalloc" in pa.supported_memory_backends():
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    _malloc_hands_back()
    return pa.default_memory_pool().backend_name


def _malloc_hands_back() -> bool:
    """glibc's malloc (numpy's batch-sized arrays, Python) returns freed memory to the system at once.

    By default glibc raises its mmap threshold each time a large block is freed, after which
    batch-sized arrays come from the heap and stay there; a fixed 128 KiB threshold and trim
    threshold and one arena measured 0.68 GB instead of 0.72 GB peak for a 10 M-read ingest, in the
    same time. Not glibc (musl, macOS): left as it is (returns False).
    """
    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or not name:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8  # <malloc.h>
    return all(
        libc.mallopt(opt, value) == 1
        for opt, value in ((m_mmap_threshold, 128 << 10), (m_trim_threshold, 128 << 10), (m_arena_max, 1))
    )
