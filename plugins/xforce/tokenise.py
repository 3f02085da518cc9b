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

from xforce.hashing import hash64, lookup_sorted, stable_order

DIGEST = pa.binary(32)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
#: byte -> its two hex characters, as the uint16 whose memory holds them in order
_HEX_PAIRS = np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1).copy().view(np.uint16).ravel()


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
    chars = _HEX_PAIRS[raw]  # one lookup a byte: its two hex characters as one uint16
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    validity = digests.buffers()[0] if digests.null_count else None
    if validity is not None and digests.offset:
        validity = pa.array(digests.is_valid()).buffers()[1]
    return pa.Array.from_buffers(
        pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(chars)], digests.null_count
    )


class PlateTokens:
    """The distinct plates of an extract so far and their HMAC digests, in Arrow arrays.

    Found again by their 64-bit hash (``xforce.hashing``) in sorted arrays, a large run plus a
    small recent one merged in when it reaches an eighth of it, so a batch costs its own size;
    a hash match is confirmed on the plate itself, so a collision costs one more HMAC, never a
    wrong token. ``take_new_pairs`` hands out the pairs added since it was last called (the
    pipeline writes them to the token map every ``MAP_FLUSH_PLATES`` new plates and at the end of
    a file); ``limit`` bounds memory (about 60 bytes a plate: 60 MB): once that many plates are
    held, the cache starts again.
    """

    def __init__(self, key: bytes, limit: int = 1_000_000) -> None:
        self.key, self.limit = key, limit
        self._reset()

    def _reset(self) -> None:
        self.taken = 0  # plates already handed out by take_new_pairs
        self.plates = pa.array([], pa.string())
        self.digests = pa.array([], DIGEST)
        empty_h, empty_p = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
        self._main, self._recent = (empty_h, empty_p), (empty_h, empty_p)

    def __len__(self) -> int:
        return len(self.plates)

    def _find(self, hashes: np.ndarray) -> np.ndarray:
        pos = np.full(len(hashes), -1, dtype=np.int64)
        for keys, payload in (self._main, self._recent):
            at = lookup_sorted(hashes, keys)
            pos = np.where(at >= 0, payload[np.maximum(at, 0)] if len(payload) else -1, pos)
        return pos

    def _add(self, hashes: np.ndarray, positions: np.ndarray) -> None:
        keys = np.concatenate([self._recent[0], hashes])
        order = np.argsort(keys, kind="stable")
        self._recent = keys[order], np.concatenate([self._recent[1], positions])[order]
        if len(self._recent[0]) * 8 > len(self._main[0]):
            keys = np.concatenate([self._main[0], self._recent[0]])
            order = np.argsort(keys, kind="stable")
            self._main = keys[order], np.concatenate([self._main[1], self._recent[1]])[order]
            self._recent = self._recent[0][:0], self._recent[1][:0]

    def tokenise(self, plates: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Normalised plates -> hex tokens (null stays null); new plates are remembered."""
        if isinstance(plates, pa.ChunkedArray):
            plates = plates.combine_chunks()
        encoded = pc.dictionary_encode(plates)
        distinct = encoded.dictionary  # no null in it
        hashes = hash64(distinct)
        order = stable_order(hashes)
        pos = np.empty(len(distinct), dtype=np.int64)
        pos[order] = self._find(hashes[order])
        if len(self.plates):  # confirm each hash match on the plate itself
            found = np.flatnonzero(pos >= 0)
            same = pc.equal(pc.take(self.plates, pa.array(pos[found])), distinct.take(pa.array(found)))
            pos[found[~same.to_numpy(zero_copy_only=False)]] = -1
        missing = pos < 0
        fresh = distinct.filter(pa.array(missing))
        fresh_digests = _digests(fresh, self.key)
        known = pa.array(np.where(missing, 0, pos), mask=missing)
        digests = pc.replace_with_mask(pc.take(self.digests, known), pa.array(missing), fresh_digests)
        if len(fresh):
            start = len(self.plates)
            self.plates = pa.concat_arrays([self.plates, fresh])
            self.digests = pa.concat_arrays([self.digests, fresh_digests])
            self._add(hashes[missing], np.arange(start, start + len(fresh), dtype=np.int64))
        # hex per row from the digests taken per row: a take of fixed 32-byte values and one table
        # lookup a byte, cheaper than taking 64-character strings
        return to_hex(pc.take(digests, encoded.indices))

    @property
    def full(self) -> bool:
        return len(self.plates) >= self.limit

    @property
    def pending(self) -> int:
        """Plates tokenised but not yet handed out by ``take_new_pairs``."""
        return len(self.plates) - self.taken

    def take_new_pairs(self) -> tuple[pa.Array, pa.Array]:
        """(plates, hex tokens) tokenised since the last call; the cache keeps them (unless full)."""
        pairs = self.plates[self.taken :], to_hex(self.digests[self.taken :])
        self.taken = len(self.plates)
        if self.full:
            self._reset()
        return pairs
