"""Every Great Expectations suite in expectations/: a fixture that passes it, and one failing each expectation.

Row-level suites run through ``xforce.quality.validate.validate`` (the pipeline's own path): for each
expectation one row of a clean table is broken so that exactly that expectation fails, and the test
asserts the row's outcome (quarantined with the expectation's reason when critical, flagged when a
warning) and that every other expectation and row still passes. Table-level suites run through
``xforce.quality.table_suite.run_table_suite`` on one-row metric frames.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pytest

from xforce.exchange.process import _params
from xforce.intake.contracts import Registry, load_registry
from xforce.quality.config import SEVERITY_OF, load_config
from xforce.quality.order import LAG_COLUMN, LAG_PARAM
from xforce.quality.table_suite import run_table_suite
from xforce.quality.validate import validate
from xforce.schemas import DATASETS, UTC_TS
from xforce.settings import PROJECT_ROOT

pytestmark = pytest.mark.component

EXPECTATIONS = PROJECT_ROOT / "expectations"
CONFIG = PROJECT_ROOT / "config"
NIGHT = "2026-11-27"
N = 4  # rows in each fixture; row 0 is the one broken


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(str(CONFIG))


def suite(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EXPECTATIONS / f"{name}.json").read_text(encoding="utf-8"))
    return doc


def ts(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, 27, hour, minute, tzinfo=dt.UTC)


def clean(dataset: str) -> dict[str, list[Any]]:
    """A normalised batch (canonical columns, clear plate, derived flags) that passes every expectation."""
    common: dict[str, list[Any]] = {
        "record_id": [f"norfolk:NFK-X-{i}" for i in range(N)],
        "source_id": [f"NFK-X-{i}" for i in range(N)],
        "force_code": ["norfolk", "suffolk", "kent", "essex"],
        "latitude": [52.6, 52.1, 51.2, 51.7],
        "longitude": [1.0, 1.1, 0.7, 0.6],
        "plate": ["AB12CDE", "XY51ABC", "A123BCD", "K1"],
        "_first_occurrence": [True] * N,
    }
    if dataset == "incidents":
        return {
            **common,
            "occurred_at": [ts(1), ts(5), ts(12), ts(23)],
            "offence": ["hare_coursing", "poaching", "theft", "violence"],
            "outcome": ["charged", None, "under_investigation", "awaiting_court"],
            "time_precision": ["exact", "exact", "month", "exact"],
            "location_precision": ["exact", "none", "anonymised", "exact"],
            "lsoa_code": ["E01026461", None, "W01000001", "E01000002"],
        }
    if dataset == "anpr_reads":
        return {**common, "read_at": [ts(1), ts(2), ts(3), ts(4)], "camera_id": ["NFK-CAM-0001"] * N}
    return {
        **common,
        "seized_at": [ts(2), ts(6), ts(13), ts(22)],
        "incident_record_id": ["norfolk:NFK-INC-1", "suffolk:SFK/INC/2", "kent:KNT-I-3", "essex:ESX-I-4"],
        "item_type": ["dog", "vehicle", "equipment", "dog"],
        "quantity": [2, 1, 1, 100],
        "_incident_known": [True] * N,
    }


def table(cols: dict[str, list[Any]]) -> pa.Table:
    types = {"occurred_at": UTC_TS, "read_at": UTC_TS, "seized_at": UTC_TS, "quantity": pa.int64()}
    return pa.table({k: pa.array(v, types.get(k)) for k, v in cols.items()})


def broken_value(e: dict[str, Any], params: dict[str, Any], current: Any) -> Any:
    """A value failing expectation ``e`` (and, by construction, no other expectation of the suite)."""
    kind, kw = e["type"], e["kwargs"]
    if kind == "expect_column_values_to_not_be_null":
        return None
    if kind == "expect_column_values_to_be_in_set":
        return False if isinstance(current, bool) else "not_a_known_value"
    if kind == "expect_column_values_to_match_regex":
        return "12345678901" if kw["column"] == "plate" else "has a space!"
    if kind == "expect_column_values_to_be_between":
        low = kw.get("min_value")
        low = params[low["$PARAMETER"]] if isinstance(low, dict) else low
        if isinstance(current, dt.datetime):
            return dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return low - 1 if low is not None else kw["max_value"] + 1
    raise AssertionError(f"no broken value for {kind}")


@pytest.mark.parametrize("dataset", DATASETS)
def test_row_suite_passes_clean_fixture(registry: Registry, dataset: str) -> None:
    contract = registry.contract("norfolk", dataset)
    params = {**_params(registry, contract, NIGHT), LAG_PARAM: 0.0}
    cols = clean(dataset)
    if dataset == "seizures":
        cols[LAG_COLUMN] = [5.0, 0.0, 30.0, 170.0]
    verdict = validate(table(cols), dataset, contract, params, str(EXPECTATIONS))
    assert list(verdict.reasons) == [None] * N and not verdict.warned.any()
    evaluated = {(o.type, o.column) for o in verdict.outcomes}
    assert evaluated == {(e["type"], e["kwargs"]["column"]) for e in suite(dataset)["expectations"]}
    assert all(o.success and o.unexpected == 0 for o in verdict.outcomes)


@pytest.mark.parametrize("dataset", DATASETS)
def test_row_suite_each_expectation_fails_alone(registry: Registry, dataset: str) -> None:
    """One extra row per expectation, breaking only that expectation, all validated in one batch."""
    contract = registry.contract("norfolk", dataset)
    params = {**_params(registry, contract, NIGHT), LAG_PARAM: 0.0}
    expectations = suite(dataset)["expectations"]
    row_level = [e for e in expectations if e["kwargs"]["column"] != LAG_COLUMN]
    order = [e for e in expectations if e["kwargs"]["column"] == LAG_COLUMN]
    cols = clean(dataset)
    for e in row_level:  # row N + i breaks expectation i (a copy of clean row 0 otherwise)
        for values in cols.values():
            values.append(values[0])
        column = e["kwargs"]["column"]
        cols[column][-1] = broken_value(e, params, cols[column][0])
    verdict = validate(table(cols), dataset, contract, params, str(EXPECTATIONS))
    assert list(verdict.reasons[:N]) == [None] * N and not verdict.warned[:N].any()
    for i, e in enumerate(row_level):
        row, meta, label = N + i, e["meta"], f"{e['type']}({e['kwargs']['column']})"
        if meta["severity"] == "critical":
            assert (verdict.reasons[row], verdict.details[row]) == (meta["reason"], label), label
            assert not verdict.warned[row], label
        else:
            assert meta["severity"] == "warning"
            assert verdict.reasons[row] is None and bool(verdict.warned[row]), label
    # (Great Expectations 1.x returns results grouped by column, not in suite order)
    assert sorted((o.type, o.column, o.unexpected) for o in verdict.outcomes) == sorted(
        (e["type"], e["kwargs"]["column"], 1) for e in row_level
    )
    if order:  # the seizure/incident order check runs on its own frame, after the split
        lag = validate(table({LAG_COLUMN: [5.0, 0.0, -1.0, 170.0]}), dataset, contract, params, str(EXPECTATIONS))
        assert [bool(w) for w in lag.warned] == [False, False, True, False]
        assert list(lag.reasons) == [None] * 4
        assert [(o.reason, o.severity, o.unexpected) for o in lag.outcomes] == [
            (order[0]["meta"]["reason"], "warning", 1)
        ]


def test_row_suites_match_the_registry_and_contracts(registry: Registry) -> None:
    """force_code's set is the registry's forces; every contract code maps into a canonical category."""
    for dataset in DATASETS:
        sets = {
            e["kwargs"]["column"]: set(e["kwargs"]["value_set"])
            for e in suite(dataset)["expectations"]
            if e["type"] == "expect_column_values_to_be_in_set"
        }
        assert sets["force_code"] == set(registry.forces)
        for contract in registry.contracts.values():
            for name, mapping in contract.codes.items():
                if name in sets:
                    assert set(mapping.values()) <= sets[name], (contract.family, name)
    lag = [e for e in suite("seizures")["expectations"] if e["kwargs"]["column"] == LAG_COLUMN]
    assert [e["meta"]["severity"] for e in lag] == ["warning"]  # checked after the split: cannot quarantine


# ----------------------------------------------------------------------------- table level
def passing_metrics(dataset: str) -> dict[str, Any]:
    return {
        "rows_in": 1000,
        "usual_rows": 1000.0,
        "volume_ratio": 1.0,
        "quarantined_share": 0.05,
        "drift_missing_required": 0,
        "drift_missing_optional": 0,
        "drift_extra": 0,
        "drift_retyped_required": 0,
        "drift_retyped_optional": 0,
    }


@pytest.mark.parametrize("dataset", DATASETS)
def test_table_suite_passes(dataset: str) -> None:
    cfg = dataclasses.replace(load_config(str(CONFIG)), drift=dict.fromkeys(load_config(str(CONFIG)).drift, "warn"))
    cfg.drift["missing_required"] = "quarantine"
    out = run_table_suite(str(EXPECTATIONS), dataset, passing_metrics(dataset), cfg)
    assert len(out) == len(suite(f"{dataset}.table")["expectations"])
    assert all(o["success"] for o in out)
    # no history yet (volume not judged) and too few rows (share not judged) pass too
    none = {**passing_metrics(dataset), "volume_ratio": None, "quarantined_share": None}
    assert all(o["success"] for o in run_table_suite(str(EXPECTATIONS), dataset, none, cfg))


def table_cases() -> list[tuple[str, int]]:
    return [(d, i) for d in DATASETS for i, _ in enumerate(suite(f"{d}.table")["expectations"])]


@pytest.mark.parametrize(("dataset", "index"), table_cases())
def test_table_suite_each_expectation_fails_alone(dataset: str, index: int) -> None:
    base = load_config(str(CONFIG))
    e = suite(f"{dataset}.table")["expectations"][index]
    kw, meta = e["kwargs"], e["meta"]
    metrics = passing_metrics(dataset)
    metrics[kw["column"]] = kw["min_value"] - 0.01 if kw.get("min_value") is not None else kw["max_value"] + 1
    # a policy expectation takes its severity from config/quality.yaml: try both actions that evaluate it
    actions = ["quarantine", "warn"] if meta.get("policy") and meta["policy"] != "missing_required" else [None]
    for action in actions:
        cfg = base if action is None else dataclasses.replace(base, drift={**base.drift, meta["policy"]: action})
        out = run_table_suite(str(EXPECTATIONS), dataset, metrics, cfg)
        failing = [o for o in out if not o["success"]]
        assert [(o["metric"], o["reason"]) for o in failing] == [(kw["column"], meta["reason"])]
        expected = SEVERITY_OF[action] if action else meta["severity"]
        assert failing[0]["severity"] == expected
    if meta.get("policy") and meta["policy"] != "missing_required":
        cfg = dataclasses.replace(base, drift={**base.drift, meta["policy"]: "tolerate"})
        out = run_table_suite(str(EXPECTATIONS), dataset, metrics, cfg)
        assert all(o["success"] for o in out)
        assert [o["severity"] for o in out if o["metric"] == kw["column"]] == ["tolerated"]


# Strings on which Python's re and RE2 used to disagree: trailing newline before $, Unicode white space.
_TRICKY = [
    "AB12CDE", "AB12CDE\n", "AB12 CDE", "NFK-1", "NFK 1", "NFK\t1", "NFK\x0b1", "NFK\x1c1", "NFK\x851",
    "NFK\xa01", "NFK\u20001", "NFK\u30001", "£é-1", "x" * 80, "x" * 81, "", "E01012345", "E01012345\n",
    "norfolk:NFK-1", "norfolk:NFK 1", "\n",
]  # fmt: skip


@pytest.mark.parametrize("dataset", DATASETS)
def test_suite_regexes_run_on_arrow_with_pythons_answers(dataset: str) -> None:
    """Each regex gives RE2 (pandas' Arrow path) the same answers as Python's re, and avoids the
    constructs (\\s \\d \\w \\b $) that send pandas back to Python's re value by value."""
    import re

    import pyarrow.compute as pc

    doc = json.loads((PROJECT_ROOT / "expectations" / f"{dataset}.json").read_text(encoding="utf-8"))
    regexes = [e["kwargs"]["regex"] for e in doc["expectations"] if "regex" in e["kwargs"]]
    assert regexes
    for regex in regexes:
        assert not re.search(r"\\[sdwbSDWB]|\$", regex), regex
        python = [re.search(regex, s) is not None for s in _TRICKY]
        re2 = pc.match_substring_regex(pa.array(_TRICKY), regex.replace("\\Z", "\\z")).to_pylist()
        assert python == re2, regex
