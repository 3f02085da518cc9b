"""Pseudonymised plates: the restricted token->plate map, audited re-identification and key rotation.

The token->plate map is the only place outside the raw and landing zones where a clear plate is
stored. It lives in the *restricted* zone (``XFORCE_RESTRICTED_URI``), a few Parquet files per
extract file, partitioned like the data it belongs to so that retention removes it together
with the partition::

    <restricted>/token_map/key_version=<v>/dataset=<d>/date=<night>/force=<f>/<raw sha16>-<tokens sha16>.parquet

Columns: ``token``, ``plate`` (normalised), ``key_version``. File names are derived from the
tokens (never from the plates), so an identical re-run writes the same file again and nothing
accumulates. See ``docs/privacy.md`` for the procedures built on this module.
"""

from __future__ import annotations

import getpass
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from xforce.errors import KeyMismatchError, ReidentificationRefused, VolatileLedgerError, XforceError
from xforce.privacy.tokens import claim_key_version, tokenise
from xforce.redaction import describe
from xforce.schemas import DATASETS, TOKEN_COLUMN
from xforce.store import layout
from xforce.store.connections import open_zone
from xforce.store.layout import TOKEN_MAP, check_key_version, map_dir, raw_partition
from xforce.store.ledger import volatility
from xforce.store.zones import PARQUET_OPTIONS, Zone, safe_relpath

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    import pyarrow.dataset as pads

    from xforce.store.ledger import Ledger

MAP_SCHEMA = pa.schema(
    [
        pa.field("token", pa.string(), nullable=False),
        pa.field("plate", pa.string(), nullable=False),
        pa.field("key_version", pa.string(), nullable=False),
    ]
)
_TOKEN = re.compile(r"^[0-9a-f]{64}$")

#: Outcomes of a re-identification request, as written to the audit table.
DISCLOSED, UNKNOWN_TOKEN, MALFORMED_TOKEN, REFUSED = "disclosed", "unknown_token", "malformed_token", "refused"
#: The token map could not be read (the error is raised after the request is audited).
LOOKUP_FAILED = "lookup_failed"
#: The fewest letters a purpose and a requester must hold once normalised (docs/privacy.md).
MIN_PURPOSE_LETTERS, MIN_REQUESTER_LETTERS = 3, 2
#: The longest purpose and requester kept (the audit table's columns).
MAX_PURPOSE_CHARS, MAX_REQUESTER_CHARS = 2000, 200


def _zone(z: Zone | str) -> Zone:
    return z if isinstance(z, Zone) else open_zone(z)


def _restricted(z: Zone | str) -> Zone:
    """The restricted zone: what it writes locally is private to the service account (0600 files, 0700 folders)."""
    zone = z if isinstance(z, Zone) else open_zone(z, private=True)
    return zone if zone.private else zone.as_private()


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **PARQUET_OPTIONS)
    return bytes(sink.getvalue().to_pybytes())


def _digest_of_values(strings: pa.Array) -> str:
    """sha256 of the values joined (as ``"".join(values)``), read straight from the Arrow buffers."""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset : strings.offset + len(strings) + 1]
    data = memoryview(strings.buffers()[2] or b"")[int(offsets[0]) : int(offsets[-1])]
    return hashlib.sha256(data).hexdigest()[:16]


def write_map(
    restricted: Zone | str,
    key_version: str,
    dataset: str,
    night: str,
    force: str,
    plates: pa.Array | pa.ChunkedArray,
    tokens: pa.Array | pa.ChunkedArray,
    tag: str = "",
) -> str | None:
    """Store the distinct (token, plate) pairs given; returns the file written (None if no plates)."""
    zone = _restricted(restricted)
    pairs = pa.table({"token": tokens, "plate": plates})
    pairs = pairs.filter(pc.and_(pc.is_valid(pairs.column("token")), pc.is_valid(pairs.column("plate"))))
    if pairs.num_rows == 0:
        return None
    # One row per token (a token is a function of the plate), in token order: same content, same bytes.
    pairs = pairs.group_by("token").aggregate([("plate", "min")]).rename_columns(["token", "plate"])
    pairs = pairs.sort_by("token")
    table = pa.table(
        {
            "token": pairs.column("token"),
            "plate": pairs.column("plate"),
            "key_version": pa.repeat(pa.scalar(key_version, pa.string()), pairs.num_rows),
        },
        schema=MAP_SCHEMA,
    )
    digest = _digest_of_values(table.column("token").combine_chunks())
    name = f"{tag[:16] or 'map'}-{digest}.parquet"
    rel = f"{map_dir(key_version, dataset, night, force)}/{safe_relpath(name)}"
    if not zone.exists(rel):
        zone.write_bytes(rel, _parquet_bytes(table))
    return rel


def remember_tokens(
    restricted: Zone | str,
    key_version: str,
    plates: pa.Array | pa.ChunkedArray,
    tokens: pa.Array | pa.ChunkedArray,
    *,
    raw_ref: str,
) -> str | None:
    """Record the token->plate pairs of plates read from the raw file ``raw_ref`` (the pipeline's hook).

    The partition (force, dataset, night) comes from the raw-zone path, so the map is filed
    beside the data it explains and expires with it.
    """
    force, dataset, night, sha = raw_partition(raw_ref)
    return write_map(restricted, key_version, dataset, night, force, plates, tokens, tag=sha[:16])


def _map_dataset(zone: Zone, rel: str) -> pads.Dataset | None:
    import pyarrow.dataset as pads  # here: every validate task imports this module, few read the map

    if not zone.is_dir(rel):
        return None
    return pads.dataset(zone.full(rel), filesystem=zone.fs, format="parquet", schema=MAP_SCHEMA)


def map_versions(restricted: Zone | str) -> list[str]:
    """Key versions that have a token map."""
    zone = _restricted(restricted)
    return [d.split("=", 1)[1] for d in zone.list_dirs(TOKEN_MAP) if d.startswith("key_version=")]


def lookup(restricted: Zone | str, token: str) -> tuple[str, str] | None:
    """(plate, key_version) of a token, or None. No audit: call :func:`reidentify` for people."""
    zone = _restricted(restricted)
    data = _map_dataset(zone, TOKEN_MAP)
    if data is None:
        return None
    hit = data.to_table(filter=pc.field("token") == token, columns=["plate", "key_version"])
    if hit.num_rows == 0:
        return None
    return str(hit.column("plate")[0].as_py()), str(hit.column("key_version")[0].as_py())


def _load_map(zone: Zone, rel: str, tokens: Iterable[str] | None = None) -> dict[str, str]:
    data = _map_dataset(zone, rel)
    if data is None:
        return {}
    flt = None
    if tokens is not None:
        flt = pc.field("token").isin(pa.array(sorted(set(tokens)), pa.string()))
    t = data.to_table(filter=flt, columns=["token", "plate"])
    return dict(zip(t.column("token").to_pylist(), t.column("plate").to_pylist(), strict=True))


# ------------------------------------------------------------------------- re-identification
@dataclass(frozen=True)
class Disclosure:
    token: str
    plate: str
    key_version: str
    audit_id: str


def normalise_text(text: str | None) -> str:
    """``text`` as audited: NFKC; control characters become spaces; format characters (zero-width
    spaces and joiners, direction marks, soft hyphens: Unicode category Cf) are removed; runs of
    white space become one space; none at the ends."""
    out = []
    for ch in unicodedata.normalize("NFKC", text or ""):
        category = unicodedata.category(ch)
        if category == "Cf":
            continue
        out.append(" " if category in ("Cc", "Zl", "Zp") or ch.isspace() else ch)
    return " ".join("".join(out).split())


def _letters(text: str) -> int:
    return sum(1 for ch in text if unicodedata.category(ch).startswith("L"))


def _refusal(purpose: str, requested_by: str) -> str | None:
    """Why the normalised purpose or requester is refused, or None."""
    for what, value, least, most in (
        ("the purpose (--purpose)", purpose, MIN_PURPOSE_LETTERS, MAX_PURPOSE_CHARS),
        ("the name of the person asking (--requested-by)", requested_by, MIN_REQUESTER_LETTERS, MAX_REQUESTER_CHARS),
    ):
        if _letters(value) < least:
            return (
                f"{what} must hold at least {least} letters once invisible characters are removed ({describe(value)})"
            )
        if len(value) > most:
            return f"{what} is longer than {most} characters ({describe(value)})"
    return None


def check_durable(ledger: Ledger) -> None:
    """Refuse a ledger whose audit rows would vanish (:func:`xforce.store.ledger.volatility`)."""
    why = volatility(ledger.url)
    if why:
        raise VolatileLedgerError(
            f"re-identification refused: the ledger (XFORCE_LEDGER_URL) is {why}, so its audit would not last; "
            "use PostgreSQL or a SQLite file on persistent storage"
        )


def reidentify(restricted: Zone | str, ledger: Ledger, token: str, *, purpose: str, requested_by: str) -> Disclosure:
    """The plate behind a token, for a stated purpose. Every request is audited, refused ones too.

    In this order: a ledger that would not last is refused (:class:`VolatileLedgerError`, nothing
    audited: there is nowhere lasting to audit it); purpose and requester are normalised
    (:func:`normalise_text`) and refused with too few letters (:class:`ReidentificationRefused`,
    audited); then the map is read. The audit row of the outcome is committed before the plate is
    returned (no audit, no plate); a map that cannot be read is audited as ``lookup_failed``.
    """
    check_durable(ledger)
    purpose, requested_by = normalise_text(purpose), normalise_text(requested_by)
    given = (token or "").strip().lower()
    # Only a well-formed token is stored: a clear plate typed by mistake must not land in the ledger.
    stored = given if _TOKEN.match(given) else None
    os_user = _os_user()
    if why := _refusal(purpose, requested_by):
        ledger.audit_reidentification(
            requested_by=requested_by[:MAX_REQUESTER_CHARS],
            os_user=os_user,
            purpose=purpose[:MAX_PURPOSE_CHARS],
            token=stored,
            outcome=REFUSED,
        )
        raise ReidentificationRefused(f"re-identification refused: {why}; the refusal is audited")
    if stored is None:
        ledger.audit_reidentification(
            requested_by=requested_by, os_user=os_user, purpose=purpose, token=None, outcome=MALFORMED_TOKEN
        )
        raise XforceError("not a plate token (64 lower-case hex characters); the request is audited")
    try:
        hit = lookup(restricted, stored)
    except Exception:
        ledger.audit_reidentification(
            requested_by=requested_by, os_user=os_user, purpose=purpose, token=stored, outcome=LOOKUP_FAILED
        )
        raise
    if hit is None:
        ledger.audit_reidentification(
            requested_by=requested_by, os_user=os_user, purpose=purpose, token=stored, outcome=UNKNOWN_TOKEN
        )
        raise XforceError(
            f"unknown token {stored}: not in the token map of any key version "
            "(never issued, expired under retention, or issued under a retired key); the request is audited"
        )
    plate, version = hit
    audit_id = ledger.audit_reidentification(
        requested_by=requested_by,
        os_user=os_user,
        purpose=purpose,
        token=stored,
        outcome=DISCLOSED,
        key_version=version,
    )
    return Disclosure(stored, plate, version, audit_id)


def _os_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return None


# ------------------------------------------------------------------------------ key rotation
@dataclass
class RotationReport:
    new_version: str
    partitions: list[dict[str, Any]] = field(default_factory=list)  # rewritten ones
    skipped: int = 0  # already at the new version, or without tokens
    failed: list[dict[str, Any]] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)  # old key versions whose map was deleted


def _token_partitions(zone: Zone, dataset: str) -> list[tuple[str, str, str]]:
    out = []
    for day in zone.list_dirs(layout.dataset_dir(dataset)):
        if (night := layout.night_of(day)) is None:
            continue
        for folder in zone.list_dirs(layout.night_dir(dataset, night)):
            force = folder.removeprefix("force=")
            if folder.startswith("force=") and zone.exists(rel := layout.part_file(dataset, night, force)):
                out.append((night, force, rel))
    return out


def check_key(restricted: Zone | str, key_version: str, key: bytes) -> None:
    """Refuse a key that does not produce the tokens already filed under its version label.

    A version label must name exactly one key: two keys under one label would make equal
    plates look different (and different plates look unrelated) without anyone noticing.
    """
    zone = _restricted(restricted)
    data = _map_dataset(zone, map_dir(key_version))
    if data is None:
        return
    sample = data.head(1, columns=["token", "plate"])
    if sample.num_rows and tokenise(sample.column("plate"), key)[0].as_py() != sample.column("token")[0].as_py():
        raise KeyMismatchError(
            f"the configured key is not the key of version {key_version!r}: "
            "give a new key a new version (XFORCE_HMAC_KEY_VERSION or the Connection's extra)"
        )


def rotate_key(
    zones: Mapping[str, Zone | str],
    ledger: Ledger,
    *,
    new_version: str,
    new_key: bytes,
    retire_old: bool = True,
) -> RotationReport:
    """Re-tokenise every curated and quarantine partition not yet under ``new_version``.

    ``zones`` names the ``curated``, ``quarantine`` and ``restricted`` zones. Old tokens are
    turned back into plates with the restricted map of their version, then HMAC'd with the new
    key; the partition file is replaced in one step and the new map is written first. Rows,
    verdicts and record ids are untouched. Resumable: partitions already at ``new_version`` are
    skipped. When every partition succeeded and ``retire_old``, the maps of the old versions are
    deleted, after which old tokens cannot be re-identified any more.
    """
    check_key_version(new_version)
    restricted = _restricted(zones["restricted"])
    check_key(restricted, new_version, new_key)
    claim_key_version(ledger, new_version, new_key)  # the new version's fingerprint, before any token
    report = RotationReport(new_version)
    old_versions: set[str] = set()
    for zone_name in ("curated", "quarantine"):
        zone = _zone(zones[zone_name])
        for dataset in DATASETS:
            col = TOKEN_COLUMN[dataset]
            for night, force, rel in _token_partitions(zone, dataset):
                table = zone.read_parquet(rel)
                if col not in table.column_names or "plate_key_version" not in table.column_names:
                    report.skipped += 1
                    continue
                versions = {v for v in pc.unique(table.column("plate_key_version")).to_pylist() if v is not None}
                stale = sorted(versions - {new_version})
                if not stale:
                    report.skipped += 1
                    continue
                old_versions.update(stale)
                tokens = table.column(col).combine_chunks()
                needed = set(pc.unique(tokens).drop_null().to_pylist())
                known: dict[str, str] = {}
                for v in stale:
                    known.update(_load_map(restricted, map_dir(v, dataset, night, force), needed))
                    if needed - known.keys():  # filed elsewhere (should not happen): search the whole version
                        known.update(_load_map(restricted, map_dir(v), needed - known.keys()))
                stale_rows = pc.is_in(table.column("plate_key_version"), value_set=pa.array(stale, pa.string()))
                stale_tokens = set(pc.unique(tokens.filter(stale_rows)).drop_null().to_pylist())
                unknown = stale_tokens - known.keys()
                if unknown:
                    report.failed.append(
                        {"zone": zone_name, "path": rel, "error": f"{len(unknown)} token(s) not in the map of {stale}"}
                    )
                    continue
                plates = pa.array([known.get(t) for t in tokens.to_pylist()], pa.string())
                fresh = tokenise(plates, new_key)
                keep = pc.fill_null(pc.invert(stale_rows), True)
                new_tokens = pc.if_else(keep, tokens, fresh)
                new_versions = pc.if_else(pc.is_valid(new_tokens), pa.scalar(new_version), pa.scalar(None, pa.string()))
                write_map(
                    restricted, new_version, dataset, night, force, plates.filter(stale_rows), fresh.filter(stale_rows)
                )
                table = table.set_column(table.schema.get_field_index(col), table.schema.field(col), new_tokens)
                i = table.schema.get_field_index("plate_key_version")
                table = table.set_column(i, table.schema.field(i), new_versions)
                zone.write_bytes(rel, _parquet_bytes(table))
                entry = {"zone": zone_name, "path": rel, "rows": table.num_rows, "from": stale, "to": new_version}
                report.partitions.append(entry)
                ledger.event("key_rotated", night=night, force=force, dataset=dataset, detail=entry)
    if retire_old and not report.failed:
        for v in sorted(set(map_versions(restricted)) - {new_version}):
            restricted.delete_dir(map_dir(v))
            report.retired.append(v)
            ledger.event("key_version_retired", detail={"key_version": v, "map": map_dir(v)})
    return report
