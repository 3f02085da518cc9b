"""xforce.quality.gx_compat: each change to Great Expectations' internals has the effect it is made
for, observed in GX itself; and the guard refuses, by name and before changing anything, a GX whose
internals are not where it expects them or whose version it was not checked against.

Every test leaves GX as it found it (``monkeypatch`` puts back what a change replaced).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import great_expectations
import pandas as pd
import pyarrow as pa
import pytest
from great_expectations.execution_engine import pandas_execution_engine as engine
from great_expectations.expectations.expectation import Expectation

from xforce.errors import ValidatorError
from xforce.quality import gx_compat, gxworker
from xforce.quality.validate import RESULT_FORMAT, load_suite
from xforce.settings import Settings

pytestmark = pytest.mark.unit

FINGERPRINT = "pandas_data_fingerprint"  # the batch marker GX's hash of every cell goes to
SHIPPED_THRESHOLD = 1e9  # GX 1.24's own HASH_THRESHOLD: frames under 1 GB are hashed


@pytest.fixture
def gx_as_shipped(monkeypatch: pytest.MonkeyPatch) -> Iterator[property]:
    """GX's own ``Expectation.configuration`` and fingerprint threshold for the test; after it, GX
    as ``gxworker._batch_definition`` leaves it in this process (the fingerprint off)."""
    gxworker._batch_definition()  # (cached: its change made now, and put back after the test)
    shipped = vars(Expectation)["configuration"]
    assert shipped is not gx_compat._kept  # this process never keeps configurations outside a test
    monkeypatch.setattr(Expectation, "configuration", shipped)
    monkeypatch.setattr(engine, "HASH_THRESHOLD", SHIPPED_THRESHOLD)
    yield shipped
    gx_compat.forget_configurations()


def _suite() -> dict[str, Any]:
    doc = load_suite(Settings.from_env().expectations_dir, "anpr_reads")
    wanted = {"source_id", "camera_id"}
    return {"name": doc["name"], "expectations": [e for e in doc["expectations"] if e["kwargs"]["column"] in wanted]}


def _frame() -> pa.Table:
    return pa.table({"source_id": ["R1", "R 2", None, "R4", ""], "camera_id": ["C1", "C2", "C3", "C\t4", "C5"]})


def _answers(results: list[gxworker.SuiteResult]) -> list[tuple]:
    return [(r.type, r.kwargs["column"], r.success, r.exception, r.unexpected_index.tolist()) for r in results]


# ------------------------------------------------------------------------ the batch fingerprint
def test_with_the_fingerprint_off_gx_hashes_no_batch(gx_as_shipped: property, monkeypatch: pytest.MonkeyPatch) -> None:
    """GX's own batch path (the worker's batch definition): as shipped it hashes every cell of the
    frame into the batch markers; after ``disable_batch_fingerprint`` it hashes nothing, for a batch
    or for a whole validation, and gives the same answers."""
    definition = gxworker._batch_definition()
    hashed: list[int] = []
    hash_frame = engine.hash_pandas_dataframe

    def counting(df: pd.DataFrame) -> str:
        hashed.append(len(df))
        return str(hash_frame(df))

    monkeypatch.setattr(engine, "hash_pandas_dataframe", counting)
    frame = pd.DataFrame({"x": ["a", "b", None]})

    def markers() -> dict[str, Any]:
        return dict(definition.get_batch(batch_parameters={"dataframe": frame}).batch_markers)

    assert FINGERPRINT in markers() and hashed == [3]  # as shipped: the three rows hashed
    shipped = gxworker.execute(_frame(), _suite(), {}, RESULT_FORMAT)
    assert hashed[1:] and set(hashed[1:]) == {5}  # and the validated frame's five (GX loads it twice)

    hashed.clear()
    gx_compat.disable_batch_fingerprint()
    assert FINGERPRINT not in markers()
    changed = gxworker.execute(_frame(), _suite(), {}, RESULT_FORMAT)
    assert hashed == []  # nothing hashed
    assert _answers(changed) == _answers(shipped)


# ------------------------------------------------------------------- configurations kept per call
def test_a_kept_configuration_is_the_same_object_until_forgotten(gx_as_shipped: property) -> None:
    e = great_expectations.expectations.ExpectColumnValuesToNotBeNull(column="x")
    assert e.configuration is not e.configuration  # as shipped: built anew at every read
    gx_compat.keep_configurations()
    installed = vars(Expectation)["configuration"]
    gx_compat.keep_configurations()  # idempotent: not wrapped twice
    assert vars(Expectation)["configuration"] is installed is not gx_as_shipped

    first = e.configuration
    assert e.configuration is first and first.kwargs["column"] == "x"
    other = great_expectations.expectations.ExpectColumnValuesToNotBeNull(column="y")
    assert other.configuration is not first and other.configuration.kwargs["column"] == "y"  # its own

    gx_compat.forget_configurations()  # the end of a call
    fresh = e.configuration
    assert fresh is not first and fresh == first  # built again, equal
    assert e.configuration is fresh


def test_in_a_validation_each_configuration_is_built_once_per_call(
    gx_as_shipped: property, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counted in GX's own property: as shipped a validation builds each configuration again and
    again (492 builds for these 4 expectations); kept, once per expectation object and call (60: GX
    copies its expectations), with the same answers, and nothing is held once the call is over."""
    built: list[Any] = []  # the expectation objects, held (their ids stay theirs)

    def counting(self: Any) -> Any:
        built.append(self)
        return gx_as_shipped.fget(self)  # type: ignore[misc]

    monkeypatch.setattr(Expectation, "configuration", property(counting))
    shipped = gxworker.execute(_frame(), _suite(), {}, RESULT_FORMAT)
    as_shipped = len(built)
    assert max(Counter(map(id, built)).values()) > 1

    built.clear()
    gx_compat.keep_configurations()  # keeps what the counting property builds
    kept = gxworker.execute(_frame(), _suite(), {}, RESULT_FORMAT)
    once = len(built)
    assert set(Counter(map(id, built)).values()) == {1}  # once per expectation object
    assert 0 < once < as_shipped
    assert gx_compat._configurations == {}  # dropped when the call ended
    assert _answers(kept) == _answers(shipped)

    again = gxworker.execute(_frame(), _suite(), {}, RESULT_FORMAT)
    assert len(built) == 2 * once  # the next call builds its own, none is carried over
    assert set(Counter(map(id, built)).values()) == {1}
    assert _answers(again) == _answers(shipped)


# -------------------------------------------------------------------------------- the guard
def test_the_installed_gx_is_one_the_changes_were_checked_against() -> None:
    assert gx_compat.check_version() == great_expectations.__version__


@pytest.mark.parametrize("version", ["1.25.0", "1.24.0", "2.0.0", "1.24.2rc1", "unknown"])
def test_a_gx_version_not_checked_against_is_refused_before_any_change(
    gx_as_shipped: property, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setattr(great_expectations, "__version__", version)
    expected = (
        f"Great Expectations {re.escape(version)} is installed.*checked against GX "
        f"{re.escape(gx_compat.CHECKED_VERSIONS)} only"
    )
    for change in (gx_compat.disable_batch_fingerprint, gx_compat.keep_configurations):
        with pytest.raises(ValidatorError, match=expected):
            change()
    assert engine.HASH_THRESHOLD == SHIPPED_THRESHOLD  # nothing was changed
    assert vars(Expectation)["configuration"] is gx_as_shipped


def test_a_gx_without_hash_threshold_is_refused_not_patched_silently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(engine, "HASH_THRESHOLD")
    version = re.escape(great_expectations.__version__)
    with pytest.raises(
        ValidatorError, match=rf"Great Expectations {version}: \S+pandas_execution_engine\.HASH_THRESHOLD"
    ):
        gx_compat.disable_batch_fingerprint()
    assert not hasattr(engine, "HASH_THRESHOLD")  # not created: it would do nothing


def test_a_hash_threshold_gx_no_longer_reads_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Renamed inside GX's batch method (the module constant left behind): setting it would do nothing."""

    def get_batch_data_and_markers(self: Any, batch_spec: Any) -> Any:
        return None

    monkeypatch.setattr(engine, "HASH_THRESHOLD", SHIPPED_THRESHOLD)
    monkeypatch.setattr(engine.PandasExecutionEngine, "get_batch_data_and_markers", get_batch_data_and_markers)
    with pytest.raises(ValidatorError, match="HASH_THRESHOLD is not read by PandasExecutionEngine"):
        gx_compat.disable_batch_fingerprint()
    assert engine.HASH_THRESHOLD == SHIPPED_THRESHOLD


def test_a_gx_without_expectation_configuration_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(Expectation, "configuration")
    version = re.escape(great_expectations.__version__)
    with pytest.raises(ValidatorError, match=rf"Great Expectations {version}: \S+\.Expectation\.configuration is"):
        gx_compat.keep_configurations()
    assert "configuration" not in vars(Expectation)


def test_a_refused_gx_is_the_reason_the_worker_gives(gx_as_shipped: property, monkeypatch: pytest.MonkeyPatch) -> None:
    """``gxworker.serve`` answers every request with this reason (tests/component/test_gxworker.py)."""
    installed = great_expectations.__version__
    monkeypatch.setattr(great_expectations, "__version__", "1.99.0")
    reason = gxworker._prepare()
    assert reason is not None and "Great Expectations 1.99.0 is installed" in reason
    assert vars(Expectation)["configuration"] is gx_as_shipped
    monkeypatch.setattr(great_expectations, "__version__", installed)
    assert gxworker._prepare() is None
    assert vars(Expectation)["configuration"] is gx_compat._kept  # (until the fixture puts GX's back)
