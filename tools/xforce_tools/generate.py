"""Synthetic nightly extracts in each force's native format, with a ground-truth file.

The generator plays the part of the seven forces' own systems: for a night ``D`` (local day
``D 00:00`` to ``D+1 00:00`` Europe/London) it writes, per force and dataset,
``<out_dir>/<force>/<dataset>/<YYYY-MM-DD>/<file>`` exactly as described in
``docs/extract-formats.md`` (three families: ``shared_csv``, ``eastern_jsonl``, ``southern_bng``).
The formats are encoded here on purpose - the generator never reads the hub's config.

Ground truth
    ``<out_dir>/_truth.json`` maps ``force -> dataset -> {"records": N, "defective": {id: kind},
    "night": "YYYY-MM-DD"}``. ``records`` is the number of data rows written (header excluded,
    re-sent copies included); ``defective`` names every record id the hub must quarantine.
    An existing truth file is merged (entries of the same night for other force/dataset pairs
    are kept; entries of another night are dropped), so subset runs do not erase each other.
    With ``plant_crossing_vehicle`` the file also has ``"_planted"`` (the planted vehicle, its
    decoys and their clear plates); keys starting with ``_`` are never forces.

Defects (``DEFECT_KINDS``), each injected at ``defect_rate`` per applicable kind and, when the
rate is positive, at least once per extract of 10 records or more. A record carries at most one
defect:

* ``bad_plate`` - an impossible registration (``12345678901``, ``AB-12-CDE-FG!``...), never empty;
  ANPR reads, vehicle seizures and incidents that carry a plate.
* ``out_of_region`` - coordinates far from the East of England (Edinburgh, Cardiff, or
  latitude/longitude - easting/northing for BNG - swapped).
* ``impossible_timestamp`` - the record's time moved to 1970 or 2099 (epoch 0 for JSON Lines)
  or, for ``southern_bng``, an invalid calendar date such as ``31/02/2026 10:00:00``.
* ``missing_required`` - a required field other than the id left empty, null or (JSON Lines)
  omitted: plate, time or camera for ANPR; time or offence for incidents; time or item type
  for seizures.
* ``duplicate_id`` - a re-send: a later row repeating an earlier clean row byte for byte.
  The first occurrence is good; the truth lists the id so its later copies get quarantined.
* ``unknown_incident`` - seizures only: a reference to an incident id that does not exist.

Valid-but-tricky records are mixed in too: plates with a space or in lower case, JSON objects
with their keys in another order, local times in the repeated October hour (written as the
clock shows them) and, on a spring-forward night, a ``southern_bng`` time inside the missing
hour that means the same instant once shifted forward by the gap.

Determinism: every extract draws from its own ``numpy`` generator seeded with
``(seed, force, dataset, night)`` (ANPR: also the 1M-row chunk number), the vehicle and camera
pools from ``(seed, force)`` only (so vehicles recur across nights), gzip is written with
``mtime=0`` and no file name, and JSON is written with sorted keys. Same arguments, same bytes;
a subset run writes the same files as a full run. Seizures reference the force's incidents, so
a seizures-only run regenerates (without writing) the incidents for the same ``incidents`` and
``defect_rate`` arguments.

Arrival times: extracts land on the morning after the night, as the forces' systems deliver them:
each one gets an arrival time (its files' modification time, and ``arrives_at`` / ``late`` in its
truth entry), before the hub's default cut-off (``CUTOFF_LOCAL``, 02:00 Europe/London, as in
``config/quality.yaml``) except for a share ``late_rate`` (``LATE_RATE`` by default) that arrive
5 minutes to 4 hours after it. The rate and the cut-off are recorded under ``"_arrivals"`` in the
truth file. Drawn from ``(seed, force, dataset, night)``: same arguments, same times.

ANPR reads are built column-wise with numpy/pyarrow compute in chunks of ``CHUNK_ROWS`` rows,
so tens of millions of reads per force are practical.
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import io
import json
import os
import pathlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pyproj import Transformer

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "CHUNK_ROWS",
    "CUTOFF_LOCAL",
    "DATASETS",
    "DEFECT_KINDS",
    "FAMILIES",
    "FORCES",
    "FORCE_CENTRE",
    "FORCE_FAMILY",
    "LATE_RATE",
    "TRUTH_FILE",
    "applicable_defects",
    "arrival_time",
    "extract_path",
    "file_name",
    "generate_night",
    "night_window",
    "write_truth",
]

FORCES = ("norfolk", "suffolk", "cambridgeshire", "bedfordshire", "hertfordshire", "essex", "kent")
DATASETS = ("incidents", "anpr_reads", "seizures")
DEFECT_KINDS = (
    "bad_plate",
    "out_of_region",
    "impossible_timestamp",
    "missing_required",
    "duplicate_id",
    "unknown_incident",
)
FAMILIES = ("shared_csv", "eastern_jsonl", "southern_bng")

FORCE_FAMILY = {
    "norfolk": "shared_csv",
    "suffolk": "shared_csv",
    "cambridgeshire": "eastern_jsonl",
    "bedfordshire": "eastern_jsonl",
    "hertfordshire": "eastern_jsonl",
    "essex": "southern_bng",
    "kent": "southern_bng",
}
FORCE_CODE = {
    "norfolk": "NFK",
    "suffolk": "SFK",
    "cambridgeshire": "CAMBS",
    "bedfordshire": "BEDS",
    "hertfordshire": "HERTS",
    "essex": "ESX",
    "kent": "KNT",
}
#: Rough centre (lat, lon) of each force area; records are placed within +-SPREAD_DEG of it.
FORCE_CENTRE = {
    "norfolk": (52.6, 1.0),
    "suffolk": (52.2, 1.0),
    "cambridgeshire": (52.4, 0.0),
    "bedfordshire": (52.05, -0.45),
    "hertfordshire": (51.8, -0.25),
    "essex": (51.75, 0.6),
    "kent": (51.2, 0.7),
}
SPREAD_DEG = 0.15
LONDON = ZoneInfo("Europe/London")
#: The hub's default cut-off, local time on the morning after the night (config/quality.yaml).
CUTOFF_LOCAL = dt.time(2, 0)
#: The share of extracts that arrive after the cut-off, by default.
LATE_RATE = 0.1
CHUNK_ROWS = 1_000_000
TRUTH_FILE = "_truth.json"
GZIP_LEVEL = 1  # speed over size: the benchmark writes tens of millions of reads

# Per-family id tags and separators: "<code><sep><tag><sep><YYYYMMDD><sep><number>".
_ID_TAG = {
    "shared_csv": {"incidents": "INC", "anpr_reads": "ANPR", "seizures": "SZ"},
    "eastern_jsonl": {"incidents": "INC", "anpr_reads": "ANPR", "seizures": "SZ"},
    "southern_bng": {"incidents": "I", "anpr_reads": "R", "seizures": "S"},
}
_ID_SEP = {"shared_csv": "-", "eastern_jsonl": "/", "southern_bng": "-"}
_ID_WIDTH = {"incidents": 6, "anpr_reads": 8, "seizures": 6}

# Code lists, in canonical order (see docs/extract-formats.md).
OFFENCES = (
    "hare_coursing",
    "poaching",
    "livestock_worrying",
    "rural_theft",
    "criminal_damage",
    "vehicle_crime",
)
_OFFENCE_CODES = {
    "shared_csv": ("HC", "POA", "LSW", "RTH", "CDA", "VEH"),
    "eastern_jsonl": ("HARE-COURSING", "POACHING", "LIVESTOCK", "THEFT-RURAL", "DAMAGE", "VEHICLE"),
    "southern_bng": (
        "Hare coursing",
        "Poaching",
        "Livestock worrying",
        "Theft (rural)",
        "Criminal damage",
        "Vehicle crime",
    ),
}
_OFFENCE_P = (0.30, 0.14, 0.10, 0.22, 0.12, 0.12)
OUTCOMES = ("under_investigation", "charged", "no_further_action", "warning_issued")
_OUTCOME_CODES = {
    "shared_csv": ("UI", "CH", "NFA", "WRN"),
    "eastern_jsonl": ("OPEN", "CHARGED", "NFA", "WARNED"),
    "southern_bng": ("Under investigation", "Charged", "No further action", "Warning"),
}
_OUTCOME_P = (0.55, 0.15, 0.20, 0.10)
_ITEM_CODES = {
    "shared_csv": ("DOG", "VEH", "EQP"),
    "eastern_jsonl": ("dog", "vehicle", "equipment"),
    "southern_bng": ("Dog", "Vehicle", "Equipment"),
}
_DOG, _VEHICLE, _EQUIPMENT = 0, 1, 2

# invalid whether a reader removes only spaces (as specified) or all punctuation
_BAD_PLATES = ("XX!!9999999", "12345678901", "AB-12-CDE-FG!", "#NOREAD#", "1A2B3C4D")
_FAR_AWAY = ((55.95, -3.19), (51.48, -3.18))  # Edinburgh, Cardiff
_LETTERS = np.frombuffer(b"ABCDEFGHJKLMNOPRSTUVWXY", dtype=np.uint8)  # no I, Q, Z
_AGE_IDS = np.array(
    [list(f"{y:02d}".encode()) for y in (*range(2, 27), *range(51, 76))], dtype=np.uint8
)  # current-format age identifiers, Mar 2002 .. Sep 2025 / Mar 2026
_N_INTEREST = 50  # vehicles of interest: incidents/seizures use them, ANPR sees them often
_N_CAMERAS = 40

# kind codes in the per-row plan: 0 = clean, i + 1 = DEFECT_KINDS[i]
_CLEAN = 0
_BAD_PLATE, _OUT_OF_REGION, _IMPOSSIBLE, _MISSING, _DUPLICATE, _UNKNOWN_INCIDENT = range(1, 7)

_APPLICABLE = {
    "incidents": ("bad_plate", "out_of_region", "impossible_timestamp", "missing_required", "duplicate_id"),
    "anpr_reads": ("bad_plate", "out_of_region", "impossible_timestamp", "missing_required", "duplicate_id"),
    "seizures": DEFECT_KINDS,
}

Cols = dict[str, Any]
"""Logical columns of an extract: numpy arrays and pyarrow arrays of equal length."""


# --------------------------------------------------------------------------------------------
# small public helpers


def file_name(force: str, dataset: str) -> str:
    """File name of ``dataset`` in ``force``'s family (``incidents.csv``, ``anpr_reads.jsonl.gz``...)."""
    return f"{dataset}.jsonl.gz" if FORCE_FAMILY[force] == "eastern_jsonl" else f"{dataset}.csv"


def extract_path(out_dir: str | pathlib.Path, force: str, dataset: str, night: dt.date) -> pathlib.Path:
    """``<out_dir>/<force>/<dataset>/<YYYY-MM-DD>/<file>``."""
    return pathlib.Path(out_dir) / force / dataset / night.isoformat() / file_name(force, dataset)


def applicable_defects(dataset: str) -> tuple[str, ...]:
    """Defect kinds the generator injects into ``dataset``."""
    return _APPLICABLE[dataset]


def night_window(night: dt.date) -> tuple[int, int]:
    """UTC epoch seconds of local ``night 00:00`` and ``night+1 00:00`` in Europe/London."""
    start = dt.datetime.combine(night, dt.time(0), tzinfo=LONDON)
    end = dt.datetime.combine(night + dt.timedelta(days=1), dt.time(0), tzinfo=LONDON)
    return int(start.timestamp()), int(end.timestamp())


# --------------------------------------------------------------------------------------------
# context and random streams


@dataclass(frozen=True)
class _Ctx:
    force: str
    night: dt.date
    seed: int
    rate: float
    anpr_reads: int
    incidents: int | None
    seizures: int | None
    plant: bool = False  # plant the crossing vehicle and its decoys (see _plant_scenario)

    @property
    def family(self) -> str:
        return FORCE_FAMILY[self.force]

    @property
    def start_ms(self) -> int:
        return night_window(self.night)[0] * 1000

    @property
    def end_ms(self) -> int:
        return night_window(self.night)[1] * 1000

    def rng(self, *stream: int) -> np.random.Generator:
        """Generator for one stream; the night is part of the key unless ``stream`` says otherwise."""
        key = [self.seed, FORCES.index(self.force), *stream]
        return np.random.default_rng(np.random.SeedSequence(key))

    def night_rng(self, dataset: str, *stream: int) -> np.random.Generator:
        return self.rng(1 + DATASETS.index(dataset), self.night.toordinal(), *stream)


# --------------------------------------------------------------------------------------------
# pools: vehicles and cameras (per seed and force, not per night)


def _plates(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` current-format plates ``AB12CDE`` as a numpy ``S7`` array."""
    arr = np.empty((n, 7), dtype=np.uint8)
    arr[:, [0, 1, 4, 5, 6]] = _LETTERS[rng.integers(0, len(_LETTERS), size=(n, 5))]
    arr[:, 2:4] = _AGE_IDS[rng.integers(0, len(_AGE_IDS), size=n)]
    return arr.view("S7").ravel()


def _interest_pool(ctx: _Ctx) -> np.ndarray:
    return _plates(ctx.rng(101), _N_INTEREST)


def _anpr_pool(ctx: _Ctx) -> np.ndarray:
    size = max(_N_INTEREST, ctx.anpr_reads // 20)
    return np.concatenate([_interest_pool(ctx), _plates(ctx.rng(102), size - _N_INTEREST)])


def _cameras(ctx: _Ctx) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    rng = ctx.rng(103)
    lat, lon = _in_area(rng, ctx.force, _N_CAMERAS)
    ids = pa.array([f"{FORCE_CODE[ctx.force]}-CAM-{i:04d}" for i in range(1, _N_CAMERAS + 1)])
    return ids, lat, lon


def _in_area(rng: np.random.Generator, force: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    clat, clon = FORCE_CENTRE[force]
    lat = clat + rng.uniform(-SPREAD_DEG, SPREAD_DEG, n)
    lon = clon + rng.uniform(-SPREAD_DEG, SPREAD_DEG, n)
    return lat, lon


def _plate_style(rng: np.random.Generator, n: int) -> np.ndarray:
    """0 plain, 1 with a space, 2 lower case, 3 both (the hub normalises all of them)."""
    u = rng.random(n)
    return np.select([u < 0.015, u < 0.03, u < 0.11], [3, 2, 1], 0).astype(np.int8)


def _render_plates(raw: np.ndarray, style: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    s = pa.array(raw, pa.binary()).cast(pa.string())
    spaced = (style & 1).astype(bool)
    if spaced.any():
        head, tail = pc.utf8_slice_codeunits(s, 0, 4), pc.utf8_slice_codeunits(s, 4)
        joined = pc.binary_join_element_wise(head, tail, " ")
        s = pc.if_else(pa.array(spaced), joined, s)
    lower = (style & 2).astype(bool)
    if lower.any():
        s = pc.if_else(pa.array(lower), pc.utf8_lower(s), s)
    if present is not None and not present.all():
        s = pc.if_else(pa.array(~present), pa.scalar(None, pa.string()), s)
    return s


# --------------------------------------------------------------------------------------------
# defect planning


def _plan(
    rng: np.random.Generator,
    m: int,
    kinds: Sequence[int],
    rate: float,
    force_min: bool,
    eligible: dict[int, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row defect kind (0 clean), variant (0..5) and omit-key flag for ``m`` base rows.

    Each kind gets a disjoint slice ``[i*rate, (i+1)*rate)`` of one uniform draw, so a row has at
    most one defect. A kind restricted by ``eligible`` is dropped on other rows; with
    ``force_min`` every kind absent after the draw is put on one clean row (an eligible one when
    possible - the caller makes the row fit the defect otherwise).
    """
    eligible = eligible or {}
    u = rng.random(m)
    var = rng.integers(0, 6, m).astype(np.int8)
    omit = rng.random(m) < 0.5
    kind = np.zeros(m, dtype=np.int8)
    for i, k in enumerate(kinds):
        sel = (u >= i * rate) & (u < (i + 1) * rate)
        if k in eligible:
            sel &= eligible[k]
        kind[sel] = k
    if force_min:
        for k in kinds:
            if (kind == k).any():
                continue
            clean = kind == _CLEAN
            if k in eligible and (clean & eligible[k]).any():
                clean &= eligible[k]
            idx = np.flatnonzero(clean)
            if len(idx) and int((kind == _CLEAN).sum()) > 1:  # keep a clean row to re-send
                kind[idx[rng.integers(0, len(idx))]] = k
    return kind, var, omit


def _first_clean(rng: np.random.Generator, kind: np.ndarray, flag: np.ndarray, among: np.ndarray) -> None:
    """Make sure ``flag`` is set on at least one clean row of ``among`` (in place)."""
    if (flag & (kind == _CLEAN)).any():
        return
    idx = np.flatnonzero(among & (kind == _CLEAN))
    if len(idx):
        flag[idx[rng.integers(0, len(idx))]] = True


def _duplicates(rng: np.random.Generator, kind: np.ndarray, n_copies: int) -> tuple[np.ndarray, np.ndarray]:
    """Row order (indices into the base rows) with ``n_copies`` re-sent clean rows inserted later.

    Returns ``(take, sources)``: ``take`` has ``len(kind) + copies`` entries; ``sources`` are the
    base rows that were re-sent.
    """
    m = len(kind)
    clean = np.flatnonzero(kind == _CLEAN)
    if n_copies <= 0 or len(clean) == 0:
        return np.arange(m), np.empty(0, dtype=np.int64)
    sources = np.sort(rng.choice(clean, size=n_copies, replace=n_copies > len(clean)))
    lag = rng.integers(1, max(2, min(m, 1000)), n_copies)
    keys = np.concatenate([np.arange(m, dtype=np.float64), np.minimum(sources + lag, m) + 0.5])
    order = np.argsort(keys, kind="stable")
    return np.concatenate([np.arange(m), sources])[order], sources


def _copies(rng: np.random.Generator, n: int, rate: float, force_min: bool) -> int:
    k = int(rng.binomial(n, rate)) if rate > 0 else 0
    if force_min:
        k = max(k, 1)
    return min(k, max(0, n // 2))


def _take(cols: Cols, idx: np.ndarray) -> Cols:
    pidx = pa.array(idx)
    return {k: (v.take(pidx) if isinstance(v, pa.Array) else v[idx]) for k, v in cols.items()}


def _truth_entries(ids: pa.Array, kind: np.ndarray, sources: np.ndarray) -> dict[str, str]:
    out: dict[str, str] = {}
    bad = np.flatnonzero(kind != _CLEAN)
    if len(bad):
        names = [DEFECT_KINDS[k - 1] for k in kind[bad]]
        out.update(zip(ids.take(pa.array(bad)).to_pylist(), names, strict=True))
    if len(sources):
        out.update(dict.fromkeys(ids.take(pa.array(np.unique(sources))).to_pylist(), "duplicate_id"))
    return out


def _format_ids(ctx: _Ctx, dataset: str, seq: np.ndarray) -> pa.Array:
    fam = ctx.family
    sep = _ID_SEP[fam]
    prefix = f"{FORCE_CODE[ctx.force]}{sep}{_ID_TAG[fam][dataset]}{sep}{ctx.night:%Y%m%d}{sep}"
    digits = pc.utf8_lpad(pc.cast(pa.array(seq, pa.int64()), pa.string()), _ID_WIDTH[dataset], "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _apply_out_of_region(rng: np.random.Generator, cols: Cols) -> None:
    """Move out_of_region rows far away (variants 0/1) or flag them for a swap (variant 2)."""
    rows = cols["kind"] == _OUT_OF_REGION
    v = cols["var"] % 3
    for i, (lat, lon) in enumerate(_FAR_AWAY):
        sel = rows & (v == i)
        cols["lat"][sel] = lat + rng.uniform(-0.02, 0.02, int(sel.sum()))
        cols["lon"][sel] = lon + rng.uniform(-0.02, 0.02, int(sel.sum()))
    cols["swap"] = rows & (v == 2)


def _bad_plate_values(var: np.ndarray) -> pa.Array:
    return pa.array(np.array(_BAD_PLATES, dtype=object)[var % len(_BAD_PLATES)], pa.string())


# --------------------------------------------------------------------------------------------
# rendering helpers: times and coordinates


@functools.lru_cache(maxsize=1)
def _time_of_day() -> pa.Array:
    return pa.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)])


def _format_seconds(secs: np.ndarray, date_fmt: str, joiner: str, suffix: str) -> pa.Array:
    """Vectorised ``strftime`` for epoch seconds spanning a few days."""
    if len(secs) == 0:
        return pa.array([], pa.string())
    days = secs // 86400
    d0, d1 = int(days.min()), int(days.max())
    epoch = dt.date(1970, 1, 1)
    table = pa.array([(epoch + dt.timedelta(days=d)).strftime(date_fmt) for d in range(d0, d1 + 1)])
    date = table.take(pa.array(days - d0))
    tod = _time_of_day().take(pa.array(secs % 86400))
    return pc.binary_join_element_wise(date, joiner, tod, suffix, "")


def _utc_offset(epoch_s: int) -> int:
    off = dt.datetime.fromtimestamp(epoch_s, LONDON).utcoffset()
    assert off is not None
    return int(off.total_seconds())


def _local_seconds(ctx: _Ctx, secs: np.ndarray, in_gap: np.ndarray) -> np.ndarray:
    """Local wall-clock seconds for in-night UTC ``secs``.

    Rows flagged ``in_gap`` that fall in the hour after a spring-forward transition are written
    with the pre-transition offset, i.e. as a (non-existent) time in the missing hour.
    """
    start_s, end_s = night_window(ctx.night)
    off0, off1 = _utc_offset(start_s), _utc_offset(end_s - 1)
    if off0 == off1:
        return secs + off0
    lo, hi = start_s, end_s - 1  # offset(lo) == off0, offset(hi) == off1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _utc_offset(mid) == off0:
            lo = mid
        else:
            hi = mid
    after = secs >= hi
    if off1 > off0:
        after &= ~(in_gap & (secs < hi + (off1 - off0)))
    return secs + np.where(after, off1, off0)


def _impossible_years(night: dt.date) -> tuple[str, str]:
    if (night.month, night.day) == (2, 29):
        return "1972", "2096"
    return "1970", "2099"


def _render_time(ctx: _Ctx, cols: Cols, missing: np.ndarray) -> pa.Array:
    """The time column in the family's encoding, impossible and missing times applied."""
    t_ms: np.ndarray = cols["t_ms"]
    bad = cols["kind"] == _IMPOSSIBLE
    var = cols["var"]
    lo, hi = _impossible_years(ctx.night)
    fam = ctx.family
    if fam == "eastern_jsonl":
        shift = (dt.date(int(hi), ctx.night.month, ctx.night.day) - ctx.night).days * 86_400_000
        out = np.where(bad, np.where(var % 2 == 0, 0, t_ms + shift), t_ms)
        return pa.array(out, pa.int64(), mask=missing)
    if fam == "shared_csv":
        s = _format_seconds(t_ms // 1000, "%Y-%m-%d", "T", "Z")
        if bad.any():
            sub = s.filter(pa.array(bad))
            year = pa.array(np.where(var[bad] % 2 == 0, lo, hi))
            s = pc.replace_with_mask(
                s, pa.array(bad), pc.binary_join_element_wise(year, pc.utf8_slice_codeunits(sub, 4), "")
            )
    else:
        local = _local_seconds(ctx, t_ms // 1000, cols["tricky"])
        s = _format_seconds(local, "%d/%m/%Y", " ", "")
        if bad.any():
            sub = s.filter(pa.array(bad))
            v = var[bad] % 3
            head = pc.if_else(pa.array(v == 2), "31/02/", pc.utf8_slice_codeunits(sub, 0, 6))
            year = pc.if_else(
                pa.array(v == 2),
                pc.utf8_slice_codeunits(sub, 6, 10),
                pa.array(np.where(v == 0, lo, hi)),
            )
            s = pc.replace_with_mask(
                s,
                pa.array(bad),
                pc.binary_join_element_wise(head, year, pc.utf8_slice_codeunits(sub, 10), ""),
            )
    if missing.any():
        s = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), s)
    return s


@functools.lru_cache(maxsize=1)
def _to_bng() -> Transformer:
    return Transformer.from_crs(4326, 27700, always_xy=True)


def _render_coords(ctx: _Ctx, cols: Cols) -> tuple[np.ndarray, np.ndarray]:
    """``(lat, lon)`` rounded to 5 decimals, or ``(easting, northing)`` as integer metres for BNG."""
    lat, lon, swap = cols["lat"], cols["lon"], cols["swap"]
    if ctx.family == "southern_bng":
        e, n = _to_bng().transform(lon, lat)
        a = np.rint(np.asarray(e)).astype(np.int64)
        b = np.rint(np.asarray(n)).astype(np.int64)
    else:
        a, b = np.round(lat, 5), np.round(lon, 5)
    return np.where(swap, b, a), np.where(swap, a, b)


def _fixed5(x: np.ndarray) -> pa.Array:
    """Decimal strings with exactly five decimals (always a JSON float, never ``52`` or ``1e-05``)."""
    scaled = np.rint(np.abs(x) * 100_000).astype(np.int64)
    sign = pa.array(np.where((x < 0) & (scaled > 0), "-", ""))
    whole = pc.cast(pa.array(scaled // 100_000), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(scaled % 100_000), pa.string()), 5, "0")
    return pc.binary_join_element_wise(sign, whole, ".", frac, "")


def _codes(codes: Sequence[str], idx: np.ndarray) -> pa.Array:
    """Code strings for indices ``idx``; ``-1`` gives null."""
    return pa.array(list(codes), pa.string()).take(pa.array(idx.astype(np.int64), mask=idx < 0))


# --------------------------------------------------------------------------------------------
# JSON Lines building blocks (all values are ASCII without quotes or backslashes)


def _cat(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _jstr(a: pa.Array) -> pa.Array:
    return pc.fill_null(_cat('"', a, '"'), "null")


def _jraw(a: pa.Array) -> pa.Array:
    return pc.fill_null(pc.cast(a, pa.string()), "null")


_Member = tuple[str, pa.Array, "np.ndarray | None"]


def _member(key: str, value: pa.Array, omit: np.ndarray | None = None) -> _Member:
    """A ``"key":value`` pair; rows flagged in ``omit`` leave the key out."""
    return key, value, (omit if omit is not None and omit.any() else None)


def _segment(key: str, value: pa.Array, omit: np.ndarray | None, first: bool) -> pa.Array:
    seg = _cat(f'{"" if first else ","}"{key}":', value)
    if omit is not None:
        seg = pc.if_else(pa.array(omit), "", seg)
    return seg


def _object(*members: _Member) -> pa.Array:
    if members[0][2] is None:  # the first key is always there: no leading comma to strip
        parts = [_segment(*m, first=i == 0) for i, m in enumerate(members)]
        return _cat("{", *parts, "}")
    joined = _cat(*(_segment(*m, first=False) for m in members))
    return _cat("{", pc.utf8_slice_codeunits(joined, 1), "}")


def _lines(build: Any, view: Cols, alt: np.ndarray) -> pa.Array:
    """Lines in the usual key order, with the ``alt`` rows rebuilt in another key order."""
    lines = build(view, False)
    if alt.any():
        alt_lines = build(_take(view, np.flatnonzero(alt)), True)
        lines = pc.replace_with_mask(lines, pa.array(alt), alt_lines)
    return _cat(lines, "\n")


def _location(lat: np.ndarray, lon: np.ndarray) -> pa.Array:
    return _object(_member("lat", _fixed5(lat)), _member("lon", _fixed5(lon)))


# --------------------------------------------------------------------------------------------
# writers


class _Writer:
    """Writes CSV tables or JSON-line arrays chunk by chunk, deterministically."""

    def __init__(self, path: pathlib.Path, family: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.family = family
        self._raw = open(path, "wb")  # closed in close()
        self._gz: gzip.GzipFile | None = None
        if family == "eastern_jsonl":
            self._gz = gzip.GzipFile(
                filename="",
                fileobj=self._raw,
                mode="wb",
                mtime=0,
                compresslevel=GZIP_LEVEL,
            )
        self._header = True
        self.rows = 0

    def csv(self, table: pa.Table) -> None:
        delimiter = ";" if self.family == "southern_bng" else ","
        buf = io.BytesIO()
        opts = pacsv.WriteOptions(include_header=self._header, delimiter=delimiter, quoting_style="needed")
        pacsv.write_csv(table, buf, opts)
        data = buf.getvalue()
        if self.family == "southern_bng" and not data.isascii():
            data = data.decode("utf-8").encode("cp1252")
        self._raw.write(data)
        self._header = False
        self.rows += table.num_rows

    def jsonl(self, lines: pa.Array) -> None:
        assert self._gz is not None
        if len(lines):
            bufs = lines.buffers()
            offsets = np.frombuffer(bufs[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
            self._gz.write(memoryview(bufs[2])[int(offsets[0]) : int(offsets[-1])])
        self.rows += len(lines)

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
        self._raw.close()


def _emit(writer: _Writer, table: pa.Table | None, lines: pa.Array | None) -> None:
    if table is not None:
        writer.csv(table)
    elif lines is not None:
        writer.jsonl(lines)


# --------------------------------------------------------------------------------------------
# incidents


@dataclass
class _Incidents:
    cols: Cols  # rows as written (duplicates included)
    base: Cols  # one row per id
    sources: np.ndarray  # base rows that were re-sent


def _build_incidents(ctx: _Ctx) -> _Incidents:
    rng = ctx.night_rng("incidents")
    n = ctx.incidents if ctx.incidents is not None else int(rng.integers(12, 26))
    force_min = ctx.rate > 0 and n >= 10
    n_copies = _copies(rng, n, ctx.rate, force_min)
    m = n - n_copies
    t_ms = np.sort(rng.integers(ctx.start_ms, ctx.end_ms, m)) // 1000 * 1000
    lat, lon = _in_area(rng, ctx.force, m)
    offence = rng.choice(len(OFFENCES), size=m, p=_OFFENCE_P).astype(np.int64)
    outcome = rng.choice(len(OUTCOMES), size=m, p=_OUTCOME_P).astype(np.int64)
    has_plate = rng.random(m) < 0.25
    raw = _interest_pool(ctx)[rng.integers(0, _N_INTEREST, m)]
    style = _plate_style(rng, m)
    kinds = (_BAD_PLATE, _OUT_OF_REGION, _IMPOSSIBLE, _MISSING)
    kind, var, omit = _plan(rng, m, kinds, ctx.rate, force_min, {_BAD_PLATE: has_plate})
    has_plate |= kind == _BAD_PLATE
    plate = _render_plates(raw, style, has_plate)
    bad = kind == _BAD_PLATE
    if bad.any():
        plate = pc.replace_with_mask(plate, pa.array(bad), _bad_plate_values(var[bad]))
    missing = kind == _MISSING
    t_missing = missing & (var % 2 == 0)
    offence[missing & (var % 2 == 1)] = -1
    seq = np.arange(1, m + 1)
    base: Cols = {
        "seq": seq,
        "id": _format_ids(ctx, "incidents", seq),
        "t_ms": t_ms,
        "lat": lat,
        "lon": lon,
        "offence": offence,
        "outcome": outcome,
        "plate": plate,
        "raw_plate": raw,
        "has_plate": has_plate,
        "kind": kind,
        "var": var,
        "omit": omit,
        "t_missing": t_missing,
        "alt": rng.random(m) < 0.1,
        "tricky": np.zeros(m, dtype=bool),
    }
    _apply_out_of_region(rng, base)
    _tricky(ctx, rng, base)
    take, sources = _duplicates(rng, kind, n_copies)
    return _Incidents(_take(base, take), base, sources)


def _tricky(ctx: _Ctx, rng: np.random.Generator, cols: Cols) -> None:
    """At least one valid-but-awkward clean row per extract (family specific)."""
    kind = cols["kind"]
    if ctx.family == "eastern_jsonl":
        _first_clean(rng, kind, cols["alt"], np.ones(len(kind), dtype=bool))
    elif ctx.family == "southern_bng":
        start_s, end_s = night_window(ctx.night)
        if end_s - start_s < 86400:  # spring forward: one time inside the missing hour
            secs = cols["t_ms"] // 1000
            trans = start_s + 3600  # 01:00 UTC, when UK clocks change
            _first_clean(rng, kind, cols["tricky"], (secs >= trans) & (secs < trans + 3600))


def _write_incidents(ctx: _Ctx, writer: _Writer) -> dict[str, str]:
    inc = _build_incidents(ctx)
    cols = _plant_incidents(ctx, inc.cols, len(inc.base["t_ms"])) if ctx.plant else inc.cols
    fam = ctx.family
    t_missing = cols["t_missing"]
    if fam == "eastern_jsonl":
        view = dict(cols, time=_render_time(ctx, cols, t_missing))

        def build(v: Cols, alt: bool) -> pa.Array:
            loc = _location(*_render_coords(ctx, v))
            code = _jstr(_codes(_OFFENCE_CODES[fam], v["offence"]))
            crime = _object(_member("code", code, (v["offence"] < 0) & v["omit"]))
            members = [
                _member("ref", _jstr(v["id"])),
                _member("reported", _jraw(v["time"]), v["t_missing"] & v["omit"]),
                _member("location", loc),
                _member("crime", crime),
                _member("result", _jstr(_codes(_OUTCOME_CODES[fam], v["outcome"]))),
                _member("vehicle", _object(_member("registration", _jstr(v["plate"])))),
            ]
            return _object(*(members[::-1] if alt else members))

        _emit(writer, None, _lines(build, view, cols["alt"]))
    else:
        a, b = _render_coords(ctx, cols)
        time_col = _render_time(ctx, cols, t_missing)
        offence = _codes(_OFFENCE_CODES[fam], cols["offence"])
        outcome = _codes(_OUTCOME_CODES[fam], cols["outcome"])
        if fam == "shared_csv":
            names = [
                "incident_id",
                "occurred_at",
                "latitude",
                "longitude",
                "offence_code",
                "outcome_code",
                "vehicle_reg",
            ]
        else:
            names = ["Ref", "Date Time", "Easting", "Northing", "Offence", "Outcome", "VRM"]
        columns = [cols["id"], time_col, pa.array(a), pa.array(b), offence, outcome, cols["plate"]]
        table = pa.table(columns, names=names)
        _emit(writer, table, None)
    return _truth_entries(inc.base["id"], inc.base["kind"], inc.sources)


# --------------------------------------------------------------------------------------------
# ANPR reads


def _write_anpr(ctx: _Ctx, writer: _Writer) -> dict[str, str]:
    n = ctx.anpr_reads
    pool = _anpr_pool(ctx)
    cam_ids, cam_lat, cam_lon = _cameras(ctx)
    truth: dict[str, str] = {}
    span = ctx.end_ms - ctx.start_ms
    seq0 = 0
    n_chunks = max(1, -(-n // CHUNK_ROWS))
    for c in range(n_chunks):
        r0, r1 = c * CHUNK_ROWS, min(n, (c + 1) * CHUNK_ROWS)
        rng = ctx.night_rng("anpr_reads", c)
        force_min = c == 0 and ctx.rate > 0 and n >= 10
        n_c = r1 - r0
        n_copies = _copies(rng, n_c, ctx.rate, force_min)
        m = n_c - n_copies
        t_lo = ctx.start_ms + span * r0 // max(n, 1)
        t_hi = ctx.start_ms + span * r1 // max(n, 1)
        t_ms = np.sort(rng.integers(t_lo, max(t_hi, t_lo + 1), m))
        if ctx.family != "eastern_jsonl":
            t_ms = t_ms // 1000 * 1000
        cam = rng.integers(0, _N_CAMERAS, m)
        pidx = (len(pool) * rng.random(m) ** 2).astype(np.int64)
        style = _plate_style(rng, m)
        kinds = (_BAD_PLATE, _OUT_OF_REGION, _IMPOSSIBLE, _MISSING)
        kind, var, omit = _plan(rng, m, kinds, ctx.rate, force_min)
        spaced = (style & 1).astype(bool)
        if force_min:
            _first_clean(rng, kind, spaced, np.ones(m, dtype=bool))
            style = np.where(spaced, style | 1, style).astype(np.int8)
        missing = kind == _MISSING
        field = var % 3
        plate = _render_plates(pool[pidx], style, ~(missing & (field == 0)))
        bad = kind == _BAD_PLATE
        if bad.any():
            plate = pc.replace_with_mask(plate, pa.array(bad), _bad_plate_values(var[bad]))
        cam = np.where(missing & (field == 2), -1, cam)
        seq = seq0 + np.arange(1, m + 1)
        seq0 += m
        base: Cols = {
            "id": _format_ids(ctx, "anpr_reads", seq),
            "t_ms": t_ms,
            "cam": cam,
            "lat": cam_lat[np.maximum(cam, 0)],
            "lon": cam_lon[np.maximum(cam, 0)],
            "plate": plate,
            "kind": kind,
            "var": var,
            "omit": omit,
            "t_missing": missing & (field == 1),
            "alt": rng.random(m) < 0.05,
            "tricky": np.zeros(m, dtype=bool),
        }
        _apply_out_of_region(rng, base)
        if force_min:
            _tricky(ctx, rng, base)
        take, sources = _duplicates(rng, kind, n_copies)
        truth.update(_truth_entries(base["id"], kind, sources))
        cols = _take(base, take)
        del base
        _render_anpr(ctx, writer, cols, cam_ids)
    if ctx.plant:
        planted = _plant_reads(ctx, seq0, cam_lat, cam_lon)
        if len(planted["t_ms"]):
            _render_anpr(ctx, writer, planted, cam_ids)
    return truth


def _render_anpr(ctx: _Ctx, writer: _Writer, cols: Cols, cam_ids: pa.Array) -> None:
    fam = ctx.family
    camera = cam_ids.take(pa.array(cols["cam"], mask=cols["cam"] < 0))
    time_col = _render_time(ctx, cols, cols["t_missing"])
    if fam == "eastern_jsonl":
        view = dict(cols, time=time_col, camera=camera)

        def build(v: Cols, alt: bool) -> pa.Array:
            miss = v["kind"] == _MISSING
            loc = _member("location", _location(*_render_coords(ctx, v)))
            cid = _member("id", _jstr(v["camera"]), miss & (v["cam"] < 0) & v["omit"])
            cam_obj = _member("camera", _object(loc, cid) if alt else _object(cid, loc))
            ref = _member("ref", _jstr(v["id"]))
            observed = _member("observed", _jraw(v["time"]), v["t_missing"] & v["omit"])
            plate_missing = miss & (v["var"] % 3 == 0)
            plate = _member("plate", _jstr(v["plate"]), plate_missing & v["omit"])
            return _object(plate, cam_obj, observed, ref) if alt else _object(ref, observed, cam_obj, plate)

        _emit(writer, None, _lines(build, view, cols["alt"]))
        return
    a, b = _render_coords(ctx, cols)
    if fam == "shared_csv":
        names = ["read_id", "read_at", "camera_id", "latitude", "longitude", "vrm"]
    else:
        names = ["Read Ref", "Date Time", "Camera", "Easting", "Northing", "VRM"]
    table = pa.table([cols["id"], time_col, camera, pa.array(a), pa.array(b), cols["plate"]], names=names)
    _emit(writer, table, None)


# --------------------------------------------------------------------------------------------
# seizures


def _write_seizures(ctx: _Ctx, writer: _Writer) -> dict[str, str]:
    inc = _build_incidents(ctx)
    ib = inc.base
    usable = np.flatnonzero(ib["kind"] == _CLEAN)
    usable = np.setdiff1d(usable, inc.sources)
    rng = ctx.night_rng("seizures")
    n = ctx.seizures if ctx.seizures is not None else int(rng.integers(3, 9))
    force_min = ctx.rate > 0 and n >= 10 and len(usable) > 0
    n_copies = _copies(rng, n, ctx.rate, force_min) if len(usable) else 0
    m = n - n_copies
    # each seizure follows one clean incident: within 3 hours, near the scene
    if len(usable):
        which = usable[rng.integers(0, len(usable), m)]
    else:
        which = np.zeros(m, dtype=np.int64)
    if len(ib["t_ms"]):
        t_inc = ib["t_ms"][which]
        lat = ib["lat"][which] + rng.uniform(-0.01, 0.01, m)
        lon = ib["lon"][which] + rng.uniform(-0.01, 0.01, m)
    else:
        t_inc = rng.integers(ctx.start_ms, ctx.end_ms, m)
        lat, lon = _in_area(rng, ctx.force, m)
    room = np.clip(ctx.end_ms - 1000 - t_inc, 0, 3 * 3600 * 1000)
    t_ms = (t_inc + room * rng.uniform(0.05, 1.0, m)).astype(np.int64) // 1000 * 1000
    order = np.argsort(t_ms, kind="stable")
    which, t_ms, lat, lon = which[order], t_ms[order], lat[order], lon[order]
    rural = np.isin(ib["offence"][which], (0, 1)) if len(ib["t_ms"]) else np.zeros(m, dtype=bool)
    u = rng.random(m)
    item = np.where(
        rural,
        np.select([u < 0.5, u < 0.8], [_DOG, _VEHICLE], _EQUIPMENT),
        np.select([u < 0.1, u < 0.5], [_DOG, _VEHICLE], _EQUIPMENT),
    ).astype(np.int64)
    qty_dogs = rng.integers(1, 5, m)
    style = _plate_style(rng, m)
    interest = rng.integers(0, _N_INTEREST, m)
    if len(usable):
        kinds = (_BAD_PLATE, _OUT_OF_REGION, _IMPOSSIBLE, _MISSING, _UNKNOWN_INCIDENT)
        kind, var, omit = _plan(rng, m, kinds, ctx.rate, force_min, {_BAD_PLATE: item == _VEHICLE})
    else:  # nothing to refer to: every seizure points at an unknown incident
        kind = np.full(m, _UNKNOWN_INCIDENT, dtype=np.int8)
        var, omit = np.zeros(m, dtype=np.int8), np.zeros(m, dtype=bool)
    item[kind == _BAD_PLATE] = _VEHICLE
    qty = np.where(item == _DOG, qty_dogs, 1)
    # vehicle plate: the incident's vehicle if it had one, else a vehicle of interest
    raw = _interest_pool(ctx)[interest]
    if len(ib["t_ms"]):
        inc_raw = ib["raw_plate"][which]
        raw = np.where(ib["has_plate"][which] & (ib["kind"][which] == _CLEAN), inc_raw, raw)
    plate = _render_plates(raw, style, item == _VEHICLE)
    bad = kind == _BAD_PLATE
    if bad.any():
        plate = pc.replace_with_mask(plate, pa.array(bad), _bad_plate_values(var[bad]))
    missing = kind == _MISSING
    t_missing = missing & (var % 2 == 0)
    item[missing & (var % 2 == 1)] = -1
    inc_ids = ib["id"].take(pa.array(which)) if len(ib["t_ms"]) else pa.array([""] * m)
    unknown = kind == _UNKNOWN_INCIDENT
    if unknown.any():
        ghost = len(ib["t_ms"]) + 1000 + 7 * np.arange(int(unknown.sum()))
        inc_ids = pc.replace_with_mask(inc_ids, pa.array(unknown), _format_ids(ctx, "incidents", ghost))
    seq = np.arange(1, m + 1)
    base: Cols = {
        "id": _format_ids(ctx, "seizures", seq),
        "incident": inc_ids,
        "t_ms": t_ms,
        "item": item,
        "qty": qty,
        "plate": plate,
        "lat": lat,
        "lon": lon,
        "kind": kind,
        "var": var,
        "omit": omit,
        "t_missing": t_missing,
        "alt": rng.random(m) < 0.1,
        "tricky": np.zeros(m, dtype=bool),
    }
    _apply_out_of_region(rng, base)
    _tricky(ctx, rng, base)
    take, sources = _duplicates(rng, kind, n_copies)
    cols = _take(base, take)
    _render_seizures(ctx, writer, cols)
    return _truth_entries(base["id"], kind, sources)


def _render_seizures(ctx: _Ctx, writer: _Writer, cols: Cols) -> None:
    fam = ctx.family
    time_col = _render_time(ctx, cols, cols["t_missing"])
    item = _codes(_ITEM_CODES[fam], cols["item"])
    if fam == "eastern_jsonl":
        view = dict(cols, time=time_col, item_code=item)

        def build(v: Cols, alt: bool) -> pa.Array:
            type_ = _member("type", _jstr(v["item_code"]), (v["item"] < 0) & v["omit"])
            count = _member("count", _jraw(pa.array(v["qty"])))
            members = [
                _member("ref", _jstr(v["id"])),
                _member("incident", _jstr(v["incident"])),
                _member("seized", _jraw(v["time"]), v["t_missing"] & v["omit"]),
                _member("item", _object(count, type_) if alt else _object(type_, count)),
                _member("vehicle", _object(_member("registration", _jstr(v["plate"])))),
                _member("location", _location(*_render_coords(ctx, v))),
            ]
            return _object(*(members[::-1] if alt else members))

        _emit(writer, None, _lines(build, view, cols["alt"]))
        return
    a, b = _render_coords(ctx, cols)
    if fam == "shared_csv":
        names = [
            "seizure_id",
            "incident_id",
            "seized_at",
            "item_code",
            "quantity",
            "vrm",
            "latitude",
            "longitude",
        ]
    else:
        names = ["Seizure Ref", "Incident Ref", "Date Time", "Item", "Qty", "VRM", "Easting", "Northing"]
    columns = [cols["id"], cols["incident"], time_col, item, pa.array(cols["qty"]), cols["plate"]]
    table = pa.table([*columns, pa.array(a), pa.array(b)], names=names)
    _emit(writer, table, None)


_WRITERS = {"incidents": _write_incidents, "anpr_reads": _write_anpr, "seizures": _write_seizures}


# --------------------------------------------------------------------------------------------
# a planted cross-force vehicle (``plant_crossing_vehicle=True``; off by default)

#: Local hours of the night in which, when planting, no generated hare-coursing incident is left
#: (they are recoded to poaching), so that reads planted between 14:00 and 16:00 are more than
#: two hours from any hare coursing in every force.
PLANT_QUIET_HOURS = (11, 19)
_HARE_COURSING, _POACHING = OFFENCES.index("hare_coursing"), OFFENCES.index("poaching")
#: Planted incidents: (force, local hour, minute, offence).
_PLANT_INCIDENTS = (
    ("norfolk", 0, 50, _HARE_COURSING),
    ("suffolk", 2, 15, _HARE_COURSING),
    ("cambridgeshire", 3, 40, _HARE_COURSING),
    ("bedfordshire", 3, 0, _HARE_COURSING),
    ("hertfordshire", 14, 0, _POACHING),
    ("essex", 14, 20, _POACHING),
)
#: Planted vehicles: (role, why it does or does not qualify, reads as (force, local hour, minute)).
_PLANT_VEHICLES = (
    (
        "crossing_vehicle",
        "read in three forces, each within 20 minutes of a hare-coursing incident in that force",
        (("norfolk", 1, 10), ("suffolk", 2, 35), ("cambridgeshire", 4, 0)),
    ),
    (
        "decoy_far_in_time",
        "read in two forces, but more than two hours from any hare coursing there",
        (("essex", 14, 30), ("kent", 15, 30)),
    ),
    (
        "decoy_one_force",
        "read twice near a hare-coursing incident, but in one force only",
        (("bedfordshire", 3, 10), ("bedfordshire", 3, 40)),
    ),
    (
        "decoy_not_hare_coursing",
        "read in two forces near incidents, but the incidents are poaching",
        (("hertfordshire", 14, 10), ("essex", 14, 35)),
    ),
    (
        "decoy_one_force_near",
        "read in two forces, but near hare coursing in only one of them",
        (("suffolk", 2, 40), ("kent", 15, 0)),
    ),
)


def _plant_plates(seed: int, night: dt.date) -> dict[str, str]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7919, night.toordinal()]))
    plates = _plates(rng, len(_PLANT_VEHICLES))
    return {role: bytes(p).decode() for (role, _, _), p in zip(_PLANT_VEHICLES, plates, strict=True)}


def _local_ms(night: dt.date, hour: int, minute: int) -> int:
    return int(dt.datetime.combine(night, dt.time(hour, minute), tzinfo=LONDON).timestamp()) * 1000


def _plant_scenario(seed: int, night: dt.date) -> dict[str, Any]:
    """What ``plant_crossing_vehicle`` writes for a night (the ``_planted`` entry of the truth file).

    The scenario needs all seven forces: the crossing vehicle's three and the decoys' four.
    """
    plates = _plant_plates(seed, night)
    return {
        "night": night.isoformat(),
        "quiet_hours_local": list(PLANT_QUIET_HOURS),
        "incidents": [
            {"force": f, "local_time": f"{h:02d}:{m:02d}", "offence": OFFENCES[o]} for f, h, m, o in _PLANT_INCIDENTS
        ],
        "vehicles": [
            {
                "role": role,
                "plate": plates[role],
                "qualifies": role == "crossing_vehicle",
                "why": why,
                "reads": [{"force": f, "local_time": f"{h:02d}:{m:02d}"} for f, h, m in reads],
            }
            for role, why, reads in _PLANT_VEHICLES
        ],
    }


def _concat(a: Cols, b: Cols) -> Cols:
    out: Cols = {}
    for k, v in a.items():
        w = b[k]
        out[k] = pa.concat_arrays([v, w.cast(v.type)]) if isinstance(v, pa.Array) else np.concatenate([v, w])
    return out


def _plain_cols(n: int) -> Cols:
    """The bookkeeping columns of ``n`` clean, untricky rows."""
    return {
        "kind": np.zeros(n, dtype=np.int8),
        "var": np.zeros(n, dtype=np.int8),
        "omit": np.zeros(n, dtype=bool),
        "t_missing": np.zeros(n, dtype=bool),
        "alt": np.zeros(n, dtype=bool),
        "tricky": np.zeros(n, dtype=bool),
        "swap": np.zeros(n, dtype=bool),
    }


def _plant_incidents(ctx: _Ctx, cols: Cols, m: int) -> Cols:
    """Recode hare coursing in the quiet hours to poaching, then append this force's planted incidents."""
    q0, q1 = (_local_ms(ctx.night, h, 0) for h in PLANT_QUIET_HOURS)
    quiet = (cols["t_ms"] >= q0) & (cols["t_ms"] < q1) & (cols["offence"] == _HARE_COURSING)
    cols = dict(cols, offence=np.where(quiet, _POACHING, cols["offence"]))
    mine = [(h, mi, o) for f, h, mi, o in _PLANT_INCIDENTS if f == ctx.force]
    if not mine:
        return cols
    n = len(mine)
    rng = ctx.night_rng("incidents", 7919)
    lat, lon = _in_area(rng, ctx.force, n)
    seq = m + 1 + np.arange(n)  # after the generated ids; seizures' unknown ids start at m + 1000
    planted: Cols = {
        "seq": seq,
        "id": _format_ids(ctx, "incidents", seq),
        "t_ms": np.array([_local_ms(ctx.night, h, mi) for h, mi, _ in mine], dtype=np.int64),
        "lat": lat,
        "lon": lon,
        "offence": np.array([o for _, _, o in mine], dtype=np.int64),
        "outcome": np.zeros(n, dtype=np.int64),
        "plate": pa.nulls(n, pa.string()),
        "raw_plate": np.array([b"AA00AAA"] * n, dtype="S7"),
        "has_plate": np.zeros(n, dtype=bool),
        **_plain_cols(n),
    }
    return _concat(cols, {k: planted[k] for k in cols})


def _plant_reads(ctx: _Ctx, seq0: int, cam_lat: np.ndarray, cam_lon: np.ndarray) -> Cols:
    """This force's reads of the planted vehicles (ids after the generated ones)."""
    plates = _plant_plates(ctx.seed, ctx.night)
    mine = sorted(
        (_local_ms(ctx.night, h, mi), plates[role])
        for role, _, reads in _PLANT_VEHICLES
        for f, h, mi in reads
        if f == ctx.force
    )
    n = len(mine)
    cam = ctx.night_rng("anpr_reads", 7919).integers(0, _N_CAMERAS, n)
    return {
        "id": _format_ids(ctx, "anpr_reads", seq0 + 1 + np.arange(n)),
        "t_ms": np.array([t for t, _ in mine], dtype=np.int64),
        "cam": cam,
        "lat": cam_lat[cam],
        "lon": cam_lon[cam],
        "plate": pa.array([p for _, p in mine], pa.string()),
        **_plain_cols(n),
    }


# --------------------------------------------------------------------------------------------
# truth file and entry point


def write_truth(
    out_dir: str | pathlib.Path,
    night: dt.date,
    update: dict[str, dict[str, dict[str, Any]]],
    planted: dict[str, Any] | None = None,
    keep_planted: bool = False,
    arrivals: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Merge ``update`` (force -> dataset -> entry) into ``<out_dir>/_truth.json`` and return it.

    Entries already in the file for the same night are kept unless ``update`` replaces them;
    entries of another night are dropped. Written atomically with sorted keys. ``planted`` (the
    planted-vehicle scenario) goes under ``"_planted"``; an earlier one of the same night is kept
    only with ``keep_planted`` (a run that rewrote no incidents and no ANPR reads). ``arrivals``
    (the late rate and the cut-off the arrival times were drawn against) goes under ``"_arrivals"``.
    """
    path = pathlib.Path(out_dir) / TRUTH_FILE
    merged: dict[str, dict[str, dict[str, Any]]] = {}
    if path.exists():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        old = old if isinstance(old, dict) else {}
        old_planted = old.pop("_planted", None)
        if keep_planted and isinstance(old_planted, dict) and old_planted.get("night") == night.isoformat():
            planted = planted or old_planted
        for force, per_ds in old.items():
            if force.startswith("_"):
                continue
            for ds, entry in per_ds.items() if isinstance(per_ds, dict) else ():
                if isinstance(entry, dict) and entry.get("night") == night.isoformat():
                    merged.setdefault(force, {})[ds] = entry
    for force, per_ds in update.items():
        for ds, entry in per_ds.items():
            merged.setdefault(force, {})[ds] = dict(entry, night=night.isoformat())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n_ids = sum(len(e.get("defective", ())) for per_ds in merged.values() for e in per_ds.values())
    # indented for people; compact (and C-encoded) when there are millions of ids
    indent = 1 if n_ids <= 100_000 else None
    if planted is not None:  # keys starting with "_" are not forces: truth consumers skip them
        merged["_planted"] = planted  # type: ignore[assignment]
    if arrivals is not None:
        merged["_arrivals"] = arrivals  # type: ignore[assignment]
    tmp.write_text(json.dumps(merged, indent=indent, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return merged


def arrival_time(
    seed: int, force: str, dataset: str, night: dt.date, late_rate: float = LATE_RATE
) -> tuple[dt.datetime, bool]:
    """When the extract of ``night`` arrives (UTC) and whether that is after the cut-off.

    On time: 5 to 105 minutes before ``CUTOFF_LOCAL`` on the morning after; late (with probability
    ``late_rate``): 5 minutes to 4 hours after it.
    """
    rng = np.random.default_rng(
        np.random.SeedSequence([seed, FORCES.index(force), 1 + DATASETS.index(dataset), night.toordinal(), 0xA771])
    )
    late = bool(rng.random() < late_rate)
    cutoff = dt.datetime.combine(night + dt.timedelta(days=1), CUTOFF_LOCAL, LONDON).astimezone(dt.UTC)
    minutes = int(rng.integers(5, 241)) if late else -int(rng.integers(5, 106))
    return cutoff + dt.timedelta(minutes=minutes), late


def _select(given: Sequence[str] | None, allowed: tuple[str, ...], what: str) -> list[str]:
    if given is None:
        return list(allowed)
    if isinstance(given, str):
        given = [given]
    unknown = [g for g in given if g not in allowed]
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)} (expected one of {', '.join(allowed)})")
    return [a for a in allowed if a in given]


def generate_night(
    night: dt.date,
    out_dir: str | pathlib.Path,
    *,
    anpr_reads: int = 5000,
    seed: int = 0,
    forces: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    incidents: int | None = None,
    seizures: int | None = None,
    defect_rate: float = 0.02,
    plant_crossing_vehicle: bool = False,
    late_rate: float = LATE_RATE,
) -> dict[str, Any]:
    """Write one night of native extracts for the selected forces/datasets and return the truth.

    ``late_rate``: the probability that an extract arrives after the cut-off (see *Arrival times*).

    ``anpr_reads``, ``incidents`` and ``seizures`` are rows per force (``None``: drawn from the
    seed, 12-25 incidents and 3-8 seizures). ``defect_rate`` is the probability per applicable
    defect kind. Returns the merged content of ``<out_dir>/_truth.json``.

    ``plant_crossing_vehicle`` adds, on top of the usual records, one vehicle read in three forces
    near hare-coursing incidents there and four decoys that must not qualify (see
    :func:`_plant_scenario`; all seven forces are needed), and writes them under ``"_planted"``
    in the truth file. Off, the output is exactly what it was without the option.
    """
    if isinstance(night, dt.datetime):
        night = night.date()
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if not 0.0 <= defect_rate < 1.0:
        raise ValueError("defect_rate must be in [0, 1)")
    if not 0.0 <= late_rate <= 1.0:
        raise ValueError("late_rate must be in [0, 1]")
    for name, value in (("anpr_reads", anpr_reads), ("incidents", incidents), ("seizures", seizures)):
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0")
    out = pathlib.Path(out_dir)
    update: dict[str, dict[str, dict[str, Any]]] = {}
    for force in _select(forces, FORCES, "force"):
        ctx = _Ctx(force, night, seed, defect_rate, anpr_reads, incidents, seizures, plant_crossing_vehicle)
        for dataset in _select(datasets, DATASETS, "dataset"):
            path = extract_path(out, force, dataset, night)
            writer = _Writer(path, ctx.family)
            try:
                defective = _WRITERS[dataset](ctx, writer)
            finally:
                writer.close()
            arrives, late = arrival_time(seed, force, dataset, night, late_rate)
            os.utime(path, (arrives.timestamp(), arrives.timestamp()))  # the file "lands" then
            update.setdefault(force, {})[dataset] = {
                "records": writer.rows,
                "defective": defective,
                "arrives_at": arrives.isoformat(),
                "late": late,
            }
    written = {ds for per in update.values() for ds in per}
    planted = _plant_scenario(seed, night) if plant_crossing_vehicle else None
    arrivals = {"late_rate": late_rate, "cutoff_local": CUTOFF_LOCAL.strftime("%H:%M"), "timezone": "Europe/London"}
    return write_truth(
        out, night, update, planted, keep_planted=not written & {"incidents", "anpr_reads"}, arrivals=arrivals
    )
