"""The README's "Reading the dataset" snippets, run as written: locally, and from S3 (a moto server on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import io
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import need_service

from xforce.schemas import CANONICAL

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FORCES = ("norfolk", "kent")
NIGHTS = ("2026-11-26", "2026-11-27")
ROWS = {"incidents": 3, "anpr_reads": 5, "seizures": 2}  # per force and night


def snippets() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Reading the dataset\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def _table(dataset: str, force: str, night: str, n: int) -> pa.Table:
    schema = CANONICAL[dataset]
    t = datetime.fromisoformat(f"{night}T21:00:00").replace(tzinfo=UTC)
    values = {
        "record_id": [f"{force}:{dataset}-{night}-{i}" for i in range(n)],
        "force_code": [force] * n,
        "source_file": ["x.csv"] * n,
        "source_record": list(range(1, n + 1)),
        "occurred_at": [t] * n,
        "read_at": [t] * n,
        "seized_at": [t] * n,
        "time_precision": ["exact"] * n,
        "location_precision": ["exact"] * n,
        "offence": ["hare_coursing"] * n,
        "camera_id": ["CAM-1"] * n,
        "plate_token": ["ab" * 32] * n,
        "incident_record_id": [f"{force}:i"] * n,
        "item_type": ["dog"] * n,
    }
    return pa.table({f.name: pa.array(values.get(f.name, [None] * n), f.type) for f in schema}, schema=schema)


def write_curated(put: object) -> None:
    for dataset, n in ROWS.items():
        for night in NIGHTS:
            for force in FORCES:
                buf = io.BytesIO()
                pq.write_table(_table(dataset, force, night, n), buf)
                put(f"curated/dataset={dataset}/date={night}/force={force}/part-0.parquet", buf.getvalue())  # type: ignore[operator]
            put(f"curated/dataset={dataset}/date={night}/_manifest.json", b"{}")  # type: ignore[operator]


def run(code: str) -> dict[str, object]:
    ns: dict[str, object] = {"__name__": "readme"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), ns)
    ns["_stdout"] = out.getvalue()
    return ns


def check(ns: dict[str, object]) -> None:
    per = len(FORCES) * len(NIGHTS)
    anpr = ns["anpr"]
    assert anpr.num_rows == ROWS["anpr_reads"] * per  # type: ignore[attr-defined]
    assert set(anpr.column("force").to_pylist()) == set(FORCES)  # type: ignore[attr-defined]
    incidents = ns["incidents"]
    assert len(incidents) == ROWS["incidents"] * per  # type: ignore[arg-type]
    assert set(incidents["date"].astype(str)) == set(NIGHTS)  # type: ignore[index]
    by_force = ns["by_force"].fetchall()  # type: ignore[attr-defined]
    assert by_force == [(f, ROWS["anpr_reads"] * len(NIGHTS)) for f in sorted(FORCES)]
    assert "kent" in str(ns["_stdout"])  # .show() printed the table
    seizures = ns["seizures"]
    assert seizures.height == ROWS["seizures"] * per  # type: ignore[attr-defined]
    assert sorted(seizures["force"].unique().to_list()) == sorted(FORCES)  # type: ignore[index]


def test_readme_has_local_and_s3_snippets() -> None:
    blocks = snippets()
    assert len(blocks) == 2
    assert "s3" not in blocks[0].lower() and "s3" in blocks[1].lower()
    for lib in ("pyarrow", "pandas", "duckdb", "polars"):
        assert all(lib in b for b in blocks), lib


def test_local_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def put(rel: str, data: bytes) -> None:
        path = tmp_path / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    write_curated(put)
    # a publisher's temporary file in the middle of a replace must not be read
    put(f"curated/dataset=anpr_reads/date={NIGHTS[0]}/force=kent/.part-0.parquet.0123456789ab.tmp", b"partial")
    monkeypatch.chdir(tmp_path)
    check(run(snippets()[0]))


def test_s3_snippet(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover - moto is a dev dependency
        need_service(False, "moto is not installed (dev extra)")
        return
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for k, v in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "eu-west-2",
            "AWS_REGION": "eu-west-2",
            "AWS_ENDPOINT_URL": f"http://{host}:{port}",
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            monkeypatch.setenv(k, v)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        s3.create_bucket(Bucket="xforce-exchange", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
        write_curated(lambda rel, data: s3.put_object(Bucket="xforce-exchange", Key=rel, Body=data))
        check(run(snippets()[1]))
    finally:
        server.stop()
