"""Plate pseudonymisation: keyed HMAC-SHA256 of the normalised plate, as 64 hex characters.

Each distinct plate is hashed once: a batch is dictionary-encoded, and ``PlateTokens`` keeps
the plates already hashed in this extract with their tokens in Arrow arrays (about 50 bytes a
plate, no Python object per plate), so the cost follows the number of vehicles, not the number
of reads. Those same pairs are what the restricted token map keeps (``xforce.privacy``).
"""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DIGEST = pa.binary(32)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def token(plate: str, key: bytes) -> str:
    return hmac.new(key, plate.encode("utf-8"), hashlib.sha256).hexdigest()


def tokenise(plates: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """Normalised plates -> hex tokens (null stays null)."""
    return PlateTokens(key).tokenise(plates)


def _digests(plates: pa.Array, key: bytes) -> pa.Array:
    """HMAC-SHA256 of each (non-null) plate, as 32-byte binaries."""
    base = hmac.new(key, digestmod=hashlib.sha256)  # keyed once; each plate costs a copy of its state
    out = bytearray()
    for p in plates.to_pylist():
        h = base.copy()
        h.update(p.encode("utf-8"))
        out += h.digest()
    return pa.Array.from_buffers(DIGEST, len(plates), [None, pa.py_buffer(bytes(out))])


def to_hex(digests: pa.Array) -> pa.Array:
    """32-byte digests -> 64-character lower-case hex strings (vectorised; nulls stay null)."""
    n = len(digests)
    filled = digests.fill_null(b"\0" * 32) if digests.null_count else digests
    raw = np.frombuffer(filled.buffers()[1], dtype=np.uint8)[filled.offset * 32 : (filled.offset + n) * 32]
    raw = raw.reshape(n, 32)
    chars = np.empty((n, 64), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 15]
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    validity = digests.buffers()[0] if digests.null_count else None
    if validity is not None and digests.offset:
        validity = pa.array(digests.is_valid()).buffers()[1]
    return pa.Array.from_buffers(
        pa.string(), n, [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(chars.tobytes())], digests.null_count
    )


class PlateTokens:
    """The distinct plates of an extract so far and their HMAC digests, in Arrow arrays.

    ``limit`` bounds memory: past it, ``take_pairs`` should be written out (the pipeline does) and
    the cache starts again; a plate seen again is then simply hashed again.
    """

    def __init__(self, key: bytes, limit: int = 4_000_000) -> None:
        self.key, self.limit = key, limit
        self.plates = pa.array([], pa.string())
        self.digests = pa.array([], DIGEST)

    def __len__(self) -> int:
        return len(self.plates)

    def tokenise(self, plates: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Normalised plates -> hex tokens (null stays null); new plates are remembered."""
        if isinstance(plates, pa.ChunkedArray):
            plates = plates.combine_chunks()
        encoded = pc.dictionary_encode(plates)
        distinct = encoded.dictionary
        known = pc.index_in(distinct, value_set=self.plates)
        missing = pc.is_null(known)
        fresh = distinct.filter(missing)
        fresh_digests = _digests(fresh, self.key)
        if len(fresh):
            self.plates = pa.concat_arrays([self.plates, fresh])
            self.digests = pa.concat_arrays([self.digests, fresh_digests])
        digests = pc.replace_with_mask(pc.take(self.digests, known), missing, fresh_digests)
        return pc.take(to_hex(digests), encoded.indices)

    @property
    def full(self) -> bool:
        return len(self.plates) >= self.limit

    def take_pairs(self) -> tuple[pa.Array, pa.Array]:
        """(plates, hex tokens) remembered so far; the cache is emptied."""
        pairs = self.plates, to_hex(self.digests)
        self.plates, self.digests = self.plates[:0], self.digests[:0]
        return pairs
