"""The docker-compose deployment is valid and says what the issue asks (checked without an engine).

``docker-compose config`` (Debian's docker-compose 1.29 needs no Docker engine for it) parses,
merges and interpolates the file; the test then reads the result. The least-privilege checks read
the YAML themselves (no docker-compose needed): the MinIO policies compose applies are the ones
``xforce policies`` generates for compose's own zones, and each role may do only its part there.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import need_service

from xforce import cli
from xforce.privacy import policies

pytestmark = pytest.mark.dags

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_DIR = ROOT / "deploy" / "env"
SERVICES = {
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
AIRFLOW = {s for s in SERVICES if s.startswith("airflow-")}
#: Settings that are, or carry, a secret (URLs with a password in them too).
SECRET = re.compile(
    r"(PASSWORD|SECRET|SECRET_KEY|FERNET_KEY|HMAC_KEY|ACCESS_KEY_ID|ACCESS_KEY|SQL_ALCHEMY_CONN|BROKER_URL"
    r"|RESULT_BACKEND|LEDGER_URL)$"
)
#: Access key ids name an account; they are not secret.
NOT_SECRET = {"xforce-pipeline", "xforce-analyst"}
#: The policies compose applies (mounted into minio-init), generated from this very file.
COMPOSE_POLICIES = ROOT / "deploy" / "minio" / "compose"
OBJECT_ACTIONS = ("s3:GetObject", "s3:PutObject", "s3:DeleteObject")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict:
    exe = shutil.which("docker-compose")
    need_service(exe is not None, "docker-compose not installed (apt-get install docker-compose)")
    env_dir = tmp_path_factory.mktemp("env")
    for example in ENV_DIR.glob("*.env.example"):
        shutil.copy(example, env_dir / example.name.removesuffix(".example"))
    out = subprocess.run(
        [str(exe), "--project-directory", str(ROOT), "-f", str(COMPOSE), "config"],
        env={"PATH": "/usr/bin:/bin", "XFORCE_ENV_DIR": str(env_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_every_service_of_the_deployment_is_there(config: dict) -> None:
    assert set(config["services"]) == SERVICES


def test_airflow_runs_the_image_built_from_the_lock(config: dict) -> None:
    for name in AIRFLOW:
        svc = config["services"][name]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile", name
        env = svc.get("environment") or {}
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in env, name
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
        assert all(env[f"XFORCE_{z}_URI"].startswith("s3://") for z in ("LANDING", "RAW", "CURATED", "QUARANTINE"))
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert "--constraint requirements.lock" in dockerfile and "COPY pyproject.toml requirements.lock" in dockerfile
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in str(yaml.safe_load(COMPOSE.read_text(encoding="utf-8")))
    commands = {name: " ".join(config["services"][name]["command"]) for name in AIRFLOW - {"airflow-init"}}
    assert commands == {
        "airflow-apiserver": "airflow api-server --port 8080",
        "airflow-scheduler": "airflow scheduler",
        "airflow-dag-processor": "airflow dag-processor",
        "airflow-triggerer": "airflow triggerer",
        "airflow-worker": "airflow celery worker",
    }
    assert "airflow db migrate" in " ".join(config["services"]["airflow-init"]["command"])


def test_minio_creates_the_zone_buckets_at_start(config: dict) -> None:
    script = " ".join(config["services"]["minio-init"]["entrypoint"])
    for bucket in ("xforce-landing", "xforce-raw", "xforce-curated"):
        assert bucket in script
    assert "mc mb --ignore-existing" in script and "mc encrypt set sse-s3" in script
    worker = config["services"]["airflow-worker"]["depends_on"]
    assert worker["minio-init"]["condition"] == "service_completed_successfully"
    assert worker["airflow-init"]["condition"] == "service_completed_successfully"


def test_no_secret_is_written_in_the_compose_file_or_committed() -> None:
    raw = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    for name, svc in raw["services"].items():
        env = svc.get("environment") or {}
        leaked = [k for k in env if SECRET.search(k)]
        assert not leaked, (name, leaked)
        assert svc.get("env_file") or "<<" in svc, name
    examples = sorted(ENV_DIR.glob("*.env.example"))
    names = {"airflow.env.example", "postgres.env.example", "redis.env.example", "minio.env.example"}
    assert {p.name for p in examples} == names
    for example in examples:
        for line in example.read_text(encoding="utf-8").splitlines():
            if line and not line.startswith("#") and SECRET.search(line.split("=", 1)[0]):
                value = line.split("=", 1)[1]
                assert "change-me" in value or value in NOT_SECRET, (example.name, line.split("=")[0])
    ignored = subprocess.run(
        ["git", "-C", str(ROOT), "check-ignore", "-q", "deploy/env/airflow.env"], capture_output=True, timeout=30
    )
    assert ignored.returncode == 0, "deploy/env/*.env must be git-ignored"
    ports = [p for svc in raw["services"].values() for p in svc.get("ports", [])]
    assert ports and all(str(p).startswith("127.0.0.1:") for p in ports)


# ------------------------------------------------------------------ least privilege as shipped
@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    """The compose file as YAML (anchors and merge keys resolved), without docker-compose."""
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def zones(raw_compose: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Zone -> (bucket, prefix), read here from compose's Airflow environment (not by the code under test)."""
    env = raw_compose["services"]["airflow-worker"]["environment"]
    out = {}
    for name in policies.ZONE_NAMES:
        uri = env[f"XFORCE_{name.upper()}_URI"]
        assert uri.startswith("s3://"), name
        bucket, _, prefix = uri[5:].partition("/")
        out[name] = (bucket, prefix.strip("/"))
    return out


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in COMPOSE_POLICIES.glob("xforce-*.json")}


def _init_script(raw_compose: dict[str, Any]) -> str:
    return "\n".join(raw_compose["services"]["minio-init"]["entrypoint"])


def _matches(value: str, patterns: list[str] | str) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in ([patterns] if isinstance(patterns, str) else patterns))


def _applies(st: dict[str, Any], action: str, resource: str, prefix: str | None) -> bool:
    if not _matches(action, st["Action"]) or not _matches(resource, st["Resource"]):
        return False
    for operator, keys in (st.get("Condition") or {}).items():
        for key, values in keys.items():
            # Only the condition the generator writes is understood; any other fails closed for an Allow.
            if (operator, key) != ("StringLike", "s3:prefix") or prefix is None or not _matches(prefix, values):
                return False
    return True


def allowed(doc: dict[str, Any], action: str, bucket: str, key: str | None = None, prefix: str | None = None) -> bool:
    """IAM semantics for one request: an explicit Deny wins, else some Allow must apply, else denied."""
    resource = f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")
    hits = [st for st in doc["Statement"] if _applies(st, action, resource, prefix)]
    return any(st["Effect"] == "Allow" for st in hits) and not any(st["Effect"] == "Deny" for st in hits)


def _key(loc: tuple[str, str], rel: str) -> str:
    return "/".join(p for p in (loc[1], rel) if p)


def test_committed_compose_policies_are_what_xforce_policies_generates_for_the_compose_file(
    tmp_path: Path, zones: dict[str, tuple[str, str]]
) -> None:
    """Regenerate with `xforce policies --compose docker-compose.yaml --out deploy/minio/compose`."""
    assert policies.compose_zone_uris(COMPOSE) == {
        z: f"s3://{b}" + (f"/{p}" if p else "") for z, (b, p) in zones.items()
    }
    fresh = tmp_path / "compose"
    assert cli.main(["policies", "--compose", str(COMPOSE), "--out", str(fresh)]) == 0
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in COMPOSE_POLICIES.iterdir())
    for name in names:
        assert (fresh / name).read_text() == (COMPOSE_POLICIES / name).read_text(), name


def test_the_policies_name_exactly_the_buckets_compose_creates(
    raw_compose: dict[str, Any], zones: dict[str, tuple[str, str]], docs: dict[str, dict[str, Any]]
) -> None:
    named = {
        arn.removeprefix("arn:aws:s3:::").split("/", 1)[0]
        for doc in docs.values()
        for st in doc["Statement"]
        for arn in st["Resource"]
    }
    created = re.search(r"for b in ([^;]+); do\s+mc mb --ignore-existing", _init_script(raw_compose))
    assert created is not None
    assert named == {b for b, _ in zones.values()} == set(created.group(1).split())
    for doc in docs.values():
        for st in doc["Statement"]:
            assert st["Effect"] == "Allow" and all(a.startswith("s3:") and "*" not in a for a in st["Action"])
            assert not any(_matches(r, "arn:aws:s3:::\\*") for r in st["Resource"])


def test_each_role_may_do_only_its_part_in_the_compose_zones(
    zones: dict[str, tuple[str, str]], docs: dict[str, dict[str, Any]]
) -> None:
    forces = sorted(n.removeprefix("xforce-force-") for n in docs if n.startswith("xforce-force-"))
    assert set(docs) == {f"xforce-force-{f}" for f in forces} | {
        "xforce-analyst",
        "xforce-pipeline",
        "xforce-reidentify",
    }
    assert len(forces) == 7
    obj = "dataset=anpr_reads/date=2026-10-25/force=kent/part-0.parquet"

    def may(role: str, action: str, zone: str, rel: str = obj) -> bool:
        return allowed(docs[role], action, zones[zone][0], _key(zones[zone], rel))

    def may_list(role: str, zone: str, rel: str = "") -> bool:
        return allowed(docs[role], "s3:ListBucket", zones[zone][0], prefix=_key(zones[zone], rel))

    # The pipeline: every zone but landing read-write; landing read and delete (retention), never written.
    for zone in zones:
        assert may_list("xforce-pipeline", zone)
        assert may("xforce-pipeline", "s3:GetObject", zone) and may("xforce-pipeline", "s3:DeleteObject", zone)
        assert may("xforce-pipeline", "s3:PutObject", zone) is (zone != "landing"), zone
    # Analysts: curated and the reports built from it, read only; never raw, staging, restricted or the rest.
    for zone in zones:
        readable = zone in ("curated", "reports")
        assert may("xforce-analyst", "s3:GetObject", zone) is readable, zone
        assert may_list("xforce-analyst", zone) is readable, zone
        assert not may("xforce-analyst", "s3:PutObject", zone) and not may("xforce-analyst", "s3:DeleteObject", zone)
    # Each force: write (only) its own landing folder, list it; nothing else anywhere.
    for force in forces:
        role, mine = f"xforce-force-{force}", f"{force}/anpr_reads/2026-10-25/anpr_reads.csv"
        assert may(role, "s3:PutObject", "landing", mine) and may_list(role, "landing", f"{force}/")
        assert not may(role, "s3:GetObject", "landing", mine) and not may(role, "s3:DeleteObject", "landing", mine)
        for other in forces:
            if other != force:
                assert not may(role, "s3:PutObject", "landing", f"{other}/anpr_reads/2026-10-25/anpr_reads.csv")
                assert not may_list(role, "landing", f"{other}/")
        for zone in set(zones) - {"landing"}:
            assert not any(may(role, a, zone, f"{force}/{obj}") for a in OBJECT_ACTIONS), (role, zone)
    # Re-identification: the token map, read only.
    assert may("xforce-reidentify", "s3:GetObject", "restricted", "token_map/key_version=k1/x.parquet")
    assert not may("xforce-reidentify", "s3:GetObject", "restricted", "other/x.parquet")
    for zone in set(zones) - {"restricted"}:
        assert not any(may("xforce-reidentify", a, zone) for a in OBJECT_ACTIONS), zone
    # No role reaches a bucket compose does not have (the old single `xforce` bucket included).
    for role in docs:
        assert not any(allowed(docs[role], a, "xforce", f"curated/{obj}") for a in OBJECT_ACTIONS), role


def test_minio_init_applies_the_generated_policies_and_the_pipeline_never_gets_readwrite(
    raw_compose: dict[str, Any],
) -> None:
    init = raw_compose["services"]["minio-init"]
    assert "./deploy/minio/compose:/policies:ro" in init["volumes"]
    script = _init_script(raw_compose)
    assert "sh /policies/apply.sh local" in script
    # Users exist before the policies are applied; each gets its own policy.
    assert script.index('mc admin user add local "$$XFORCE_PIPELINE_ACCESS_KEY"') < script.index("apply.sh")
    assert 'attach local xforce-pipeline --user "$$XFORCE_PIPELINE_ACCESS_KEY"' in script
    assert 'attach local xforce-analyst --user "$$XFORCE_ANALYST_ACCESS_KEY"' in script
    assert not re.search(r"attach\s+\S+\s+(readwrite|readonly|writeonly|consoleAdmin)\b", script)
    assert 'detach local readwrite --user "$$XFORCE_PIPELINE_ACCESS_KEY"' in script  # left by older deployments
    assert "|| true" not in script
    # The pipeline's S3 credentials (airflow.env) are the pipeline user's (minio.env).
    env = {
        name: dict(
            line.split("=", 1)
            for line in (ENV_DIR / name).read_text().splitlines()
            if "=" in line and not line.startswith("#")
        )
        for name in ("airflow.env.example", "minio.env.example")
    }
    assert env["airflow.env.example"]["AWS_ACCESS_KEY_ID"] == env["minio.env.example"]["XFORCE_PIPELINE_ACCESS_KEY"]
    assert env["minio.env.example"]["XFORCE_ANALYST_ACCESS_KEY"] == "xforce-analyst"
    apply_sh = (COMPOSE_POLICIES / "apply.sh").read_text(encoding="utf-8")
    assert all(f"{name}" in apply_sh for name in ("xforce-pipeline", "xforce-analyst", "xforce-reidentify"))
