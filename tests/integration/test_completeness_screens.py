"""Issue #18 on screen: the report page of a night with gaps (Suffolk's ANPR missing, Kent's seizures
quarantined) and the reports index open in headless Chromium, with the summary line, the coverage and
the charts drawn (no script, nothing fetched). Skips where Chromium is not installed (CI installs it).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from services import headless_screenshot

from xforce.reports import page as report_page

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


def _load(rel: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(rel).stem + "_for_screens", ROOT / rel)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


E2E = _load("tests/integration/test_reports_e2e.py")  # decode_png, _pixels_near
SCENARIO = _load("tests/component/test_completeness.py")  # publish_night_with_gaps, NIGHT


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory):
    return SCENARIO.publish_night_with_gaps(tmp_path_factory.mktemp("screens") / "data")


def _screenshot(url: str, shot: Path, size: tuple[int, int]) -> np.ndarray:
    img = E2E.decode_png(headless_screenshot(url, shot, size))
    assert img.shape[:2] == (size[1], size[0])
    return img


def test_report_page_with_gaps_on_screen(night) -> None:
    page = night.data / "reports" / "html" / f"{SCENARIO.NIGHT}.html"
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "Suffolk ANPR missing" in text
    img = _screenshot(page.resolve().as_uri(), ARTIFACTS / f"report-gaps-{SCENARIO.NIGHT}.png", (1200, 1600))
    white = (img[:, :, :3] >= 250).all(axis=2).mean()
    assert 0.3 < white < 0.97, white
    # the summary banner of a night with gaps, the charts
    assert E2E._pixels_near(img, report_page.HARE_RED) > 200
    assert E2E._pixels_near(img, "#fdf3f2") > 2000  # summary background
    assert E2E._pixels_near(img, report_page.VEHICLE_COLOURS[0]) > 50


def test_reports_index_on_screen(night) -> None:
    index = night.data / "reports" / "index.html"
    img = _screenshot(index.resolve().as_uri(), ARTIFACTS / "reports-index.png", (1000, 600))
    white = (img[:, :, :3] >= 250).all(axis=2).mean()
    assert 0.5 < white < 0.995, white  # text and the night's marked entry, not a blank page
    assert E2E._pixels_near(img, report_page.HARE_RED) > 50  # the red edge of a night with gaps
    assert len(np.unique(img[:, :, :3].reshape(-1, 3), axis=0)) > 20
