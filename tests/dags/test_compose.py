"""The docker-compose deployment is valid and says what the issue asks (checked without an engine).

``docker-compose config`` (Debian's docker-compose 1.29 needs no Docker engine for it) parses,
merges and interpolates the file; the test then reads the result.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import need_service

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
NOT_SECRET = {"xforce-pipeline"}


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
