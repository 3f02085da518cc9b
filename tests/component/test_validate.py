"""GX validation on distinct values: verdicts per row, precedence in suite order, no values kept."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from xforce.exchange.process import _params
from xforce.intake.contracts import load_registry
from xforce.quality.validate import load_suite, validate
from xforce.settings import Settings

pytestmark = pytest.mark.component


def _table(rows: list[dict]) -> pa.Table:
    base = {
        "record_id": "norfolk:R",
        "source_id": "R",
        "force_code": "norfolk",
        "source_file": "f",
        "source_record": 1,
        "read_at": datetime(2026, 11, 27, 12, tzinfo=UTC),
        "camera_id": "NFK-CAM-0001",
        "latitude": 52.6,
        "longitude": 1.0,
        "plate": "AB12CDE",
        "_first_occurrence": True,
    }
    cols = {k: [r.get(k, v) for r in rows] for k, v in base.items()}
    cols["source_id"] = [f"R{i}" for i in range(len(rows))]
    cols["record_id"] = [f"norfolk:R{i}" for i in range(len(rows))]
    return pa.table(cols).cast(
        pa.schema(
            [
                ("record_id", pa.string()),
                ("source_id", pa.string()),
                ("force_code", pa.string()),
                ("source_file", pa.string()),
                ("source_record", pa.int64()),
                ("read_at", pa.timestamp("us", tz="UTC")),
                ("camera_id", pa.string()),
                ("latitude", pa.float64()),
                ("longitude", pa.float64()),
                ("plate", pa.string()),
                ("_first_occurrence", pa.bool_()),
            ]
        )
    )


def test_row_verdicts_follow_suite_order_and_every_row_gets_its_value_verdict() -> None:
    settings = Settings.from_env()
    registry = load_registry(settings.config_dir)
    contract = registry.contract("norfolk", "anpr_reads")
    late = datetime(2099, 1, 1, tzinfo=UTC)
    rows = [
        {},  # clean
        {"plate": "XX!!9999999"},  # bad plate
        {"read_at": late, "plate": "XX!!9999999"},  # two failures: the earlier expectation in the suite wins
        {"latitude": 55.9},  # out of region
        {"plate": "XX!!9999999"},  # the same bad value again: judged once, applies to both rows
        {"_first_occurrence": False},
        {},
    ]
    verdict = validate(
        _table(rows), "anpr_reads", contract, _params(registry, contract, "2026-11-27"), settings.expectations_dir
    )
    suite = [e["meta"]["reason"] for e in load_suite(settings.expectations_dir, "anpr_reads")["expectations"]]
    assert suite.index("impossible_timestamp") < suite.index("bad_plate")
    assert list(verdict.reasons) == [
        None,
        "bad_plate",
        "impossible_timestamp",
        "out_of_region",
        "bad_plate",
        "duplicate_id",
        None,
    ]
    assert "match_regex(plate)" in verdict.details[2] and "between(read_at)" in verdict.details[2]
    assert np.array_equal(verdict.failed, [False, True, True, True, True, True, False])
    plate_outcome = next(o for o in verdict.outcomes if o.reason == "bad_plate")
    assert plate_outcome.unexpected == 3 and plate_outcome.element_count == len(rows)
    assert "XX!!" not in repr(verdict.outcomes)  # counts only, never values


def test_frames_of_similar_length_give_the_same_verdicts_as_one_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """Splitting the columns into frames (ids alone, the rest shorter) changes no verdict."""
    from xforce.quality import validate as validate_module

    settings = Settings.from_env()
    registry = load_registry(settings.config_dir)
    contract = registry.contract("norfolk", "anpr_reads")
    rng = np.random.default_rng(11)
    bad = [{"plate": "XX!!9999999"}, {"latitude": 55.9}, {"_first_occurrence": False}, {"camera_id": "CAM 1"}]
    rows = [bad[i % 4] if i % 7 == 0 else {"plate": f"AB{rng.integers(10, 13)}CDE"} for i in range(600)]
    table = _table(rows)
    params = _params(registry, contract, "2026-11-27")
    lengths = {c: len(table.column(c).unique()) for c in ("source_id", "plate", "camera_id")}
    groups = validate_module._frame_groups(lengths)
    monkeypatch.setattr(validate_module, "SPLIT_MIN_ROWS", 10**9)
    one = validate(table, "anpr_reads", contract, params, settings.expectations_dir)
    monkeypatch.setattr(validate_module, "SPLIT_MIN_ROWS", 1)
    split_groups = validate_module._frame_groups(lengths)
    many = validate(table, "anpr_reads", contract, params, settings.expectations_dir)
    assert len(groups) == 1 and len(split_groups) == 2  # the monkeypatch really changes the grouping
    assert list(many.reasons) == list(one.reasons)
    assert list(many.details) == list(one.details)
    assert [(o.type, o.column, o.unexpected) for o in many.outcomes] == [
        (o.type, o.column, o.unexpected) for o in one.outcomes
    ]
    assert {r for r in one.reasons if r} == {"bad_plate", "out_of_region", "duplicate_id", "bad_id"}


def test_unique_columns_are_judged_row_by_row_with_repeats_and_nulls() -> None:
    """``source_id`` is judged as it stands (not reduced to distinct values): a repeated bad id,
    a null id and an empty id each get the verdict of their own value, in place."""
    from xforce.schemas import ROW_UNIQUE

    assert "source_id" in ROW_UNIQUE
    settings = Settings.from_env()
    registry = load_registry(settings.config_dir)
    contract = registry.contract("norfolk", "anpr_reads")
    ids = ["R0", "R 1", None, "R3", "R 1", "", "R6"]
    table = _table([{} for _ in ids])
    table = table.set_column(table.column_names.index("source_id"), "source_id", pa.array(ids, pa.string()))
    verdict = validate(
        table, "anpr_reads", contract, _params(registry, contract, "2026-11-27"), settings.expectations_dir
    )
    reasons = list(verdict.reasons)
    assert reasons[0] is None and reasons[3] is None and reasons[6] is None
    assert reasons[1] == reasons[4] == "bad_id"  # white space inside an id
    assert reasons[2] is not None and reasons[5] is not None  # missing, empty
    by_type = {(o.type, o.column): o.unexpected for o in verdict.outcomes}
    assert by_type[("expect_column_values_to_match_regex", "source_id")] >= 3
    assert by_type[("expect_column_values_to_not_be_null", "source_id")] == 1


def test_gx_worker_releases_the_frames_it_validated() -> None:
    """GX keeps each frame (which shares the request's Arrow buffers) in reference cycles; the
    worker's ``execute`` collects them, so the Arrow memory it holds does not grow with the calls."""
    import gc

    from xforce.quality.gxworker import execute
    from xforce.quality.validate import RESULT_FORMAT

    settings = Settings.from_env()
    doc = load_suite(settings.expectations_dir, "anpr_reads")
    suite = {
        "name": doc["name"],
        "expectations": [e for e in doc["expectations"] if e["kwargs"]["column"] == "source_id"],
    }
    n = 200_000

    def frame(k: int) -> pa.Table:
        return pa.table({"source_id": pa.array([f"NFK-{k}-{i:09d}" for i in range(n)])})

    execute(frame(0), suite, {}, RESULT_FORMAT)  # warm: GX set up
    gc.collect()
    before = pa.total_allocated_bytes()
    gc.disable()  # only execute() itself may collect
    try:
        for k in range(1, 4):
            results = execute(frame(k), suite, {}, RESULT_FORMAT)
            assert [r.success for r in results] == [True, True]
        held = pa.total_allocated_bytes() - before
    finally:
        gc.enable()
    assert held < frame(0).nbytes / 2, f"{held} bytes of Arrow memory still held after execute()"
