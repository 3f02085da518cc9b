"""Plate tokens: the Arrow-side cache gives exactly HMAC-SHA256 hex, batch after batch."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pyarrow as pa
import pytest

from xforce.tokenise import DIGEST, PlateTokens, to_hex, token, tokenise

pytestmark = pytest.mark.unit

KEY = b"unit-test-key-0123456789abcdef"


def _reference(plates: list[str | None]) -> list[str | None]:
    return [None if p is None else hmac.new(KEY, p.encode(), hashlib.sha256).hexdigest() for p in plates]


def test_tokens_are_hmac_sha256_hex_with_nulls_kept() -> None:
    plates = ["AB12CDE", None, "AB12CDE", "Z1", "ÉÈ12", None]
    assert tokenise(pa.array(plates, pa.string()), KEY).to_pylist() == _reference(plates)
    assert token("AB12CDE", KEY) == _reference(["AB12CDE"])[0]


def test_cache_across_batches_and_past_its_limit_gives_the_same_tokens() -> None:
    rng = np.random.default_rng(5)
    cache = PlateTokens(KEY, limit=100)
    handed: dict[str, str] = {}  # pairs handed out since the cache last started again
    fulls = 0
    for top in (40, 60, 60, 200, 60, 60):
        plates = [None if v == 0 else f"P{v}" for v in rng.integers(0, top, 300)]
        got = cache.tokenise(pa.chunked_array([pa.array(plates[:100]), pa.array(plates[100:])]))
        assert got.to_pylist() == _reference(plates)
        held, full = len(cache), cache.full
        p, t = cache.take_new_pairs()
        new = dict(zip(p.to_pylist(), t.to_pylist(), strict=True))
        assert not set(new) & set(handed)  # only the plates not handed out before
        assert all(_reference([k])[0] == v for k, v in new.items())  # what the token map keeps
        handed.update(new)
        assert set(handed) == {x for x in plates if x} | (set(handed) - set(plates))
        assert len(cache) == (0 if full else held)  # kept for the next batch unless over the limit
        if full:
            fulls += 1
            handed.clear()  # a fresh cache hands its plates out again
    assert fulls >= 1 and cache.take_new_pairs()[0].to_pylist() == []


def test_to_hex_on_slices_with_nulls() -> None:
    raw = [hashlib.sha256(bytes([i])).digest() for i in range(10)]
    arr = pa.array([None if i % 3 == 0 else r for i, r in enumerate(raw)], DIGEST)
    for part in (arr, arr.slice(1, 7), arr.slice(4)):
        want = [None if v is None else v.hex() for v in part.to_pylist()]
        assert to_hex(part).to_pylist() == want
