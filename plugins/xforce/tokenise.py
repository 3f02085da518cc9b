"""Plate pseudonymisation: keyed HMAC-SHA256 of the normalised plate.

Each distinct plate is hashed once per batch (dictionary encoding), so the cost follows the
number of vehicles, not the number of reads.
"""

from __future__ import annotations

import hashlib
import hmac

import pyarrow as pa
import pyarrow.compute as pc


def tokenise(plates: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """Normalised plates -> hex tokens (null stays null)."""
    if isinstance(plates, pa.ChunkedArray):
        plates = plates.combine_chunks()
    encoded = pc.dictionary_encode(plates)
    tokens = [
        None if p is None else hmac.new(key, p.encode("utf-8"), hashlib.sha256).hexdigest()
        for p in encoded.dictionary.to_pylist()
    ]
    return pc.take(pa.array(tokens, pa.string()), encoded.indices)
