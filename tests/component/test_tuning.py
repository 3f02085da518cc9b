"""Process tuning (:mod:`xforce.exchange.tuning`): checked in child processes, where it may change
the whole process (and ``ctypes`` asks the system for the C library)."""

from __future__ import annotations

import pyarrow as pa
import pytest

pytestmark = pytest.mark.component


def test_arrow_memory_pool_is_jemalloc_unless_the_environment_names_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    code = "from xforce.exchange.tuning import arrow_memory_pool; print(arrow_memory_pool())"
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert default == (
        "jemalloc" if "jemalloc" in pa.supported_memory_backends() else pa.default_memory_pool().backend_name
    )
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
    chosen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert chosen == "system"


def test_malloc_tuning_applies_on_glibc_linux() -> None:
    import platform

    from xforce.exchange.tuning import _malloc_hands_back

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's mallopt only: elsewhere the tuning is left out by design")
    assert _malloc_hands_back() is True
