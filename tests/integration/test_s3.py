"""S3 zones against a real S3 HTTP endpoint (moto's standalone server on 127.0.0.1).

The storage abstraction itself (listing, checksums, copies, metadata, encryption, retries), then
the whole nightly DAG through Airflow on the production path: every zone on S3 (one force's
landing behind its own endpoint and credentials, reached through an Airflow Connection), Airflow's
metadata DB and the run ledger on PostgreSQL. It is compared with the embedded default (local
folders, SQLite) running the same generated night at the same time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError
from services import (
    FlakyProxy,
    S3Server,
    all_objects,
    create_s3_user,
    fresh_database,
    moto_s3,  # noqa: F401  (fixture)
    moto_server,
    subset_config,
    upload_tree,
)

from helpers import check_against_truth, run_night_plain
from xforce import context
from xforce.exchange import publish
from xforce.schemas import DATASETS
from xforce.store import layout
from xforce.store.s3 import S3Config
from xforce.store.zones import Zone
from xforce_tools.generate import generate_night

pytestmark = pytest.mark.integration

NIGHT = "2026-11-27"
#: One force per family keeps the two DAG runs small; Kent also delivers through its own S3 account.
FORCES = ["norfolk", "cambridgeshire", "kent"]
XFORCE = str(Path(sys.executable).parent / "xforce")
HUB_BUCKETS = ("xforce-landing", "xforce-raw", "xforce-staging", "xforce-curated", "xforce-quarantine", "xforce-docs")


def _cfg(server: S3Server, **kw: object) -> S3Config:
    return S3Config(
        endpoint_url=server.endpoint,
        region="eu-west-2",
        access_key=server.access_key,
        secret_key=server.secret_key,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def bucket(moto_s3: S3Server) -> str:  # noqa: F811
    moto_s3.create_bucket("xforce-unit")
    return "xforce-unit"


# ------------------------------------------------------------------------------ the abstraction
def test_zone_on_s3_reads_writes_lists_and_deletes(moto_s3: S3Server, bucket: str) -> None:  # noqa: F811
    zone = Zone(f"s3://{bucket}/zone-a", s3=_cfg(moto_s3))
    zone.write_bytes("kent/anpr_reads/2026-11-27/a.csv", b"id\n1\n")
    zone.write_json("docs/x.json", {"b": 1})
    with zone.parquet_writer("t/part-0.parquet", pa.schema([("x", pa.int64())])) as w:
        w.write_table(pa.table({"x": [1, 2, 3]}))
    assert zone.read_bytes("kent/anpr_reads/2026-11-27/a.csv") == b"id\n1\n"
    assert zone.read_json("docs/x.json") == {"b": 1}
    assert zone.read_parquet("t/part-0.parquet").column("x").to_pylist() == [1, 2, 3]
    assert [f.path for f in zone.list_files("kent", recursive=True)] == ["kent/anpr_reads/2026-11-27/a.csv"]
    assert zone.list_files("kent") == []  # not recursive: nothing directly under kent/
    assert zone.list_dirs("") == ["docs", "kent", "t"] and zone.list_dirs("kent") == ["anpr_reads"]
    assert zone.exists("kent/anpr_reads/2026-11-27/a.csv") and zone.exists("kent") and zone.is_dir("kent")
    assert not zone.exists("kent/x.csv") and not zone.is_dir("nothing")
    import hashlib

    assert zone.sha256("kent/anpr_reads/2026-11-27/a.csv") == hashlib.sha256(b"id\n1\n").hexdigest()
    # Every object was written with server-side encryption requested.
    client = moto_s3.client()
    keys = [k for b, k in all_objects(client) if b == bucket and k.startswith("zone-a/")]
    assert len(keys) == 3
    assert {client.head_object(Bucket=bucket, Key=k).get("ServerSideEncryption") for k in keys} == {"AES256"}
    zone.delete("docs/x.json")
    zone.delete("docs/x.json")  # idempotent
    zone.delete_dir("kent")
    assert zone.list_dirs("") == ["t"]


def test_copy_and_move_keep_encryption_and_metadata(moto_s3: S3Server, bucket: str, tmp_path: Path) -> None:  # noqa: F811
    src = Zone(f"s3://{bucket}/src", s3=_cfg(moto_s3))
    dst = Zone(f"s3://{bucket}/dst", s3=_cfg(moto_s3))
    local = Zone(str(tmp_path / "local"))
    local.write_bytes("f.csv", b"a,b\n1,2\n")
    src.copy_from(local, "f.csv", "in/f.csv", metadata={"sha256": "abc"})  # upload
    dst.copy_from(src, "in/f.csv", "raw/f.csv", metadata={"sha256": "abc"})  # server-side copy
    dst.move_from(src, "in/f.csv", "moved/f.csv")
    local.copy_from(dst, "raw/f.csv", "back/f.csv")  # download
    assert (tmp_path / "local" / "back" / "f.csv").read_bytes() == b"a,b\n1,2\n"
    assert not src.exists("in/f.csv")
    for zone, rel in ((dst, "raw/f.csv"), (dst, "moved/f.csv")):
        head = zone.head(rel)
        assert head is not None and head["sse"] == "AES256"
    assert dst.head("raw/f.csv")["metadata"] == {"sha256": "abc"}  # type: ignore[index]
    assert dst.head("nothing") is None


def test_a_changed_object_is_never_checksummed_or_copied_by_a_stale_listing(
    moto_s3: S3Server,  # noqa: F811
    bucket: str,
) -> None:
    zone = Zone(f"s3://{bucket}/etag", s3=_cfg(moto_s3))
    zone.write_bytes("f.csv", b"version 1\n")
    (listed,) = zone.list_files("")
    zone.write_bytes("f.csv", b"version 2, re-sent while we were reading\n")
    with pytest.raises(ClientError, match=r"Precondition ?Failed"):
        zone.sha256(listed.path, etag=listed.etag)
    with pytest.raises(ClientError, match=r"Precondition ?Failed"):
        zone.copy_from(zone, listed.path, "copy.csv", etag=listed.etag)
    assert not zone.exists("copy.csv")


def test_throttling_and_5xx_are_retried_with_a_bound(moto_s3: S3Server, bucket: str) -> None:  # noqa: F811
    with FlakyProxy(moto_s3.endpoint) as proxy:
        cfg = S3Config(
            endpoint_url=proxy.endpoint,
            region="eu-west-2",
            access_key=moto_s3.access_key,
            secret_key=moto_s3.secret_key,
            max_attempts=3,
        )
        zone = Zone(f"s3://{bucket}/flaky", s3=cfg)
        # Two 503 SlowDown answers, then success: boto3 (the write) and pyarrow (the read) both retry.
        proxy.fail(2, "flaky/a.bin")
        zone.write_bytes("a.bin", b"payload")
        assert proxy.hits["flaky/a.bin"] == 3
        proxy.fail(2, "flaky/a.bin")
        assert zone.read_bytes("a.bin") == b"payload"
        assert proxy.hits["flaky/a.bin"] >= 3
        # An endpoint that keeps failing: the write gives up after exactly max_attempts requests.
        proxy.fail(-1, "flaky/b.bin")
        started = time.monotonic()
        with pytest.raises(ClientError, match="SlowDown"):
            zone.write_bytes("b.bin", b"never")
        assert proxy.hits["flaky/b.bin"] == 3
        assert time.monotonic() - started < 60
        proxy.fail(-1, "flaky/a.bin")
        with pytest.raises(OSError):
            zone.read_bytes("a.bin")
        assert 2 <= proxy.hits["flaky/a.bin"] <= 3  # pyarrow: HEAD/GET, bounded by max_attempts


# ------------------------------------------------------------------------------ the nightly DAG
def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XFORCE_", "AIRFLOW", "AWS_"))}
    env["XFORCE_SETTLE_SECONDS"] = "0"  # files the test writes are landed at once
    env["XFORCE_HMAC_KEY"] = os.environ["XFORCE_HMAC_KEY"]
    return env


def _volatile_free(manifest: dict) -> dict:
    """A manifest without what differs between two runs by nature (run id, times, and the files' checksums,
    since each published file carries its run id in its metadata)."""
    out = {k: v for k, v in manifest.items() if k not in ("run_id", "published_at")}
    volatile = ("received_at", "file_sha256")
    out["forces"] = {f: {k: v for k, v in e.items() if k not in volatile} for f, e in manifest["forces"].items()}
    return out


@pytest.fixture(scope="module")
def nights(moto_s3: S3Server, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    """One generated night run twice through Airflow at the same time: embedded defaults, and production.

    Production: all zones on S3, Airflow's metadata and the ledger on PostgreSQL. Kent delivers into
    its own bucket on another S3 endpoint that checks credentials, reached through the Airflow
    Connection ``xforce_landing_kent``; the hub's own credentials cannot read it.
    """
    base = tmp_path_factory.mktemp("s3-night")
    landing = base / "landing"
    truth = generate_night(date.fromisoformat(NIGHT), landing, anpr_reads=200, seed=11, forces=FORCES)
    shutil.rmtree(landing / "cambridgeshire" / "seizures")  # one missing extract, on both sides
    config = str(subset_config(base / "config", FORCES))
    for b in (*HUB_BUCKETS, "xforce-restricted"):
        moto_s3.create_bucket(b)
    hub = moto_s3.client()
    staged = base / "hub-landing"
    shutil.copytree(landing, staged, ignore=lambda d, names: ["kent"] if Path(d) == landing else [])
    upload_tree(hub, staged, "xforce-landing", "drop")

    local_env = _base_env() | {
        "XFORCE_DATA_DIR": str(base / "local"),
        "AIRFLOW_HOME": str(base / "local-airflow"),
        "XFORCE_CONFIG_DIR": config,
    }
    shutil.copytree(landing, base / "local" / "landing")
    s3_env = (
        _base_env()
        | moto_s3.env()
        | {
            "XFORCE_DATA_DIR": str(base / "s3"),  # the ledger and Airflow's SQLite only
            "AIRFLOW_HOME": str(base / "s3-airflow"),
            "XFORCE_CONFIG_DIR": config,
            "XFORCE_LANDING_URI": "s3://xforce-landing/drop",
            "XFORCE_RAW_URI": "s3://xforce-raw",
            "XFORCE_STAGING_URI": "s3://xforce-staging/runs",
            "XFORCE_CURATED_URI": "s3://xforce-curated/v1",
            "XFORCE_QUARANTINE_URI": "s3://xforce-quarantine",
            "XFORCE_DOCS_URI": "s3://xforce-docs",
            "XFORCE_RESTRICTED_URI": "s3://xforce-restricted",
            "XFORCE_LANDING_URI_KENT": "s3://kent-outbound/xforce",
            "XFORCE_LANDING_CONN_KENT": "xforce_landing_kent",
        }
    )
    with (
        fresh_database("xforce_test_s3_airflow") as airflow_db,
        fresh_database("xforce_test_s3_ledger") as ledger_db,
        moto_server(base, auth_after=3) as kent_server,
    ):
        s3_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = airflow_db.url
        s3_env["XFORCE_LEDGER_URL"] = ledger_db.url
        key, secret = create_s3_user(kent_server, "kent-xforce", ["kent-outbound"])
        kent = kent_server.client(access_key=key, secret_key=secret)
        kent_server.create_bucket("kent-outbound", kent)
        upload_tree(kent, landing / "kent", "kent-outbound", "xforce")
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):  # the hub's own keys do not open it
            kent_server.client().list_objects_v2(Bucket="kent-outbound")
        s3_env["AIRFLOW_CONN_XFORCE_LANDING_KENT"] = json.dumps(
            {
                "conn_type": "aws",
                "login": key,
                "password": secret,
                "extra": {"endpoint_url": kent_server.endpoint, "region_name": "eu-west-2"},
            }
        )
        procs = {
            name: subprocess.Popen(
                [XFORCE, "run", "--date", NIGHT],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for name, env in (("local", local_env), ("s3", s3_env))
        }
        try:
            out = {name: p.communicate(timeout=900)[0] for name, p in procs.items()}
        finally:
            for p in procs.values():
                p.kill()
        kent_objects = kent.list_objects_v2(Bucket="kent-outbound")["KeyCount"]
        with sa.create_engine(airflow_db.url).connect() as conn:
            dag_runs = conn.execute(sa.text("SELECT state FROM dag_run WHERE dag_id = 'xforce_nightly'")).fetchall()
        yield {
            "base": base,
            "truth": truth,
            "out": out,
            "rc": {n: p.returncode for n, p in procs.items()},
            "local_env": local_env,
            "s3_env": s3_env,
            "kent_objects": kent_objects,
            "dag_runs": [r.state for r in dag_runs],
        }


def _ctx(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> context.Context:
    for name in [k for k in os.environ if k.startswith(("XFORCE_", "AWS_"))]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith(("XFORCE_", "AWS_")):
            monkeypatch.setenv(name, value)
    return context.Context.from_env()


def test_both_runs_succeed(nights) -> None:
    for name in ("local", "s3"):
        assert nights["rc"][name] == 0, f"{name} run failed:\n{nights['out'][name][-4000:]}"
        assert "run success" in nights["out"][name]
    assert nights["dag_runs"] == ["success"]  # the production run's metadata is in PostgreSQL
    assert not (nights["base"] / "s3-airflow" / "airflow.db").exists()
    assert (nights["base"] / "local-airflow" / "airflow.db").exists()


def test_s3_run_publishes_exactly_what_the_local_run_publishes(nights, monkeypatch: pytest.MonkeyPatch) -> None:
    local = _ctx(nights["local_env"], monkeypatch)
    local_manifests = {d: local.zones.curated.read_json(f"dataset={d}/date={NIGHT}/_manifest.json") for d in DATASETS}
    local_rows = {
        (zone, d, f): local.zones.named(zone).read_parquet(layout.part_file(d, NIGHT, f))
        for zone in ("curated", "quarantine")
        for d in DATASETS
        for f in local.registry.forces
        if local.zones.named(zone).exists(layout.part_file(d, NIGHT, f))
    }
    s3 = _ctx(nights["s3_env"], monkeypatch)
    assert s3.zones.curated.uri == "s3://xforce-curated/v1"
    assert s3.ledger.engine.dialect.name == "postgresql" and local.ledger.engine.dialect.name == "sqlite"
    for d in DATASETS:
        manifest = s3.zones.curated.read_json(f"dataset={d}/date={NIGHT}/_manifest.json")
        assert json.dumps(_volatile_free(manifest), sort_keys=True) == json.dumps(
            _volatile_free(local_manifests[d]), sort_keys=True
        )
        assert manifest["totals"]["rows_published"] > 0
    assert local_manifests["seizures"]["forces"]["cambridgeshire"]["status"] == "missing"
    assert local_manifests["anpr_reads"]["forces"]["kent"]["status"] == "published"
    s3_keys = set()
    for (zone, d, f), table in local_rows.items():
        rel = layout.part_file(d, NIGHT, f)
        s3_keys.add((zone, d, f))
        assert s3.zones.named(zone).exists(rel), (zone, d, f)
        theirs = s3.zones.named(zone).read_parquet(rel)
        assert theirs.schema == table.schema
        assert theirs.sort_by("source_record").to_pylist() == table.sort_by("source_record").to_pylist(), (zone, d, f)
    assert len(s3_keys) == 2 * 8  # published and quarantined parts of the 8 delivered extracts
    check_against_truth(s3, NIGHT, nights["truth"], skip={("cambridgeshire", "seizures")})
    total = sum(m["totals"]["rows_published"] for m in local_manifests.values())
    assert sum(publish.read_curated(s3.settings.curated, d).num_rows for d in DATASETS) == total


def test_every_object_the_hub_wrote_asked_for_encryption(nights, moto_s3: S3Server) -> None:  # noqa: F811
    client = moto_s3.client()
    written = [(b, k) for b, k in all_objects(client) if b != "xforce-landing" and b != "xforce-unit"]
    assert {b for b, _ in written} >= {"xforce-raw", "xforce-curated", "xforce-quarantine"}
    unencrypted = [
        (b, k) for b, k in written if client.head_object(Bucket=b, Key=k).get("ServerSideEncryption") != "AES256"
    ]
    assert not unencrypted
    assert not [k for b, k in written if b == "xforce-staging"]  # staging cleaned up after publish


def test_kent_was_read_through_its_own_connection_and_kept_in_raw(nights, monkeypatch: pytest.MonkeyPatch) -> None:
    s3 = _ctx(nights["s3_env"], monkeypatch)
    assert not s3.zones.landing.list_dirs("kent")  # never in the hub's landing bucket
    assert nights["kent_objects"] == 3  # Kent's three extracts stayed where Kent put them
    raw = s3.zones.raw
    for d in DATASETS:
        row = s3.ledger.get(NIGHT, "kent", d)
        assert row is not None and row["status"] == "published", (d, row)
        for f in row["files"]:
            head = raw.head(f["raw"])
            assert head is not None and head["metadata"]["sha256"] == f["sha256"] == f["raw"].split("/")[-2]
            assert raw.sha256(f["raw"]) == f["sha256"]


def test_a_second_run_on_s3_replaces_and_never_duplicates(nights, moto_s3: S3Server, monkeypatch) -> None:  # noqa: F811
    """The publish has no rename on S3; re-running the night must still change nothing and add nothing."""
    s3 = _ctx(nights["s3_env"], monkeypatch)
    monkeypatch.setenv("AIRFLOW_CONN_XFORCE_LANDING_KENT", nights["s3_env"]["AIRFLOW_CONN_XFORCE_LANDING_KENT"])
    client = moto_s3.client()

    def published() -> dict[str, object]:
        out: dict[str, object] = {}
        for zone in ("curated", "quarantine"):
            for d in DATASETS:
                for f in s3.registry.forces:
                    rel = layout.part_file(d, NIGHT, f)
                    if s3.zones.named(zone).exists(rel):
                        out[f"{zone}/{rel}"] = (
                            s3.zones.named(zone).read_parquet(rel).sort_by("source_record").to_pylist()
                        )
            out[f"{zone}/objects"] = sorted(k for b, k in all_objects(client) if b == f"xforce-{zone}")
        out["raw"] = sorted(k for b, k in all_objects(client) if b == "xforce-raw")
        out["manifests"] = [
            _volatile_free(s3.zones.curated.read_json(f"dataset={d}/date={NIGHT}/_manifest.json")) for d in DATASETS
        ]
        return out

    before = published()
    run_id = run_night_plain(s3, NIGHT)
    assert published() == before
    again = [e["event"] for e in s3.ledger.events(NIGHT) if e["run_id"] == run_id]
    assert again.count("redelivered_identical") == 8 and again.count("published") == 8
    assert not [k for b, k in all_objects(client) if b == "xforce-staging"]
