"""No clear plate outside the restricted zones after a full night through Airflow.

Runs ``xforce run`` on a small generated night made hostile (:func:`make_hostile`): a CSV with
CR-only line endings, a CSV without its header line (the first line is a record), a header cell
and a JSON key shaped like plates, ragged and unparseable lines, and every plate shape the plate
check accepts (dateless, Northern Irish, prefix, suffix, spaced, lower case) and malformed ones.
Then scans every file and table the run wrote outside landing, raw and restricted (curated,
quarantine, staging, docs, the ledger DB, the Airflow home with its metadata DB, XCom and task
logs, and the run's own output) for every plate the generator and the hostile files emitted, as
written and normalised. The same scanner must find those plates where they are allowed (landing,
raw, the token map), so a silent scanner cannot pass.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xforce.intake.contracts import load_registry
from xforce.schemas import DATASETS, TOKEN_COLUMN
from xforce.settings import PROJECT_ROOT
from xforce_tools.generate import generate_night

pytestmark = pytest.mark.integration

NIGHT = "2026-11-27"
XFORCE = str(Path(sys.executable).parent / "xforce")
RESTRICTED = ("landing", "raw", "restricted")
_WORD = re.compile(r"[A-Za-z0-9]+")


# ------------------------------------------------------------------------------ the scanner
@dataclass
class Needles:
    """Plates to look for: alphanumeric words, two words joined by one space, anything else verbatim."""

    words: set[str] = field(default_factory=set)
    pairs: set[str] = field(default_factory=set)
    other: set[str] = field(default_factory=set)
    written: set[str] = field(default_factory=set)  # the forms as they appear in the extracts

    def add(self, plate: str) -> None:
        if len(plate.strip()) >= 5:
            self.written.add(plate.strip())
        for form in {plate.strip(), re.sub(r"\s+", "", plate.upper())}:
            if len(form) < 5:
                continue
            if _WORD.fullmatch(form):
                self.words.add(form)
            elif re.fullmatch(r"[A-Za-z0-9]+ [A-Za-z0-9]+", form):
                self.pairs.add(form)
            else:
                self.other.add(form)

    def all(self) -> set[str]:
        return self.words | self.pairs | self.other

    def find(self, text: str) -> set[str]:
        hits: set[str] = set()
        prev: re.Match[str] | None = None
        for m in _WORD.finditer(text):
            if m.group() in self.words:
                hits.add(m.group())
            if prev is not None and m.start() == prev.end() + 1 and text[prev.end()] == " ":
                pair = f"{prev.group()} {m.group()}"
                if pair in self.pairs:
                    hits.add(pair)
            prev = m
        hits.update(o for o in self.other if o in text)
        return hits


def _texts_of_value(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        out = [raw.decode("latin-1")]
        for wbits in (15, 31, -15):  # zlib, gzip, raw deflate (compressed blobs)
            try:
                out.append(zlib.decompress(raw, wbits).decode("latin-1"))
                break
            except zlib.error:
                continue
        return out
    return [str(value)]


def scan_file(path: Path, needles: Needles) -> set[str]:
    """Plates in a file: its bytes, and decoded content for Parquet, SQLite and gzip."""
    raw = path.read_bytes()
    texts = [raw.decode("utf-8", errors="replace"), raw.decode("latin-1")]
    if raw[:4] == b"PAR1":
        table = pq.read_table(io.BytesIO(raw))
        for col in table.columns:
            texts.extend(t for v in col.to_pylist() for t in _texts_of_value(v))
    elif raw[:16] == b"SQLite format 3\x00":
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for t in tables:
                for row in con.execute(f'SELECT * FROM "{t}"'):
                    texts.extend(x for v in row for x in _texts_of_value(v))
        finally:
            con.close()
    elif raw[:2] == b"\x1f\x8b":
        texts.append(gzip.decompress(raw).decode("latin-1"))
    return {hit for text in texts for hit in needles.find(text)}


def scan_tree(root: Path, needles: Needles, skip: tuple[Path, ...] = ()) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink() and not any(path.is_relative_to(s) for s in skip):
            hits = scan_file(path, needles)
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


def plates_in_landing(landing: Path, night: str) -> Needles:
    """Every plate value of every extract, read with plain csv/json and the contracts' field names."""
    registry = load_registry(str(PROJECT_ROOT / "config"))
    needles = Needles()
    for force in registry.forces:
        for dataset in DATASETS:
            contract = registry.contract(force, dataset)
            source = contract.fields.get("plate")
            folder = landing / force / dataset / night
            if source is None or not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                data = path.read_bytes()
                if contract.compression == "gzip":
                    data = gzip.decompress(data)
                text = data.decode(contract.encoding).replace("\r\n", "\n").replace("\r", "\n")  # CR-only too
                if contract.format == "csv":
                    for row in csv.DictReader(io.StringIO(text), delimiter=contract.delimiter):
                        if row.get(source):
                            needles.add(row[source])
                else:
                    for line in text.splitlines():
                        try:
                            obj = json.loads(line)
                        except ValueError:
                            continue
                        for key in source.split("."):
                            obj = obj.get(key) if isinstance(obj, dict) else None
                        if isinstance(obj, str) and obj.strip():
                            needles.add(obj)
    return needles


# ------------------------------------------------------------------------- the hostile night
#: Every shape the plate check accepts, as a force may write it, and malformed values. Distinctive
#: (Q, Z, X), so that nothing else the run writes holds them by chance.
HOSTILE_PLATES = (
    "QZX4821",  # dateless, letters first (ABZ1234)
    "qzx 4822",  # the same, lower case and spaced
    "4821QZ",  # dateless, digits first (1234AB)
    "4823 QZ",
    "QIA 7461",  # Northern Irish (NIA 7777)
    "QIA7462",
    "Q123XYZ",  # prefix
    "Q124 XYZ",
    "XYZ123Q",  # suffix
    "QX51 VRZ",  # current, spaced
    "qx52vrz",  # current, lower case
    "1Q2Z3X4W",  # malformed: letters and digits mixed, plate length
    "9Z8Y7X6W",
)
#: A header cell and a JSON key shaped like plates: a drift report must not name them.
HOSTILE_NAMES = ("QZX4825", "Q125XYZ")


def _csv_rows(path: Path, delimiter: str, plates: tuple[str, ...], tag: str) -> tuple[str, list[str], list[str]]:
    """The file's header, its rows, and one new row per plate (a copy of its first row with its own id)."""
    header, *rows = [r for r in path.read_text(encoding="utf-8").split("\n") if r]
    cells = rows[0].split(delimiter)
    extra = []
    for i, plate in enumerate(plates):
        cells[0] = f'"{tag}-{i:04d}"'
        cells[-1] = f'"{plate}"'  # the plate is the last column of every CSV contract's ANPR reads
        extra.append(delimiter.join(cells))
    return header, rows, extra


def make_hostile(landing: Path, night: str) -> set[str]:
    """Rewrite four ANPR extracts of the generated night; returns the plates of the rewritten CSV
    rows (a file without its header line is not read by ``plates_in_landing``)."""
    anpr = "anpr_reads"
    plates: set[str] = set()
    # Norfolk: CR-only line endings: read naively, the whole file would be its header.
    path = landing / "norfolk" / anpr / night / "anpr_reads.csv"
    header, rows, extra = _csv_rows(path, ",", HOSTILE_PLATES, "NFK-H")
    path.write_bytes("\r".join([header, *extra, *rows]).encode() + b"\r")
    # Suffolk: no header line: its first line is a record with a plate.
    path = landing / "suffolk" / anpr / night / "anpr_reads.csv"
    header, rows, extra = _csv_rows(path, ",", HOSTILE_PLATES, "SFK-H")
    path.write_text("\n".join([*extra, *rows]) + "\n", encoding="utf-8")
    plates.update(r.split(",")[-1].strip('"') for r in rows)
    # Essex: a plate-shaped header cell (a new column), every plate shape in rows, a ragged row and
    # an unbalanced quote, each with a plate.
    path = landing / "essex" / anpr / night / "anpr_reads.csv"
    header, rows, extra = _csv_rows(path, ";", HOSTILE_PLATES, "ESX-H")
    bad = [f'"ESX-B-1";"{HOSTILE_PLATES[0]}";"x"', f'"ESX-B-2";"27/11/2026 01:00:00";"{HOSTILE_PLATES[4]}']
    lines = [f'{header};"{HOSTILE_NAMES[0]}"', *(f'{r};"n"' for r in [*rows, *extra]), *bad]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # Cambridgeshire (JSON Lines, gzip): every plate shape, a plate-shaped key, an unparseable line.
    path = landing / "cambridgeshire" / anpr / night / "anpr_reads.jsonl.gz"
    records = [r for r in gzip.decompress(path.read_bytes()).decode("utf-8").split("\n") if r]
    first = json.loads(records[0])
    for i, plate in enumerate(HOSTILE_PLATES):
        records.append(json.dumps({**first, "ref": f"CAMBS/H/{i:04d}", "plate": plate}))
    records.append(json.dumps({**first, "ref": "CAMBS/H/KEY", HOSTILE_NAMES[1]: "1"}))
    records.append('{"ref": "CAMBS/H/BAD", "plate": "' + HOSTILE_PLATES[2] + '", ')
    path.write_bytes(gzip.compress(("\n".join(records) + "\n").encode("utf-8")))
    return {p for p in plates if p}


# ------------------------------------------------------------------------------- the night
@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("leaks")
    data, home = base / "data", base / "airflow_home"
    generate_night(date.fromisoformat(NIGHT), data / "landing", anpr_reads=40, seed=11)
    hostile = make_hostile(data / "landing", NIGHT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW"))}
    env["XFORCE_SETTLE_SECONDS"] = "0"  # files the test writes are landed at once
    env.update(
        {
            "XFORCE_DATA_DIR": str(data),
            "AIRFLOW_HOME": str(home),
            "XFORCE_HMAC_KEY": os.environ["XFORCE_HMAC_KEY"],
            "PATH": os.environ["PATH"],
        }
    )
    run = subprocess.run([XFORCE, "run", "--date", NIGHT], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    needles = plates_in_landing(data / "landing", NIGHT)
    for plate in (*HOSTILE_PLATES, *HOSTILE_NAMES, *hostile):
        needles.add(plate)
    return {"data": data, "home": home, "env": env, "run": run, "needles": needles}


def _curated_tokens(data: Path) -> set[str]:
    tokens: set[str] = set()
    for zone in ("curated", "quarantine"):
        for path in (data / zone).rglob("part-0.parquet"):
            t = pq.read_table(path)
            for col in set(TOKEN_COLUMN.values()) & set(t.column_names):
                tokens.update(v for v in t.column(col).to_pylist() if v)
    return tokens


def test_the_scanner_finds_plates_where_they_are_allowed(night) -> None:
    needles: Needles = night["needles"]
    data = night["data"]
    assert len(needles.words) > 100 and needles.pairs and needles.other  # spaced, lower-case and bad plates
    assert any(w.islower() for w in needles.words | needles.pairs)
    # Every plate, as written, is found in landing and in the raw copies (gzip JSON Lines included).
    for zone in ("landing", "raw"):
        found = set().union(*scan_tree(data / zone, needles).values())
        assert needles.written <= found, (zone, sorted(needles.written - found)[:10])
    # The token map (zstd Parquet) holds the normalised plate of every token published or quarantined.
    mapping = pa.concat_tables([pq.read_table(p) for p in (data / "restricted").rglob("*.parquet")])
    assert _curated_tokens(data) <= set(mapping.column("token").to_pylist())
    in_map = set().union(*scan_tree(data / "restricted", needles).values())
    plates = {re.sub(r"\s+", "", p) for p in mapping.column("plate").to_pylist()}
    assert in_map == {n for n in needles.all() if n in plates} and len(in_map) > 100


def test_the_hostile_extracts_were_read_as_intended(night) -> None:
    """The hostile files did reach the echoes the scan looks at: refused whole with a message that
    says why by length and hash, and drift reports that describe the plate-shaped names."""
    con = sqlite3.connect(night["data"] / "ledger.sqlite")
    try:
        rows = {
            f: (status, error or "")
            for f, status, error in con.execute(
                "SELECT force, status, error FROM xforce_extracts WHERE night = ? AND dataset = 'anpr_reads'", (NIGHT,)
            )
        }
        drift = [
            json.loads(d)
            for (d,) in con.execute(
                "SELECT detail FROM xforce_events WHERE night = ? AND event = 'schema_drift' AND dataset = 'anpr_reads'"
                " AND force IN ('essex', 'cambridgeshire')",
                (NIGHT,),
            )
        ]
    finally:
        con.close()
    assert rows["norfolk"][0] == "quarantined" and "CR-only line endings" in rows["norfolk"][1]
    assert re.search(r"<len \d+, sha-256 [0-9a-f]{12}>", rows["norfolk"][1])
    assert rows["suffolk"][0] == "quarantined" and "no header line?), names withheld" in rows["suffolk"][1]
    assert rows["essex"][0] == rows["cambridgeshire"][0] == "published"
    added = [a for d in drift for a in d["added"]]
    assert len(added) >= 2 and all(re.fullmatch(r"column \d+ <len 7, sha-256 [0-9a-f]{12}>", a) for a in added)


def test_the_scanner_reads_every_kind_of_file(tmp_path: Path) -> None:
    needles = Needles()
    for plate in ("AB12CDE", "xy34 fgh", "AB-12-CDE-FG!"):
        needles.add(plate)
    con = sqlite3.connect(tmp_path / "db.sqlite")
    con.execute("CREATE TABLE t (a TEXT, b BLOB)")
    con.execute("INSERT INTO t VALUES (?, ?)", ("ok", zlib.compress(b'{"plate": "XY34FGH"}')))
    con.commit()
    con.close()
    pq.write_table(pa.table({"x": ["n", "AB-12-CDE-FG!"]}), tmp_path / "f.parquet", compression="zstd")
    (tmp_path / "log.txt").write_text("INFO read xy34 fgh at camera 3\n")
    (tmp_path / "hex.txt").write_text("tokens ab12cde0f AB12CDEF xAB12CDE\n")  # not plates: longer words
    found = scan_tree(tmp_path, needles)
    assert found == {"db.sqlite": {"XY34FGH"}, "f.parquet": {"AB-12-CDE-FG!"}, "log.txt": {"xy34 fgh"}}


def test_reidentify_round_trip_and_audit(night) -> None:
    data, env = night["data"], night["env"]
    # The night's data folder is under /tmp, where a ledger does not last and re-identification is
    # refused (docs/privacy.md): the system's temporary folder is moved beside it instead.
    (systemp := data.parent / "systemp").mkdir(exist_ok=True)
    env = {**env, "TMPDIR": str(systemp)}
    token = sorted(_curated_tokens(data))[0]
    args = ["--purpose", "Op Lepus follow-up, log 2026/117", "--requested-by", "DS Patel"]
    got = subprocess.run([XFORCE, "reidentify", "--token", token, *args], env=env, capture_output=True, text=True)
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() in night["needles"].words  # a normalised plate the generator emitted
    unknown = subprocess.run(
        [XFORCE, "reidentify", "--token", "0" * 64, *args], env=env, capture_output=True, text=True
    )
    assert unknown.returncode == 2 and "unknown token" in unknown.stderr and not unknown.stdout
    audit = subprocess.run([XFORCE, "audit"], env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    rows = [line.split("\t") for line in audit[1:]]
    assert [(r[1], r[3], r[5]) for r in rows] == [
        ("DS Patel", "disclosed", token),
        ("DS Patel", "unknown_token", "0" * 64),
    ]


def test_no_plate_outside_the_restricted_zones(night) -> None:
    needles: Needles = night["needles"]
    data, home = night["data"], night["home"]
    skip = tuple(data / z for z in RESTRICTED)
    leaks = scan_tree(data, needles, skip=skip)
    leaks.update({f"AIRFLOW_HOME/{k}": v for k, v in scan_tree(home, needles).items()})
    run = night["run"]
    for name, text in (("stdout of xforce run", run.stdout), ("stderr of xforce run", run.stderr)):
        if hits := needles.find(text):
            leaks[name] = hits
    assert leaks == {}, {k: sorted(v)[:5] for k, v in leaks.items()}
    # What was scanned is what matters: the outputs, the ledger, XCom and the task logs are all there.
    scanned = {p.relative_to(data).parts[0] for p in data.rglob("*") if p.is_file()}
    assert {"curated", "quarantine", "ledger.sqlite"} <= scanned
    con = sqlite3.connect(home / "airflow.db")
    assert con.execute("SELECT count(*) FROM xcom").fetchone()[0] > 40
    con.close()
    # the task logs: in the run's log file under the data folder (scanned above), not on the console
    logs = sorted((data / "logs").glob("xforce-run-*.log"))
    text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
    assert "validate_anpr_reads" in text
    # ... and they hold each extract's summary (counts, reasons, expectations met), which was scanned too
    assert re.search(r"kent/anpr_reads \S+: \w+; received \d+, published \d+, quarantined \d+", text)
    assert "Great Expectations, row-level suite:" in text and "quarantined by reason:" in text
