"""Plate pseudonymisation: keyed HMAC-SHA256 of the normalised plate, as 64 hex characters.

Each distinct plate is hashed once: a batch is dictionary-encoded, and ``PlateTokens`` keeps
the plates already hashed in this extract with their tokens in Arrow arrays (about 50 bytes a
plate, no Python object per plate), so the cost follows the number of vehicles, not the number
of reads. Those same pairs are what the restricted token map keeps (``xforce.privacy.tokenmap``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from xforce.errors import KeyMismatchError
from xforce.hashing import hash64, lookup_sorted, stable_order
from xforce.store.layout import check_key_version

if TYPE_CHECKING:
    from xforce.store.ledger import Ledger

DIGEST = pa.binary(32)
#: What a key's fingerprint is the HMAC of: lower case and spaced, so never a normalised plate's token.
FINGERPRINT_MESSAGE = b"xforce key fingerprint v1"
#: A fingerprint is this many hex characters of that HMAC (64 bits).
FINGERPRINT_CHARS = 16
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
#: byte -> its two hex characters, as the uint16 whose memory holds them in order
_HEX_PAIRS = np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1).copy().view(np.uint16).ravel()


def token(plate: str, key: bytes) -> str:
    return hmac.new(key, plate.encode("utf-8"), hashlib.sha256).hexdigest()


def tokenise(plates: pa.Array | pa.ChunkedArray, key: bytes) -> pa.Array:
    """Normalised plates -> hex tokens (null stays null)."""
    return PlateTokens(key).tokenise(plates)


def _digests(plates: pa.Array, key: bytes) -> pa.Array:
    """HMAC-SHA256 (RFC 2104) of each (non-null) plate, as 32-byte binaries.

    The key's inner and outer pads are hashed once; each plate then costs two copies of those
    SHA-256 states (a third less than copying an ``hmac`` object: tests/unit/test_tokenise.py
    checks the digests against ``hmac``)."""
    block = key if len(key) <= 64 else hashlib.sha256(key).digest()
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    out = bytearray()
    for p in plates.to_pylist():
        h = inner.copy()
        h.update(p.encode("utf-8"))
        o = outer.copy()
        o.update(h.digest())
        out += o.digest()
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


class _Appendable:
    """An append-only numpy buffer. Views of what it holds stay valid: growing copies into a new
    buffer (twice the size), and appending writes only past the end."""

    def __init__(self, dtype: type[np.generic], capacity: int, initial: np.ndarray | None = None) -> None:
        self.buf = np.empty(capacity, dtype=dtype)  # reserved, not touched: memory is used as it fills
        self.n = 0
        if initial is not None:
            self.append(initial)

    def append(self, values: np.ndarray) -> None:
        need = self.n + len(values)
        if need > len(self.buf):
            grown = np.empty(max(need, 2 * len(self.buf), 1024), dtype=self.buf.dtype)  # pages touched as used
            grown[: self.n] = self.buf[: self.n]
            self.buf = grown
        self.buf[self.n : need] = values
        self.n = need

    def view(self) -> np.ndarray:
        return self.buf[: self.n]


class PlateTokens:
    """The distinct plates of an extract so far and their HMAC digests, in append-only buffers.

    Found again by their 64-bit hash (``xforce.hashing``) in sorted arrays, a large run plus a
    small recent one merged in when it reaches an eighth of it, so a batch costs its own size;
    a hash match is confirmed on the plate itself, so a collision costs one more HMAC, never a
    wrong token. ``take_new_pairs`` hands out the pairs added since it was last called (the
    pipeline writes them to the token map every ``MAP_FLUSH_PLATES`` new plates and at the end of
    a file).

    ``limit`` bounds memory (about 70 bytes a plate: 70 MB). Once that many plates are held, the
    cache keeps the plates found again most often (at most ``KEEP`` of the limit: the vehicles
    that pass cameras all night) and drops the rest, so a busy night does not HMAC its regular
    vehicles over again after each fill.
    """

    KEEP = 0.7

    def __init__(self, key: bytes, limit: int = 1_000_000) -> None:
        self.key, self.limit = key, limit
        self._start(pa.array([], pa.string()), np.empty(0, dtype=np.uint8), np.empty(0, dtype=np.uint64))

    def _start(self, plates: pa.Array, digests: np.ndarray, hashes: np.ndarray) -> None:
        """Hold exactly these plates (already handed out), with their digests and hashes."""
        room = self.limit + (1 << 17)  # the limit, and one batch of new plates past it
        self._chars = _Appendable(np.uint8, room * 8)
        self._offsets = _Appendable(np.int32, room + 1, np.zeros(1, dtype=np.int32))
        self._digests = _Appendable(np.uint8, room * 32)
        self._hashes = _Appendable(np.uint64, room)
        self._hits = _Appendable(np.uint32, room)  # per plate: times found again since it was added
        self._append(plates, digests, hashes)
        self.taken = len(hashes)  # plates already handed out by take_new_pairs
        order = stable_order(hashes)
        self._main = hashes[order], order.astype(np.int64)
        self._recent = self._main[0][:0], self._main[1][:0]

    def _append(self, plates: pa.Array, digests: np.ndarray, hashes: np.ndarray) -> None:
        if not len(plates):
            return
        offsets = np.frombuffer(plates.buffers()[1], dtype=np.int32)[plates.offset : plates.offset + len(plates) + 1]
        chars = plates.buffers()[2]
        if chars is not None:
            self._chars.append(np.frombuffer(chars, dtype=np.uint8)[offsets[0] : offsets[-1]])
        self._offsets.append(offsets[1:] - offsets[0] + self._offsets.view()[-1])
        self._digests.append(digests)
        self._hashes.append(hashes)
        self._hits.append(np.zeros(len(hashes), dtype=np.uint32))

    def __len__(self) -> int:
        return self._hashes.n

    @property
    def plates(self) -> pa.Array:
        """The plates held, in the order they were added (a view: no copy)."""
        offsets = self._offsets.view()
        return pa.Array.from_buffers(
            pa.string(), len(self), [None, pa.py_buffer(offsets), pa.py_buffer(self._chars.view()[: offsets[-1]])]
        )

    @property
    def digests(self) -> pa.Array:
        """Their HMAC digests (32-byte binaries, a view)."""
        return pa.Array.from_buffers(DIGEST, len(self), [None, pa.py_buffer(self._digests.view())])

    def _find(self, hashes: np.ndarray) -> np.ndarray:
        pos = np.full(len(hashes), -1, dtype=np.int64)
        for keys, payload in (self._main, self._recent):
            at = lookup_sorted(hashes, keys)
            pos = np.where(at >= 0, payload[np.maximum(at, 0)] if len(payload) else -1, pos)
        return pos

    def _index(self, hashes: np.ndarray, positions: np.ndarray) -> None:
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
        encoded = pc.dictionary_encode(plates.cast(pa.string()))
        distinct = encoded.dictionary  # no null in it
        hashes = hash64(distinct)
        order = stable_order(hashes)
        pos = np.empty(len(distinct), dtype=np.int64)
        pos[order] = self._find(hashes[order])
        if len(self):  # confirm each hash match on the plate itself
            found = np.flatnonzero(pos >= 0)
            same = pc.equal(pc.take(self.plates, pa.array(pos[found])), distinct.take(pa.array(found)))
            pos[found[~same.to_numpy(zero_copy_only=False)]] = -1
        missing = pos < 0
        self._hits.view()[pos[~missing]] += 1  # distinct plates: each position once
        fresh = distinct.filter(pa.array(missing))
        fresh_digests = _digests(fresh, self.key)
        known = pa.array(np.where(missing, 0, pos), mask=missing)
        digests = pc.replace_with_mask(pc.take(self.digests, known), pa.array(missing), fresh_digests)
        if len(fresh):
            start = len(self)
            self._append(fresh, np.frombuffer(fresh_digests.buffers()[1], dtype=np.uint8), hashes[missing])
            self._index(hashes[missing], np.arange(start, start + len(fresh), dtype=np.int64))
        # hex per row from the digests taken per row: a take of fixed 32-byte values and one table
        # lookup a byte, cheaper than taking 64-character strings
        return to_hex(pc.take(digests, encoded.indices))

    @property
    def full(self) -> bool:
        return len(self) >= self.limit

    @property
    def pending(self) -> int:
        """Plates tokenised but not yet handed out by ``take_new_pairs``."""
        return len(self) - self.taken

    def take_new_pairs(self) -> tuple[pa.Array, pa.Array]:
        """(plates, hex tokens) tokenised since the last call. When the cache is full it keeps only
        the plates found again most often (those pairs have been handed out already)."""
        # copies of the new pairs only, so that a restart below frees the buffers
        pairs = pa.concat_arrays([self.plates[self.taken :]]), to_hex(self.digests[self.taken :])
        self.taken = len(self)
        if self.full:
            again = np.flatnonzero(self._hits.view())
            most = int(self.limit * self.KEEP)
            if len(again) > most:
                again = again[np.argpartition(self._hits.view()[again], len(again) - most)[len(again) - most :]]
            again.sort()  # in the order they were added
            digests = self._digests.view().reshape(-1, 32)[again].ravel()
            self._start(self.plates.take(pa.array(again)), digests, self._hashes.view()[again])
        return pairs


# ------------------------------------------------------------------------------ one key per version
def key_fingerprint(key: bytes) -> str:
    """The key's public name: the first 16 hex characters of ``HMAC-SHA256(key, "xforce key fingerprint v1")``.

    Says whether two keys are the same without revealing either (it is no plate's token: the
    message is not a normalised plate)."""
    return hmac.new(key, FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()[:FINGERPRINT_CHARS]


_CLAIMED: weakref.WeakKeyDictionary[Ledger, set[tuple[str, str]]] = weakref.WeakKeyDictionary()
_CLAIM_LOCK = threading.Lock()


def claim_key_version(ledger: Ledger, version: str, key: bytes) -> str:
    """The key's fingerprint, recorded in the ledger for ``version`` on its first use; a different key
    under a version the ledger knows is refused (:class:`~xforce.errors.KeyMismatchError`).

    A version label names one key for ever: under another key the same plates get other tokens, and
    nights stop joining without anyone noticing. Asked of the ledger once per process per ledger,
    version and key."""
    check_key_version(version)
    fingerprint = key_fingerprint(key)
    with _CLAIM_LOCK:
        if (version, fingerprint) in _CLAIMED.get(ledger, ()):
            return fingerprint
    known = ledger.claim_key_version(version, fingerprint)
    if known["fingerprint"] != fingerprint:
        raise KeyMismatchError(
            f"the configured key (fingerprint {fingerprint}) is not the key of version {version!r} "
            f"(fingerprint {known['fingerprint']}, first used {known['first_seen_at']} UTC): tokens under one "
            f"version must come from one key. Configure the key of {version!r} again, or give the new key a new "
            f"version (XFORCE_HMAC_KEY_VERSION={_next_version(version)}, or the Connection's extra) and run "
            "`xforce rotate-key`"
        )
    with _CLAIM_LOCK:
        _CLAIMED.setdefault(ledger, set()).add((version, fingerprint))
    return fingerprint


def _next_version(version: str) -> str:
    m = re.fullmatch(r"(.*?)(\d+)", version)
    return f"{m.group(1)}{int(m.group(2)) + 1}" if m else f"{version}-2"
