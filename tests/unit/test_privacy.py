"""Pseudonymisation support: the restricted token map, audited re-identification, key rotation,
free-text redaction and the generated least-privilege policies."""

from __future__ import annotations

import csv
import fnmatch
import json
import re
import sqlite3
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from xforce import cli
from xforce.errors import XforceError
from xforce.intake.contracts import load_registry
from xforce.privacy import policies
from xforce.privacy import tokenmap as privacy
from xforce.privacy.tokens import tokenise
from xforce.redaction import redact_text
from xforce.schemas import CANONICAL, quarantine_schema
from xforce.settings import PROJECT_ROOT, Settings
from xforce.store.ledger import Ledger
from xforce.store.zones import Zone

pytestmark = pytest.mark.unit

K1, K2 = b"first-key-not-a-secret-0123456789", b"second-key-not-a-secret-987654321"
PLATES = ["AB12CDE", "XY34FGH", "KL56MNO", None, "AB12CDE"]


@pytest.fixture
def settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("XFORCE_RESTRICTED_URI", raising=False)
    return Settings.from_env()


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger(settings.ledger_url, settings.sql_dir)


def _anpr(plates: list[str | None], key: bytes, version: str, force: str = "norfolk") -> pa.Table:
    """A small curated ANPR partition in the canonical schema."""
    n = len(plates)
    tokens = tokenise(pa.array(plates, pa.string()), key)
    return pa.table(
        {
            "record_id": [f"{force}:R{i}" for i in range(n)],
            "source_id": [f"R{i}" for i in range(n)],
            "force_code": [force] * n,
            "source_file": ["anpr_reads.csv"] * n,
            "source_record": list(range(1, n + 1)),
            "read_at": [datetime(2026, 10, 25, 1, i, tzinfo=UTC) for i in range(n)],
            "camera_id": ["NOR-CAM-0001"] * n,
            "latitude": [52.6] * n,
            "longitude": [1.3] * n,
            "plate_token": tokens,
            "plate_key_version": pc.if_else(pc.is_valid(tokens), pa.scalar(version), pa.scalar(None, pa.string())),
        },
        schema=CANONICAL["anpr_reads"].set(
            CANONICAL["anpr_reads"].get_field_index("plate_token"), pa.field("plate_token", pa.string())
        ),
    )


# ------------------------------------------------------------------------------ token map
def test_remember_tokens_files_the_map_by_partition_idempotently(settings: Settings) -> None:
    plates = pa.array(PLATES, pa.string())
    tokens = tokenise(plates, K1)
    ref = "norfolk/anpr_reads/2026-10-25/" + "a" * 64 + "/anpr_reads.csv"
    rel = privacy.remember_tokens(settings.restricted, "k1", plates, tokens, raw_ref=ref)
    assert rel is not None
    assert rel.startswith("token_map/key_version=k1/dataset=anpr_reads/date=2026-10-25/force=norfolk/aaaaaaaaaaaaaaaa-")
    assert not any(p in rel for p in PLATES if p)  # file names come from tokens, never plates
    table = Zone(settings.restricted).read_parquet(rel)
    assert table.schema == privacy.MAP_SCHEMA
    assert sorted(table.column("plate").to_pylist()) == ["AB12CDE", "KL56MNO", "XY34FGH"]  # distinct, no null
    # Same batch again (a re-run): same file, nothing added.
    assert privacy.remember_tokens(settings.restricted, "k1", plates, tokens, raw_ref=ref) == rel
    assert len(Zone(settings.restricted).list_files("token_map", recursive=True)) == 1
    assert privacy.lookup(settings.restricted, tokens[0].as_py()) == ("AB12CDE", "k1")
    assert privacy.lookup(settings.restricted, "0" * 64) is None
    # No plates at all: no file.
    none = pa.array([None, None], pa.string())
    assert privacy.remember_tokens(settings.restricted, "k1", none, none, raw_ref=ref) is None


@pytest.mark.parametrize(
    "ref",
    ["norfolk/anpr_reads/2026-10-25/x.csv", "norfolk/films/2026-10-25/sha/x.csv", "n/anpr_reads/nope/s/x", "../a/b"],
)
def test_raw_partition_refuses_what_is_not_a_raw_reference(ref: str) -> None:
    with pytest.raises((XforceError, ValueError)):
        privacy.raw_partition(ref)


# -------------------------------------------------------------------------- re-identification
@pytest.fixture
def durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The system's temporary folder moved beside the data folder: its ledger counts as durable."""
    (tmp_path / "systemp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systemp"))


def _seed_map(settings: Settings) -> list[str]:
    plates = pa.array(["AB12CDE", "XY34FGH"], pa.string())
    tokens = tokenise(plates, K1)
    privacy.write_map(settings.restricted, "k1", "anpr_reads", "2026-10-25", "norfolk", plates, tokens)
    return tokens.to_pylist()


@pytest.mark.usefixtures("durable")
def test_reidentify_discloses_only_with_a_purpose_and_audits_every_request(settings: Settings, ledger: Ledger) -> None:
    tok, _ = _seed_map(settings)
    found = privacy.reidentify(
        settings.restricted, ledger, tok.upper(), purpose="Op Lepus: hare coursing, log 123", requested_by="DC Smith"
    )
    assert (found.plate, found.key_version, found.token) == ("AB12CDE", "k1", tok)
    with pytest.raises(XforceError, match="unknown token"):
        privacy.reidentify(settings.restricted, ledger, "f" * 64, purpose="check", requested_by="DC Smith")
    with pytest.raises(XforceError, match="purpose"):
        privacy.reidentify(settings.restricted, ledger, tok, purpose="   ", requested_by="DC Smith")
    with pytest.raises(XforceError, match="requested-by"):
        privacy.reidentify(settings.restricted, ledger, tok, purpose="check", requested_by="")
    with pytest.raises(XforceError, match="not a plate token"):  # a clear plate typed by mistake
        privacy.reidentify(settings.restricted, ledger, "XY34 FGH", purpose="check", requested_by="PC Jones")
    rows = ledger.reidentifications()
    assert [r["outcome"] for r in rows] == ["disclosed", "unknown_token", "refused", "refused", "malformed_token"]
    first = rows[0]
    assert (first["requested_by"], first["purpose"], first["token"], first["key_version"]) == (
        "DC Smith",
        "Op Lepus: hare coursing, log 123",
        tok,
        "k1",
    )
    assert first["audit_id"] == found.audit_id and first["at"].startswith(str(datetime.now(UTC).year))
    assert rows[1]["token"] == "f" * 64 and rows[4]["token"] is None
    assert [r["outcome"] for r in ledger.reidentifications(tok)] == ["disclosed", "refused", "refused"]
    # Nothing the audit wrote holds a plate, not even the one typed as a token.
    dump = "\n".join(sqlite3.connect(settings.ledger_url.split(":///", 1)[1]).iterdump())
    assert "XY34" not in dump and "AB12CDE" not in dump


@pytest.mark.usefixtures("durable")
def test_cli_reidentify_and_audit(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    tok, _ = _seed_map(settings)
    argv = ["reidentify", "--token", tok, "--purpose", "seizure follow-up", "--requested-by", "PS Brown"]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip() == "AB12CDE"
    assert cli.main(["reidentify", "--token", "0" * 64, "--purpose", "check", "--requested-by", "PS Brown"]) == 2
    assert "unknown token" in capsys.readouterr().err
    assert cli.main(["audit"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t")[:4] == ["at", "requested_by", "os_user", "outcome"]
    assert [line.split("\t")[3] for line in out[1:]] == ["disclosed", "unknown_token"]
    assert "seizure follow-up" in out[1] and "AB12CDE" not in "\n".join(out)
    with pytest.raises(SystemExit):  # --purpose is required by the command line itself
        cli.main(["reidentify", "--token", tok, "--requested-by", "PS Brown"])


# ------------------------------------------------------------------------------ key rotation
def _write_partitions(settings: Settings) -> dict[str, list[str | None]]:
    """Curated and quarantine partitions under k1, with their k1 map."""
    curated, quarantine = Zone(settings.curated), Zone(settings.quarantine)
    layout = {
        "dataset=anpr_reads/date=2026-10-24/force=norfolk/part-0.parquet": ["AB12CDE", "XY34FGH", None],
        "dataset=anpr_reads/date=2026-10-25/force=kent/part-0.parquet": ["AB12CDE", "KL56MNO"],
    }
    plates_of: dict[str, list[str | None]] = {}
    for rel, plates in layout.items():
        night, force = rel.split("/")[1][5:], rel.split("/")[2][6:]
        t = _anpr(plates, K1, "k1", force)
        curated.write_bytes(rel, privacy._parquet_bytes(t))
        q = t.append_column("reason", pa.array(["bad_plate"] * t.num_rows)).append_column(
            "detail", pa.nulls(t.num_rows, pa.string())
        )
        quarantine.write_bytes(rel, privacy._parquet_bytes(q.cast(quarantine_schema("anpr_reads"))))
        arr = pa.array(plates, pa.string())
        privacy.write_map(settings.restricted, "k1", "anpr_reads", night, force, arr, tokenise(arr, K1))
        plates_of[rel] = plates
    return plates_of


def test_rotation_retokenises_every_partition_and_retires_the_old_map(settings: Settings, ledger: Ledger) -> None:
    plates_of = _write_partitions(settings)
    zones = {"curated": settings.curated, "quarantine": settings.quarantine, "restricted": settings.restricted}
    before = {rel: Zone(settings.curated).read_parquet(rel) for rel in plates_of}
    old_token = before[next(iter(plates_of))].column("plate_token")[0].as_py()
    report = privacy.rotate_key(zones, ledger, new_version="k2", new_key=K2)
    assert not report.failed and len(report.partitions) == 4 and report.retired == ["k1"]
    for zone in (settings.curated, settings.quarantine):
        for rel, plates in plates_of.items():
            t = Zone(zone).read_parquet(rel)
            assert t.column("plate_token").to_pylist() == tokenise(pa.array(plates, pa.string()), K2).to_pylist()
            assert t.column("plate_key_version").to_pylist() == ["k2" if p else None for p in plates]
            if zone == settings.curated:  # nothing but the token columns changed
                assert t.schema == before[rel].schema
                assert t.drop_columns(["plate_token", "plate_key_version"]).equals(
                    before[rel].drop_columns(["plate_token", "plate_key_version"])
                )
    # The same vehicle links across partitions and with anything tokenised afresh under k2.
    new_ab = tokenise(pa.array(["AB12CDE"]), K2)[0].as_py()
    assert privacy.lookup(settings.restricted, new_ab) == ("AB12CDE", "k2")
    assert privacy.lookup(settings.restricted, old_token) is None  # old map retired
    assert privacy.map_versions(settings.restricted) == ["k2"]
    events = [e for e in ledger.events() if e["event"] == "key_rotated"]
    assert len(events) == 4 and all(json.loads(e["detail"])["to"] == "k2" for e in events)
    # Resumable and idempotent: a second run finds nothing to do.
    again = privacy.rotate_key(zones, ledger, new_version="k2", new_key=K2)
    assert (again.partitions, again.failed, again.skipped) == ([], [], 4)


def test_rotation_leaves_a_partition_alone_when_its_map_is_incomplete(settings: Settings, ledger: Ledger) -> None:
    plates_of = _write_partitions(settings)
    rel = next(iter(plates_of))
    # Lose the map of one partition: its tokens cannot be turned back into plates.
    Zone(settings.restricted).delete_dir(privacy.map_dir("k1", "anpr_reads", "2026-10-24", "norfolk"))
    orphan = Zone(settings.curated).read_parquet(rel)
    zones = {"curated": settings.curated, "quarantine": settings.quarantine, "restricted": settings.restricted}
    report = privacy.rotate_key(zones, ledger, new_version="k2", new_key=K2)
    assert {(f["zone"], f["path"]) for f in report.failed} == {("curated", rel), ("quarantine", rel)}
    assert Zone(settings.curated).read_parquet(rel).equals(orphan)  # untouched, still k1
    assert report.retired == [] and sorted(privacy.map_versions(settings.restricted)) == ["k1", "k2"]


def test_cli_rotate_key_uses_the_configured_key_and_refuses_a_relabelled_one(
    settings: Settings, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    plates_of = _write_partitions(settings)
    monkeypatch.setenv("XFORCE_HMAC_KEY", K2.decode())
    monkeypatch.setenv("XFORCE_HMAC_KEY_VERSION", "k2")
    assert cli.main(["rotate-key"]) == 0
    out = capsys.readouterr().out
    assert "rotated 4 partition(s) to key version k2" in out and "retired the token map of key version(s) k1" in out
    rel = next(iter(plates_of))
    assert set(Zone(settings.curated).read_parquet(rel).column("plate_key_version").drop_null().to_pylist()) == {"k2"}
    # Another key under the same label k2 is refused before anything is touched.
    monkeypatch.setenv("XFORCE_HMAC_KEY", "a-third-key-under-an-old-label-0000")
    before = Zone(settings.curated).read_parquet(rel)
    assert cli.main(["rotate-key"]) == 2
    assert "not the key of version 'k2'" in capsys.readouterr().err
    assert Zone(settings.curated).read_parquet(rel).equals(before)


# ------------------------------------------------------------------------------ minimisation
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Seen AB12 CDE near the farm", "Seen [plate] near the farm"),
        ("ab12cde", "[plate]"),
        ("vehicles AB12CDE, XY34 FGH", "vehicles [plate], [plate]"),
        ("old plates Y123 ABC and ABC 123D", "old plates [plate] and [plate]"),
        ("call 07700 900123 or (01473) 613500", "call [phone] or [phone]"),
        ("+44 7700 900123 / +44 (0)20 7946 0018 / 0044 7700 900123", "[phone] / [phone] / [phone]"),
        ("Phone 01223 123 456 or 07700-900-123.", "Phone [phone] or [phone]."),
        # road numbers are plate-shaped (A14 is a valid dateless registration): redacted too
        ("On or near A14 junction 3, B1085, M11", "On or near [plate] junction 3, [plate], [plate]"),
        (
            "LSOA E01000001 at 25/10/2026 01:30, ref 12345678901, 999",
            "LSOA E01000001 at 25/10/2026 01:30, ref 12345678901, 999",
        ),
        ("camera NOR-CAM-0001 grid 612345 298765", "camera NOR-CAM-0001 grid 612345 298765"),
        ("AB12CDEFG xAB12CDEF", "AB12CDEFG xAB12CDEF"),  # longer than a plate
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_real_police_uk_locations_survive_redaction(police_uk: Path) -> None:
    """police.uk's public Location strings carry no plates or phone numbers: redaction alters only
    their road numbers (``On or near A14``), which are plate-shaped."""
    seen: set[str] = set()
    for path in sorted(police_uk.glob("*.csv")):
        with path.open(encoding="utf-8") as fh:
            seen.update(row["Location"] for row in csv.DictReader(fh))
    assert len(seen) > 1000
    roads = re.compile(r"(?<![A-Za-z0-9])[ABM][0-9]{1,4}(?![A-Za-z0-9])")
    assert [loc for loc in seen if redact_text(loc) != roads.sub("[plate]", loc)] == []
    assert sum(redact_text(loc) == loc for loc in seen) > len(seen) - 300


# ------------------------------------------------------------------------- least privilege
def _allowed(doc: dict, action: str, bucket: str, key: str | None = None, prefix: str | None = None) -> bool:
    """IAM semantics for Allow-only documents: some statement names the action and the resource."""
    resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")
    for st in doc["Statement"]:
        if st["Effect"] != "Allow" or not any(fnmatch.fnmatchcase(action, a) for a in st["Action"]):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in st["Resource"]):
            continue
        cond = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
        if cond is not None and not (prefix is not None and any(fnmatch.fnmatchcase(prefix, c) for c in cond)):
            continue
        return True
    return False


def test_policies_give_each_role_only_its_own_prefixes(settings: Settings) -> None:
    registry = load_registry(settings.config_dir)
    docs = policies.generate(registry, settings)
    assert set(docs) == {f"xforce-force-{f}" for f in registry.forces} | {
        "xforce-analyst",
        "xforce-pipeline",
        "xforce-reidentify",
    }
    for doc in docs.values():
        assert doc["Version"] == "2012-10-17"
        assert all(a.startswith("s3:") and "*" not in a for st in doc["Statement"] for a in st["Action"])
    obj = "incidents/2026-10-25/incidents.csv"
    for force in registry.forces:
        d = docs[f"xforce-force-{force}"]
        assert _allowed(d, "s3:PutObject", "xforce", f"landing/{force}/{obj}")
        assert _allowed(d, "s3:ListBucket", "xforce", prefix=f"landing/{force}/")
        for other in registry.forces:
            if other != force:
                assert not _allowed(d, "s3:PutObject", "xforce", f"landing/{other}/{obj}")
                assert not _allowed(d, "s3:ListBucket", "xforce", prefix=f"landing/{other}/")
        assert not _allowed(d, "s3:PutObject", "xforce", f"landing/{force}x/{obj}")  # no prefix overlap
        assert not _allowed(d, "s3:GetObject", "xforce", f"landing/{force}/{obj}")
        for zone in ("raw", "curated", "quarantine", "restricted", "staging", "docs"):
            assert not _allowed(d, "s3:PutObject", "xforce", f"{zone}/{force}/{obj}")
    part = "dataset=anpr_reads/date=2026-10-25/force=kent/part-0.parquet"
    analyst = docs["xforce-analyst"]
    assert _allowed(analyst, "s3:GetObject", "xforce", f"curated/{part}")
    assert _allowed(analyst, "s3:ListBucket", "xforce", prefix="curated/dataset=anpr_reads/")
    for zone in ("landing", "raw", "quarantine", "restricted", "staging", "docs"):
        assert not _allowed(analyst, "s3:GetObject", "xforce", f"{zone}/{part}")
        assert not _allowed(analyst, "s3:ListBucket", "xforce", prefix=f"{zone}/")
    assert not _allowed(analyst, "s3:PutObject", "xforce", f"curated/{part}")
    assert not _allowed(analyst, "s3:DeleteObject", "xforce", f"curated/{part}")
    pipe = docs["xforce-pipeline"]
    assert _allowed(pipe, "s3:GetObject", "xforce", "landing/kent/anpr_reads/2026-10-25/anpr_reads.csv")
    assert not _allowed(pipe, "s3:PutObject", "xforce", "landing/kent/anpr_reads/2026-10-25/anpr_reads.csv")
    for zone in ("raw", "staging", "curated", "quarantine", "docs", "restricted"):
        assert _allowed(pipe, "s3:PutObject", "xforce", f"{zone}/{part}")
        assert _allowed(pipe, "s3:DeleteObject", "xforce", f"{zone}/{part}")
    assert not _allowed(pipe, "s3:PutObject", "xforce", f"elsewhere/{part}")
    reid = docs["xforce-reidentify"]
    assert _allowed(reid, "s3:GetObject", "xforce", "restricted/token_map/key_version=k1/x.parquet")
    assert not _allowed(reid, "s3:GetObject", "xforce", "raw/kent/anpr_reads/2026-10-25/x/anpr_reads.csv")
    assert not _allowed(reid, "s3:GetObject", "xforce", f"curated/{part}")


def test_policies_follow_s3_zone_settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XFORCE_CURATED_URI", "s3://shared-data/curated/v1")
    monkeypatch.setenv("XFORCE_LANDING_URI", "s3://drop")
    s = Settings.from_env()
    docs = policies.generate(load_registry(s.config_dir), s)
    assert _allowed(docs["xforce-analyst"], "s3:GetObject", "shared-data", "curated/v1/dataset=x/part-0.parquet")
    assert not _allowed(docs["xforce-analyst"], "s3:GetObject", "xforce", "curated/dataset=x/part-0.parquet")
    assert _allowed(docs["xforce-force-kent"], "s3:PutObject", "drop", "kent/incidents/2026-10-25/i.csv")
    assert not _allowed(docs["xforce-force-kent"], "s3:PutObject", "drop", "essex/incidents/2026-10-25/i.csv")


def test_committed_policy_files_match_the_force_registry(settings: Settings, tmp_path: Path) -> None:
    """deploy/minio/policies is generated: regenerate with `xforce policies --out deploy/minio/policies`."""
    fresh = tmp_path / "policies"
    assert cli.main(["policies", "--out", str(fresh)]) == 0
    committed = PROJECT_ROOT / "deploy" / "minio" / "policies"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in committed.iterdir())
    for name in names:
        assert (fresh / name).read_text() == (committed / name).read_text(), name


# ------------------------------------------------------------------------------ known leak
def test_a_header_less_extract_does_not_put_a_plate_in_the_error() -> None:
    import io

    from xforce.errors import ExtractError
    from xforce.intake.readers import read_extract

    registry = load_registry(str(PROJECT_ROOT / "config"))
    body = b"R1,2026-11-27T01:00:00Z,NOR-CAM-0001,52.6,1.3,AB12 CDE\n"
    with pytest.raises(ExtractError) as err:
        list(read_extract(lambda: io.BytesIO(body), registry.contract("norfolk", "anpr_reads"), registry))
    assert "AB12" not in str(err.value)
