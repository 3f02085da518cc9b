"""``make bench``'s measurement: memory of the whole process tree, RSS and PSS."""

from __future__ import annotations

import sys

import pytest

from xforce_tools.bench import measure, ratios, render

pytestmark = pytest.mark.component

CHILD_HOLDS_200_MB = """
import subprocess, sys
code = "b = bytearray(200 << 20); import time; time.sleep(1.0)"
subprocess.run([sys.executable, "-c", code], check=True)
"""


def test_measure_counts_the_memory_of_a_child_process() -> None:
    got = measure([sys.executable, "-c", CHILD_HOLDS_200_MB])
    assert got["wall_s"] >= 1.0
    assert got["rss_mb"] >= 200  # the child's 200 MB are in the tree's sum
    assert 200 <= got["pss_mb"] <= got["rss_mb"]  # shared pages split, private ones whole
    assert got["own_rss_mb"] >= 200  # wait4: the largest single process (here the child), not a sum


def test_measure_raises_with_the_error_of_a_failing_process() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        measure([sys.executable, "-c", "raise SystemExit('boom')"])


def test_ratios_and_table_carry_pss() -> None:
    def run(wall: float, rss: float, pss: float) -> dict[str, float]:
        return {"wall_s": wall, "rss_mb": rss, "pss_mb": pss, "own_rss_mb": rss}

    rows = [
        {"reads": 10, "csv_mb": 1.0, "a_duckdb": run(1, 100, 90), "c_xforce": run(5, 1000, 900)},
        {"reads": 20, "csv_mb": 2.0, "a_duckdb": run(2, 110, 95), "c_xforce": run(9, 1050, 940)},
    ]
    r = ratios(rows)
    assert r["marginal (c_hi - c_lo) / (a_hi - a_lo)"] == 4.0
    assert r["c RSS hi / lo"] == 1.05 and r["c PSS hi / lo"] == 1.04
    table = render({"ingest": rows, "night": [{"anpr_reads_per_force": 5, **run(3, 700, 600)}], "ratios": r})
    assert "| 10 | 1.0 | 1 / 100 | - | 5 / 1000 | 900 |" in table
    assert "| 5 | 3 | 700 | 600 |" in table


def test_a_deployments_memory_is_summed_over_its_sessions() -> None:
    import subprocess
    import time

    from xforce_tools.bench import _sessions_pss

    holder = subprocess.Popen(
        [sys.executable, "-c", "b = bytearray(200 << 20); import time; time.sleep(30)"], start_new_session=True
    )
    try:
        time.sleep(1.5)
        assert _sessions_pss([holder.pid]) >= 200 << 20  # its own session: counted
        assert _sessions_pss([]) == 0
    finally:
        holder.kill()
        holder.wait()
