"""Reports end to end: the xforce_reports DAG, through Airflow, builds a night's tables and page from the
published dataset; the page opens in headless Chromium with its charts on screen.

The night itself (all seven forces, with the planted crossing vehicle) is published with the nightly
steps called directly, to save a seven-force Airflow run: xforce_nightly through Airflow, and the asset
events its publish emits for xforce_reports, are covered by test_backfill.py and test_nightly_e2e.py.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from services import headless_screenshot

from xforce.privacy.tokens import tokenise
from xforce.reports import page as report_page
from xforce.reports import queries as reports
from xforce.settings import hmac_key
from xforce_tools.generate import generate_night

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NIGHT = "2026-11-27"
ARTIFACTS = ROOT / "test-artifacts"

# Runs in a subprocess so that Airflow is configured from scratch: migrate, publish the night (the
# nightly's steps, without Airflow), then xforce_reports through dag.test().
DRIVER = r"""
import json, os, shutil, subprocess, sys
from pathlib import Path
from xforce.airflow.env import airflow_env
from xforce.settings import Settings

night = sys.argv[1]
env = airflow_env(Settings.from_env())
airflow = shutil.which("airflow", path=str(Path(sys.executable).parent))
subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
os.environ.update(env)

from helpers import run_night_plain
from xforce import context
run_night_plain(context.Context.from_env(), night)

from airflow.dag_processing.dagbag import DagBag
report_run = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).get_dag("xforce_reports").test(
    run_conf={"night": night}
)
from sqlalchemy import select
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
with create_session() as s:
    tasks = s.execute(
        select(TaskInstance.task_id, TaskInstance.state).where(TaskInstance.dag_id == "xforce_reports")
    ).all()
print("RESULT " + json.dumps({"reports": str(report_run.state), "tasks": [[t, str(st)] for t, st in tasks]}))
"""


@pytest.fixture(scope="module")
def e2e(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("reports_e2e")
    data = base / "data"
    truth = generate_night(
        date.fromisoformat(NIGHT), data / "landing", anpr_reads=50, seed=3, plant_crossing_vehicle=True
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW"))}
    env["XFORCE_SETTLE_SECONDS"] = "0"  # files the test writes are landed at once
    env.update(
        {
            "XFORCE_DATA_DIR": str(data),
            "AIRFLOW_HOME": str(base / "airflow_home"),
            "XFORCE_HMAC_KEY": os.environ["XFORCE_HMAC_KEY"],
            "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "tests")]),
        }
    )
    proc = subprocess.run([sys.executable, "-c", DRIVER, NIGHT], env=env, capture_output=True, text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return {"data": data, "truth": truth, "result": json.loads(lines[-1][len("RESULT ") :]), "env": env}


def test_report_dag_runs_through_airflow(e2e) -> None:
    result = e2e["result"]
    assert result["reports"] == "success"
    assert result["tasks"] == [["build_reports", "success"]]


def test_report_dag_wrote_the_tables_and_finds_the_planted_vehicle(e2e) -> None:
    out = e2e["data"] / "reports"
    for name in reports.REPORTS:
        assert (out / name / f"date={NIGHT}" / "part-0.parquet").is_file(), name
    crossing = pq.read_table(out / "crossing_vehicles" / f"date={NIGHT}" / "part-0.parquet")
    target = next(v for v in e2e["truth"]["_planted"]["vehicles"] if v["qualifies"])
    _, key = hmac_key()
    assert crossing.column("plate_token").to_pylist() == [tokenise(pa.array([target["plate"]]), key)[0].as_py()]


# ------------------------------------------------------------------------------ screenshot
def decode_png(data: bytes) -> np.ndarray:
    """8-bit RGB(A), non-interlaced PNG -> array (height, width, channels); filters undone by anti-diagonals."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    ch = 3 if colour == 2 else 4
    rows = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, 1 + width * ch)
    ftype = rows[:, 0].astype(np.int16)
    filt = rows[:, 1:].reshape(height, width, ch).astype(np.int16)
    out = np.zeros((height + 1, width + 1, ch), np.int16)  # a zero row and column for "up" and "left"
    for k in range(height + width - 1):
        ys = np.arange(max(0, k - width + 1), min(height - 1, k) + 1)
        xs = k - ys
        a, b, c = out[ys + 1, xs], out[ys, xs + 1], out[ys, xs]
        p = a + b - c
        pa_, pb, pc_ = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa_ <= pb) & (pa_ <= pc_), a, np.where(pb <= pc_, b, c))
        f = ftype[ys][:, None]
        pred = np.select([f == 1, f == 2, f == 3, f == 4], [a, b, (a + b) // 2, paeth], 0)
        out[ys + 1, xs + 1] = (filt[ys, xs] + pred) % 256
    return out[1:, 1:].astype(np.uint8)


def _pixels_near(img: np.ndarray, hex_colour: str, tol: int = 6) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img[:, :, :3].astype(int) - rgb).max(axis=2) <= tol).sum())


def test_html_report_opens_in_headless_chromium_and_shows_its_charts(e2e) -> None:
    page = e2e["data"] / "reports" / "html" / f"{NIGHT}.html"
    shot = ARTIFACTS / f"reports-{NIGHT}.png"
    headless_screenshot(page.resolve().as_uri(), shot, (1200, 1600))
    assert shot.stat().st_size > 30_000  # a blank 1200x1600 page compresses to a few kilobytes
    img = decode_png(shot.read_bytes())
    assert img.shape[:2] == (1600, 1200)
    white = (img[:, :, :3] >= 250).all(axis=2).mean()
    assert 0.3 < white < 0.97, white  # mostly page, but far from blank
    assert len(np.unique(img[:, :, :3].reshape(-1, 3), axis=0)) > 50
    # The charts are on screen, in their own colours: hare coursing diamonds, the flagged vehicle's
    # line and points, the financial-year bars, the stacked monthly bars of the first forces.
    assert _pixels_near(img, report_page.HARE_RED) > 200
    assert _pixels_near(img, report_page.VEHICLE_COLOURS[0]) > 100
    assert _pixels_near(img, report_page.BAR_BLUE) > 2000
    assert _pixels_near(img, report_page.FORCE_COLOURS[0]) > 500
