"""``make bench``: ANPR ingest against a plain conversion and against the naive task.

On the same generated Norfolk ANPR extract of N reads, each as a whole process (wall time, and
peak RSS and PSS summed over the process and its GX worker, sampled):

  (a) DuckDB ``COPY (SELECT * FROM read_csv(...)) TO ... (FORMAT parquet, COMPRESSION zstd)``
  (b) the naive task: pandas ``read_csv`` -> Great Expectations on the whole DataFrame (the same
      suite) -> ``to_parquet``
  (c) ``xforce ingest`` of that file (land, normalise, validate with GX, tokenise, split, publish)

then a whole night through ``xforce run`` (seven forces, three datasets) at small volume and at
``--night-reads`` ANPR reads per force, and a whole night on the local deployment (``xforce up``: the
scheduler and LocalExecutor) at ``--deploy-reads`` reads per force, with the peak summed PSS of every
process of the deployment. Prints a table and the ratios, writes
``bench-results/results.json`` and ``results.md``.

    python -m xforce_tools.bench [--sizes 10000000 20000000] [--night-reads 1000000] [--out bench-results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

NIGHT = "2026-11-27"
BIN = Path(sys.executable).parent


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run one process; its wall time and peak memory, or raise on failure.

    - ``rss_mb``: the peak of the RSS summed over the process and every process it started (the
      Great Expectations worker of ``xforce ingest``), sampled every 20 ms. A sum of RSS counts a
      shared library once per process that maps it: it errs high.
    - ``pss_mb``: the peak of the tree's proportional set size (each shared page split among the
      processes that map it, so counted once in the sum): the memory the tree holds. Read whenever
      the summed RSS is within 3 % of its peak so far, at most every 100 ms (a read costs a few ms).
    - ``own_rss_mb``: from ``wait4``: the largest peak of any one process of the tree (Linux takes
      the children a process has waited for into its figure, and the forking process's size at
      the fork, which is small here).
    """
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = peak_pss = 0
    stop = threading.Event()

    def tree_sum(tree: list[psutil.Process], figure: Callable[[psutil.Process], int]) -> int:
        total = 0
        for p in tree:
            try:
                total += figure(p)
            except psutil.NoSuchProcess:  # a child that ended between listing and reading holds no memory
                continue
        return total

    def sample() -> None:
        nonlocal peak, peak_pss
        root = psutil.Process(proc.pid)
        pss_read = 0.0
        while not stop.wait(0.02):
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:  # the process has ended: wait4 below has its figures
                return
            total = tree_sum(tree, lambda p: p.memory_info().rss)
            peak = max(peak, total)
            if total >= 0.97 * peak and time.monotonic() - pss_read >= 0.1:
                pss_read = time.monotonic()
                peak_pss = max(peak_pss, tree_sum(tree, lambda p: p.memory_full_info().pss))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""  # until it closes
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    own = usage.ru_maxrss / 1024
    return {
        "wall_s": round(wall, 2),
        "rss_mb": round(max(peak / 2**20, own), 1),
        "pss_mb": round(peak_pss / 2**20, 1),
        "own_rss_mb": round(own, 1),
    }


# ------------------------------------------------------------------ the three contenders
def run_duckdb(csv: str, out: str) -> None:
    import duckdb

    duckdb.sql(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")


def run_naive(csv: str, out: str) -> None:
    """What a team would write first: the whole file in pandas, GX on the DataFrame, to_parquet.

    It validates with the same suite (summary results only) and writes every row: it splits
    nothing, so it is a lower bound for a naive task that would also quarantine.
    """
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx
    import pandas as pd
    from great_expectations.core.expectation_suite import ExpectationSuite

    from xforce.exchange.process import _params
    from xforce.intake.contracts import load_registry
    from xforce.quality.gxworker import gx_params
    from xforce.quality.validate import load_suite
    from xforce.settings import Settings

    settings = Settings.from_env()
    registry = load_registry(settings.config_dir)
    contract = registry.contract("norfolk", "anpr_reads")
    df = pd.read_csv(csv, dtype=str)
    df = df.rename(columns={v: k for k, v in contract.fields.items()})
    df["read_at"] = pd.to_datetime(df["timestamp"], format=contract.timestamp_format, errors="coerce", utc=True)
    df["latitude"] = pd.to_numeric(df["lat"], errors="coerce")
    df["longitude"] = pd.to_numeric(df["lon"], errors="coerce")
    df["plate"] = df["plate"].str.upper().str.replace(r"\s+", "", regex=True)
    df["_first_occurrence"] = ~df["source_id"].duplicated()
    doc = load_suite(settings.expectations_dir, "anpr_reads")
    suite = ExpectationSuite(name=doc["name"], expectations=doc["expectations"])
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("naive")
        .add_dataframe_asset("anpr")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df})
    )
    result = batch.validate(
        suite,
        expectation_parameters=gx_params(_params(registry, contract, NIGHT)),
        result_format={"result_format": "BASIC"},
    )
    failed = [r.expectation_config.type for r in result.results if not r.success and r.expectation_config]
    print(f"naive: {len(failed)} expectations failed", file=sys.stderr)
    df.drop(columns=["plate"]).to_parquet(out, compression="zstd")


# ------------------------------------------------------------------------------ the runs
def generate(out: Path, reads: int, forces: list[str] | None, datasets: list[str] | None) -> None:
    cmd = [
        str(BIN / "xforce"),
        "generate",
        "--date",
        NIGHT,
        "--out",
        str(out),
        "--anpr-reads",
        str(reads),
        "--seed",
        "1",
    ]
    if forces:
        cmd += ["--forces", *forces]
    if datasets:
        cmd += ["--datasets", *datasets]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def fresh_env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW"))}
    env.update(
        {
            "XFORCE_DATA_DIR": str(data),
            "XFORCE_HMAC_KEY": "bench-key-not-a-secret-0123456789",
            "GX_ANALYTICS_ENABLED": "false",
        }
    )
    return env


def bench_ingest(work: Path, n: int, skip_naive: bool) -> dict[str, object]:
    src = work / f"anpr-{n}"
    shutil.rmtree(src, ignore_errors=True)
    generate(src, n, ["norfolk"], ["anpr_reads"])
    csv = src / "norfolk" / "anpr_reads" / NIGHT / "anpr_reads.csv"
    py = sys.executable
    row: dict[str, object] = {"reads": n, "csv_mb": round(csv.stat().st_size / 2**20, 1)}
    row["a_duckdb"] = measure([py, "-m", "xforce_tools.bench", "duckdb", str(csv), str(work / "a.parquet")])
    if not skip_naive:
        row["b_naive"] = measure(
            [py, "-m", "xforce_tools.bench", "naive", str(csv), str(work / "b.parquet")],
            env=fresh_env(work / "naive-data"),
        )
    data = work / f"ingest-{n}"
    shutil.rmtree(data, ignore_errors=True)
    row["c_xforce"] = measure(
        [
            str(BIN / "xforce"),
            "ingest",
            "--force",
            "norfolk",
            "--dataset",
            "anpr_reads",
            "--file",
            str(csv),
            "--date",
            NIGHT,
        ],
        env=fresh_env(data),
    )
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return row


def bench_night(work: Path, reads: int) -> dict[str, object]:
    data = work / f"night-{reads}"
    shutil.rmtree(data, ignore_errors=True)
    generate(data / "landing", reads, None, None)
    result = measure([str(BIN / "xforce"), "run", "--date", NIGHT], env=fresh_env(data))
    shutil.rmtree(data, ignore_errors=True)
    return {"anpr_reads_per_force": reads, **result}


def _sessions_pss(sids: list[int]) -> int:
    """Summed PSS (bytes) of every live process of the given sessions (a deployment: each process it
    started leads one; task processes and GX copies are in them)."""
    import psutil

    total = 0
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) in sids:
                total += p.memory_full_info().pss
        except (psutil.Error, ProcessLookupError, PermissionError):  # ended meanwhile: holds nothing
            continue
    return total


def bench_deployment(work: Path, reads: int) -> dict[str, object]:
    """A whole night (seven forces) through ``xforce up``'s scheduler and executor: wall time from the
    trigger to the run's end, and the peak summed PSS of every process of the deployment (api-server,
    scheduler, dag-processor, triggerer, the validation service, and the task processes they start)."""
    import socket

    from xforce.airflow.deploy import Client

    with socket.socket() as free:  # a port nothing listens on now
        free.bind(("127.0.0.1", 0))
        port = int(free.getsockname()[1])

    data = work / f"deploy-{reads}"
    shutil.rmtree(data, ignore_errors=True)
    generate(data / "landing", reads, None, None)
    env = {**fresh_env(data), "XFORCE_UI_PORT": str(port), "XFORCE_SETTLE_SECONDS": "0"}
    xforce = str(BIN / "xforce")
    up = subprocess.run([xforce, "up"], env=env, capture_output=True, text=True)
    home = data / "airflow"
    try:
        if up.returncode != 0:
            raise RuntimeError(f"xforce up failed:\n{up.stdout[-2000:]}{up.stderr[-2000:]}")
        client = Client.of(home)
        if client is None:
            raise RuntimeError("the deployment is not answering")
        sids = [int(json.loads(p.read_text())["pid"]) for p in (home / "deploy").glob("*.pid")]
        idle = _sessions_pss(sids)
        peak = idle
        start, start_at = time.perf_counter(), datetime.now(UTC)
        run_id = client.trigger("xforce_nightly", f"night__{NIGHT}__bench", f"{NIGHT}T02:30:00+00:00", {"night": NIGHT})

        def sample(_state: str = "") -> None:
            nonlocal peak
            peak = max(peak, _sessions_pss(sids))

        state = client.wait("xforce_nightly", run_id, timeout=3 * 3600, poll=sample)
        wall = time.perf_counter() - start
        if state != "success":
            raise RuntimeError(f"the night ended {state}: see {home}/logs")
        tis = client.task_instances("xforce_nightly", run_id)
        timeline = _timeline(tis, start_at)
        fixed = _median_max(_fixed_costs(home, tis, run_id, "reading starts"))
        first = _median_max(_fixed_costs(home, tis, run_id, "first records read"))
    finally:
        subprocess.run([xforce, "down"], env=env, capture_output=True, text=True)
    shutil.rmtree(data, ignore_errors=True)
    return {
        "anpr_reads_per_force": reads,
        "wall_s": round(wall, 1),
        "pss_mb": round(peak / 2**20, 1),
        "idle_pss_mb": round(idle / 2**20, 1),
        "task_fixed_s_median": fixed[0],
        "task_fixed_s_max": fixed[1],
        "first_batch_s_median": first[0],
        "first_batch_s_max": first[1],
        # where the night's time went: each task try's start and end, seconds after the trigger
        "tasks": timeline,
    }


def _timeline(tis: list[dict[str, object]], trigger: datetime) -> list[dict[str, object]]:
    """Each task instance's label, start and end in seconds after ``trigger``, in start order."""

    def after(stamp: object) -> float | None:
        if not stamp:
            return None
        return round((datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) - trigger).total_seconds(), 1)

    rows = [
        {
            "task": str(ti["task_id"]),
            "label": ti.get("rendered_map_index") or ti.get("map_index"),
            "state": ti["state"],
            "start_s": after(ti.get("start_date")),
            "end_s": after(ti.get("end_date")),
        }
        for ti in tis
    ]
    return sorted(rows, key=lambda r: (r["start_s"] is None, r["start_s"] or 0.0))


def _fixed_costs(home: Path, tis: list[dict[str, object]], run_id: str, mark: str) -> list[float]:
    """Per validate task that read records: seconds from the task's start to the first line of its task
    log holding ``mark`` (``reading starts``: its fixed cost; ``first records read``: its first batch)."""
    out = []
    for ti in tis:
        if not str(ti["task_id"]).startswith("validate_") or ti["state"] != "success":
            continue
        folder = home / "logs" / "dag_id=xforce_nightly" / f"run_id={run_id}" / f"task_id={ti['task_id']}"
        started = datetime.fromisoformat(str(ti["start_date"]).replace("Z", "+00:00"))
        for log in folder.glob(f"map_index={ti['map_index']}/*.log"):
            for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
                if mark in line:
                    at = datetime.fromisoformat(str(json.loads(line)["timestamp"]).replace("Z", "+00:00"))
                    out.append((at - started).total_seconds())
                    break
    return out


def _median_max(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(sorted(values)[len(values) // 2], 2), round(max(values), 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="xforce_tools.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "duckdb", "naive"])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000_000, 20_000_000])
    parser.add_argument("--night-reads", nargs="*", type=int, default=[5_000, 1_000_000])
    parser.add_argument("--deploy-reads", nargs="*", type=int, default=[5_000, 1_000_000])
    parser.add_argument("--skip-naive", action="store_true", help="leave out (b), the slow naive task")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--work", default=None, help="scratch folder (default: <out>/work)")
    args = parser.parse_args(argv)
    if args.mode == "duckdb":
        run_duckdb(*args.paths)
        return 0
    if args.mode == "naive":
        run_naive(*args.paths)
        return 0
    out = Path(args.out)
    work = Path(args.work) if args.work else out / "work"
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)  # --work may lie outside --out
    results: dict[str, object] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "ingest": [],
        "night": [],
    }
    ingest: list[dict[str, object]] = []
    for n in args.sizes:
        ingest.append(bench_ingest(work, n, args.skip_naive))
        print(json.dumps(ingest[-1]), flush=True)
    nights = []
    for reads in args.night_reads:
        nights.append(bench_night(work, reads))
        print(json.dumps(nights[-1]), flush=True)
    deployment = []
    for reads in args.deploy_reads:
        deployment.append(bench_deployment(work, reads))
        print(json.dumps(deployment[-1]), flush=True)
    results["ingest"], results["night"], results["deployment"] = ingest, nights, deployment
    results["ratios"] = ratios(ingest)
    shutil.rmtree(work, ignore_errors=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = render(results)
    (out / "results.md").write_text(table + "\n")
    print(table)
    return 0


def ratios(rows: list[dict[str, object]]) -> dict[str, float]:
    def get(row: dict[str, object], key: str, field: str) -> float | None:
        v = row.get(key)
        return float(v[field]) if isinstance(v, dict) else None

    out: dict[str, float] = {}
    for row in rows:
        n = row["reads"]
        a, b, c = (get(row, k, "wall_s") for k in ("a_duckdb", "b_naive", "c_xforce"))
        if a and c:
            out[f"c/a wall at {n}"] = round(c / a, 2)
        if b and c:
            out[f"c/b wall at {n}"] = round(c / b, 2)
    if len(rows) >= 2:
        lo, hi = rows[0], rows[-1]
        da = (get(hi, "a_duckdb", "wall_s") or 0) - (get(lo, "a_duckdb", "wall_s") or 0)
        dc = (get(hi, "c_xforce", "wall_s") or 0) - (get(lo, "c_xforce", "wall_s") or 0)
        if da:
            out["marginal (c_hi - c_lo) / (a_hi - a_lo)"] = round(dc / da, 2)
        for field, label in (("rss_mb", "RSS"), ("pss_mb", "PSS")):
            rl, rh = get(lo, "c_xforce", field), get(hi, "c_xforce", field)
            if rl and rh:
                out[f"c {label} hi / lo"] = round(rh / rl, 2)
    return out


def render(results: dict[str, object]) -> str:
    lines = [
        "Memory: peak RSS summed over the process tree; (c) also its peak PSS (shared pages counted once).",
        "",
        "| reads | CSV MB | (a) DuckDB s / RSS MB | (b) naive s / RSS MB | (c) xforce ingest s / RSS MB | (c) PSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["ingest"]:  # type: ignore[attr-defined]
        cells = []
        for key in ("a_duckdb", "b_naive", "c_xforce"):
            v = row.get(key)
            cells.append(f"{v['wall_s']} / {v['rss_mb']:.0f}" if v else "-")
        c = row.get("c_xforce") or {}
        cells.append(f"{c['pss_mb']:.0f}" if c.get("pss_mb") else "-")
        lines.append(f"| {row['reads']:,} | {row['csv_mb']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| whole night (xforce run), ANPR reads per force | wall s | peak RSS MB | peak PSS MB |",
        "|---:|---:|---:|---:|",
    ]
    for row in results["night"]:  # type: ignore[attr-defined]
        lines.append(
            f"| {row['anpr_reads_per_force']:,} | {row['wall_s']} | {row['rss_mb']:.0f} | {row.get('pss_mb', 0):.0f} |"
        )
    lines += [
        "",
        "| whole night on `make up` (scheduler, LocalExecutor), ANPR reads per force | wall s | peak PSS MB "
        "(every process) | idle PSS MB | validate task start to reading (fixed cost), median / max s "
        "| to its first batch parsed, median / max s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results.get("deployment", []):  # type: ignore[attr-defined]
        lines.append(
            f"| {row['anpr_reads_per_force']:,} | {row['wall_s']} | {row['pss_mb']:.0f} | {row['idle_pss_mb']:.0f} "
            f"| {row.get('task_fixed_s_median')} / {row.get('task_fixed_s_max')} "
            f"| {row.get('first_batch_s_median')} / {row.get('first_batch_s_max')} |"
        )
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in results["ratios"].items()]  # type: ignore[attr-defined]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
