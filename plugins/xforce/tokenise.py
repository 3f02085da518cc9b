"""Plate pseudonymisation: keyed HMAC-SHA256 of the normalised plate.

Each distinct plate is hashed once (dictionary encoding, plus a cache shared by an extract's
batches), so the cost follows the number of vehicles, not the number of reads.
"""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pyarrow.compute as pc


def token(plate: str, key: bytes) -> str:
    return hmac.new(key, plate.encode("utf-8"), hashlib.sha256).hexdigest()


def tokenise(plates: pa.Array | pa.ChunkedArray, key: bytes, cache: dict[str, str] | None = None) -> pa.Array:
    """Normalised plates -> hex tokens (null stays null)."""
    return tokenise_distinct(plates, key, cache)[0]


def tokenise_distinct(
    plates: pa.Array | pa.ChunkedArray, key: bytes, cache: dict[str, str] | None = None
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Normalised plates -> (tokens, the distinct plates, their tokens): the pairs a token map keeps."""
    if isinstance(plates, pa.ChunkedArray):
        plates = plates.combine_chunks()
    encoded = pc.dictionary_encode(plates)
    memo: dict[str, str] = {} if cache is None else cache
    tokens: list[str | None] = []
    for p in encoded.dictionary.to_pylist():
        if p is None:
            tokens.append(None)
            continue
        t = memo.get(p)
        if t is None:
            t = memo[p] = token(p, key)
        tokens.append(t)
    distinct = pa.array(tokens, pa.string())
    return pc.take(distinct, encoded.indices), encoded.dictionary, distinct
