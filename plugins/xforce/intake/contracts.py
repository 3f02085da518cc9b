"""The force registry and the per-family contracts: the one way to read a contract.

Configuration is data (``config/forces.yaml``, ``config/contracts/*.yaml``); this module only
parses and checks it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xforce.errors import ConfigError
from xforce.schemas import DATASETS

#: Canonical input fields a contract may map, and which of them a dataset requires.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "incidents": ("source_id", "timestamp", "offence"),
    "anpr_reads": ("source_id", "timestamp", "camera_id", "plate"),
    "seizures": ("source_id", "incident_ref", "timestamp", "item_type"),
}

#: What a contract may say about a time whose seconds are 60 (``timestamp.leap_second``).
LEAP_SECOND_POLICIES = ("refuse", "clamp")


@dataclass(frozen=True)
class Region:
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float


@dataclass(frozen=True)
class DatasetContract:
    """How one family delivers one dataset."""

    family: str
    dataset: str
    format: str  # csv | jsonl
    encoding: str
    delimiter: str
    compression: str | None
    file: str | None
    fields: dict[str, str]  # canonical field -> source column or dotted JSON path
    optional: frozenset[str]
    header: tuple[str, ...] | None
    timestamp_format: str
    timezone: str
    time_precision: str
    ambiguous: str
    nonexistent: str
    crs: str
    location_precision: str
    night_tolerance_hours: float
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    #: a time whose seconds are 60: ``refuse`` (the row is ``impossible_timestamp``) or ``clamp``
    #: (read as 59.999999 seconds, the last instant of its minute)
    leap_second: str = "refuse"

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f for f in REQUIRED_FIELDS[self.dataset] if f not in self.optional)


@dataclass(frozen=True)
class Force:
    code: str
    name: str
    family: str


@dataclass(frozen=True)
class IntakeLimits:
    """Caps applied to every extract (``intake:`` in forces.yaml)."""

    max_file_bytes: int = 8 << 30
    max_decompressed_bytes: int = 32 << 30
    max_compression_ratio: float = 200.0
    max_record_bytes: int = 1 << 20
    #: a landing file written less than this many seconds ago may still be uploading: taken later
    settle_seconds: int = 60
    max_field_chars: int = 4096
    #: extracts validated at once on a deployment (the Airflow pool ``xforce_validate``): each holds a
    #: Great Expectations worker and a batch in memory
    validate_slots: int = 2


@dataclass(frozen=True)
class Registry:
    timezone: str
    region: Region
    forces: dict[str, Force]
    contracts: dict[tuple[str, str], DatasetContract]  # (family, dataset) -> contract
    intake: IntakeLimits = field(default_factory=IntakeLimits)

    def force(self, code: str) -> Force:
        try:
            return self.forces[code]
        except KeyError:
            raise ConfigError(f"unknown force {code!r}; known: {', '.join(self.forces)}") from None

    def contract(self, force: str, dataset: str) -> DatasetContract:
        if dataset not in DATASETS:
            raise ConfigError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
        return self.contracts[(self.force(force).family, dataset)]

    def police_uk(self) -> DatasetContract:
        return self.contracts[("police_uk", "incidents")]


def _contract(family: str, dataset: str, doc: dict[str, Any], spec: dict[str, Any]) -> DatasetContract:
    ts = doc.get("timestamp") or {}
    coords = doc.get("coordinates") or {}
    fields = {str(k): str(v) for k, v in (spec.get("fields") or {}).items()}
    optional = frozenset(spec.get("optional") or ())
    missing = [f for f in REQUIRED_FIELDS[dataset] if f not in fields and f not in optional]
    if missing:
        raise ConfigError(f"contract {family}/{dataset} maps no source for required field(s) {missing}")
    if ("lat" in fields) == ("x" in fields) and ("lat" in fields or "x" in fields):
        raise ConfigError(f"contract {family}/{dataset} must map either lat/lon or x/y, not both")
    codes = {k: {str(a): str(b) for a, b in v.items()} for k, v in (doc.get("codes") or {}).items()}
    leap_second = str(ts.get("leap_second", "refuse"))
    if leap_second not in LEAP_SECOND_POLICIES:
        raise ConfigError(
            f"contract {family}/{dataset}: timestamp.leap_second must be one of "
            f"{', '.join(LEAP_SECOND_POLICIES)}, not {leap_second!r}"
        )
    header = doc.get("header")
    return DatasetContract(
        family=family,
        dataset=dataset,
        format=str(doc["format"]),
        encoding=str(doc.get("encoding", "utf-8")),
        delimiter=str(doc.get("delimiter", ",")),
        compression=doc.get("compression"),
        file=spec.get("file"),
        fields=fields,
        optional=optional,
        header=tuple(header) if header else None,
        timestamp_format=str(ts.get("format", "iso8601")),
        timezone=str(ts.get("timezone", "UTC")),
        time_precision=str(ts.get("precision", "exact")),
        ambiguous=str(ts.get("ambiguous", "earliest")),
        nonexistent=str(ts.get("nonexistent", "shift_forward")),
        crs=str(coords.get("crs", "EPSG:4326")),
        location_precision=str(coords.get("precision", "exact")),
        night_tolerance_hours=float(doc.get("night_tolerance_hours", 2)),
        codes=codes,
        leap_second=leap_second,
    )


def read_yaml(path: Path, what: str = "") -> dict[str, Any]:
    """One configuration file as a mapping (empty file: ``{}``); unreadable -> ``ConfigError``."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {what + ' ' if what else ''}{path}: {exc}") from exc
    return dict(doc)


@functools.lru_cache(maxsize=8)
def load_registry(config_dir: str) -> Registry:
    """Read ``forces.yaml`` and every contract under ``contracts/``, checking them as it goes."""
    root = Path(config_dir)
    doc = read_yaml(root / "forces.yaml", "force registry")
    contracts: dict[tuple[str, str], DatasetContract] = {}
    for path in sorted((root / "contracts").glob("*.yaml")):
        cdoc = yaml.safe_load(path.read_text(encoding="utf-8"))
        family = str(cdoc.get("family") or path.stem)
        for dataset, spec in (cdoc.get("datasets") or {}).items():
            if dataset not in DATASETS:
                raise ConfigError(f"{path.name}: unknown dataset {dataset!r}")
            contracts[(family, dataset)] = _contract(family, dataset, cdoc, spec)
    forces = {
        str(code): Force(code=str(code), name=str(f["name"]), family=str(f["family"]))
        for code, f in (doc.get("forces") or {}).items()
    }
    for force in forces.values():
        for dataset in DATASETS:
            if (force.family, dataset) not in contracts:
                raise ConfigError(f"force {force.code}: family {force.family!r} has no {dataset} contract")
    r = doc["region"]
    region = Region(float(r["lat_min"]), float(r["lat_max"]), float(r["lon_min"]), float(r["lon_max"]))
    limits = doc.get("intake") or {}
    unknown = set(limits) - set(IntakeLimits.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"forces.yaml intake: unknown limit(s) {sorted(unknown)}")
    intake = IntakeLimits(**{k: type(getattr(IntakeLimits(), k))(v) for k, v in limits.items()})
    return Registry(
        timezone=str(doc.get("timezone", "Europe/London")),
        region=region,
        forces=forces,
        contracts=contracts,
        intake=intake,
    )
