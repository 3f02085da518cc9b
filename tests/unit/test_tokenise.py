"""Plate tokens: the Arrow-side cache gives exactly HMAC-SHA256 hex, batch after batch."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pyarrow as pa
import pytest

from xforce.privacy.tokens import DIGEST, PlateTokens, to_hex, token, tokenise

pytestmark = pytest.mark.unit

KEY = b"unit-test-key-0123456789abcdef"


def _reference(plates: list[str | None]) -> list[str | None]:
    return [None if p is None else hmac.new(KEY, p.encode(), hashlib.sha256).hexdigest() for p in plates]


def test_tokens_are_hmac_sha256_hex_with_nulls_kept() -> None:
    plates = ["AB12CDE", None, "AB12CDE", "Z1", "ÉÈ12", None]
    assert tokenise(pa.array(plates, pa.string()), KEY).to_pylist() == _reference(plates)
    assert token("AB12CDE", KEY) == _reference(["AB12CDE"])[0]


@pytest.mark.parametrize("key", [b"", b"k", b"x" * 64, b"long-key-" * 20])
def test_digests_are_rfc_2104_hmac_for_any_key_length(key: bytes) -> None:
    plates = ["AB12CDE", "ÉÈ12", "Z"]
    got = tokenise(pa.array(plates), key).to_pylist()
    assert got == [hmac.new(key, p.encode(), hashlib.sha256).hexdigest() for p in plates]


def test_cache_across_batches_and_past_its_limit_gives_the_same_tokens() -> None:
    rng = np.random.default_rng(5)
    cache = PlateTokens(KEY, limit=100)
    fulls = 0
    for top in (40, 60, 60, 200, 60, 60, 300, 80):
        plates = [None if v == 0 else f"P{v}" for v in rng.integers(0, top, 300)]
        before = set(cache.plates.to_pylist())
        got = cache.tokenise(pa.chunked_array([pa.array(plates[:100]), pa.array(plates[100:])]))
        assert got.to_pylist() == _reference(plates)
        full = cache.full
        p, t = cache.take_new_pairs()
        new = dict(zip(p.to_pylist(), t.to_pylist(), strict=True))
        assert set(new) == {x for x in plates if x} - before  # each plate not held is handed out, once
        assert all(_reference([k])[0] == v for k, v in new.items())  # what the token map keeps
        kept = cache.plates.to_pylist()
        assert len(kept) == len(set(kept)) and cache.pending == 0
        if full:
            fulls += 1
            assert 0 < len(kept) <= cache.limit * cache.KEEP and set(kept) <= before | set(new)
        else:
            assert set(kept) == before | set(new)
    assert fulls >= 2 and cache.take_new_pairs()[0].to_pylist() == []


def test_a_full_cache_keeps_the_plates_found_again_most() -> None:
    cache = PlateTokens(KEY, limit=10)
    cache.KEEP = 0.2  # two plates survive a fill
    cache.tokenise(pa.array([f"A{i}" for i in range(6)]))
    cache.tokenise(pa.array(["A0", "A1", "A2"]))
    cache.tokenise(pa.array(["A1", "A2", "B0", "B1", "B2", "B3"]))  # A1, A2 found twice; A0 once
    assert cache.full
    assert len(cache.take_new_pairs()[0]) == 10
    assert cache.plates.to_pylist() == ["A1", "A2"] and not cache.full
    tokens = cache.tokenise(pa.array(["A2", "A0", None]))
    assert tokens.to_pylist() == _reference(["A2", "A0", None])
    assert cache.take_new_pairs()[0].to_pylist() == ["A0"]  # A2 was kept: not handed out again


def test_to_hex_on_slices_with_nulls() -> None:
    raw = [hashlib.sha256(bytes([i])).digest() for i in range(10)]
    arr = pa.array([None if i % 3 == 0 else r for i, r in enumerate(raw)], DIGEST)
    for part in (arr, arr.slice(1, 7), arr.slice(4)):
        want = [None if v is None else v.hex() for v in part.to_pylist()]
        assert to_hex(part).to_pylist() == want
