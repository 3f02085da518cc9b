"""Every path inside the zones, in one place: the layout readers and retention rely on.

=============  ========================================================================
zone           layout
=============  ========================================================================
landing        ``<force>/<dataset>/<night>/<file>`` (or a force's own location: ``<dataset>/<night>/``)
raw            ``<force>/<dataset>/<night>/<sha256>/<file>`` (immutable, one folder per content)
staging        ``<run key>/{published,quarantine}/dataset=<d>/date=<night>/force=<f>/part-0.parquet``
curated        ``dataset=<d>/date=<night>/force=<f>/part-0.parquet`` and ``dataset=<d>/date=<night>/_manifest.json``
quarantine     ``dataset=<d>/date=<night>/force=<f>/{part-0.parquet,_extract_error.json}``
restricted     ``token_map/key_version=<v>/dataset=<d>/date=<night>/force=<f>/<file>``
docs           ``validation/date=<night>/{<force>/<dataset>.json,index.html}`` and ``validation/index.html``
reports        ``<report>/date=<night>/part-0.parquet`` and ``html/<night>.html``
=============  ========================================================================

Functions return zone-relative, ``/``-separated paths checked by :func:`safe_relpath`. Nothing
here touches storage.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date

from xforce.errors import XforceError
from xforce.schemas import DATASETS
from xforce.store.zones import safe_relpath

PART_FILE = "part-0.parquet"
MANIFEST = "_manifest.json"
EXTRACT_ERROR = "_extract_error.json"
TOKEN_MAP = "token_map"
#: The two halves of an extract's split, as staged and as published.
STAGED_KINDS = ("published", "quarantine")

#: File names accepted in landing (anything else is refused, dot files ignored).
SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


# ---------------------------------------------------------------- curated and quarantine (Hive)
def dataset_dir(dataset: str) -> str:
    """``dataset=<d>``: the folder a Hive-partitioned reader opens."""
    return f"dataset={dataset}"


def night_dir(dataset: str, night: str) -> str:
    """``dataset=<d>/date=<night>``: every force of one night (and the night's manifest)."""
    return f"dataset={dataset}/date={night}"


def partition(dataset: str, night: str, force: str) -> str:
    """``dataset=<d>/date=<night>/force=<f>``: one force's extract of one night."""
    return f"dataset={dataset}/date={night}/force={force}"


def part_file(dataset: str, night: str, force: str) -> str:
    """The one Parquet file of a partition (replaced whole when the night is re-published)."""
    return f"{partition(dataset, night, force)}/{PART_FILE}"


def manifest(dataset: str, night: str) -> str:
    return f"{night_dir(dataset, night)}/{MANIFEST}"


def extract_error(dataset: str, night: str, force: str) -> str:
    """Why a whole extract was refused (quarantine zone)."""
    return f"{partition(dataset, night, force)}/{EXTRACT_ERROR}"


def night_of(folder: str) -> str | None:
    """``date=<night>`` -> ``<night>`` (None for anything else)."""
    return folder[5:] if folder.startswith("date=") else None


# ------------------------------------------------------------------------------------ staging
def run_key(run_id: str) -> str:
    """A path-safe, stable folder name for a run id."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", run_id)[:60]
    return f"{slug}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def staged(run_id: str, kind: str, dataset: str, night: str, force: str) -> str:
    """Where a run stages one half (``published`` or ``quarantine``) of an extract's split."""
    if kind not in STAGED_KINDS:
        raise ValueError(f"staged kind must be one of {STAGED_KINDS}, not {kind!r}")
    return f"{run_key(run_id)}/{kind}/{part_file(dataset, night, force)}"


# --------------------------------------------------------------------------------- landing, raw
def deliveries_dir(base: str, dataset: str) -> str:
    """The folder of a dataset's nights in landing (one sub-folder per night)."""
    return safe_relpath(base, dataset)


def delivery_dir(base: str, dataset: str, night: str) -> str:
    """A night's delivery folder in landing; ``base`` is the force's folder ('' at its own location)."""
    return safe_relpath(base, dataset, night)


def raw_dir(force: str, dataset: str, night: str) -> str:
    return safe_relpath(force, dataset, night)


def raw_file(force: str, dataset: str, night: str, sha256: str, name: str) -> str:
    """The immutable raw copy of a delivered file, filed under its content's SHA-256."""
    return safe_relpath(force, dataset, night, sha256, name)


def raw_partition(raw_ref: str) -> tuple[str, str, str, str]:
    """``<force>/<dataset>/<night>/<sha256>/<file>`` (a raw-zone path) -> force, dataset, night, sha256."""
    parts = safe_relpath(raw_ref).split("/")
    if len(parts) < 5 or parts[1] not in DATASETS:
        raise XforceError(f"not a raw-zone file reference: {raw_ref!r}")
    date.fromisoformat(parts[2])  # raises ValueError on a non-date
    return parts[0], parts[1], parts[2], parts[3]


# --------------------------------------------------------------------------------- restricted
def check_key_version(key_version: str) -> str:
    if not _VERSION.match(key_version or ""):
        raise XforceError(f"key version {key_version!r} must be 1-32 characters of A-Z a-z 0-9 . _ -")
    return key_version


def map_dir(key_version: str, dataset: str | None = None, night: str | None = None, force: str | None = None) -> str:
    """Folder of the token map for a key version (and optionally one partition)."""
    parts = [TOKEN_MAP, f"key_version={check_key_version(key_version)}"]
    if dataset is not None:
        parts.append(f"dataset={dataset}")
        if night is not None:
            parts.append(f"date={night}")
            if force is not None:
                parts.append(f"force={force}")
    return safe_relpath(*parts)


# --------------------------------------------------------------------------------- Data Docs
VALIDATION = "validation"


def validation_results(night: str, force: str, dataset: str) -> str:
    """One extract's validation results (counts, expectation names, row ids)."""
    return f"{VALIDATION}/date={night}/{force}/{dataset}.json"


def validation_page(night: str) -> str:
    """A night's Data Docs page."""
    return f"{VALIDATION}/date={night}/index.html"


VALIDATION_INDEX = f"{VALIDATION}/index.html"


# ------------------------------------------------------------------------------------ reports
def report_file(name: str, night: str) -> str:
    """One report's table for a night."""
    return f"{name}/date={night}/{PART_FILE}"


def report_page(night: str) -> str:
    return f"html/{night}.html"
