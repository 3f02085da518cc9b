"""Installed as the image installs it (issue #17, item 7): the wheel carries its runtime files.

The package is built into a wheel from a copy of the sources (``uv build --wheel --offline``; nothing
is written into the checkout), installed with ``--no-deps`` into a fresh venv, and run from a
temporary folder with no path into the repository: ``xforce generate`` writes one small night for
Norfolk and ``xforce run`` takes it through Airflow (``dag.test()``), the DAGs read from the installed
package. The fresh venv reaches the project's already installed dependencies through a ``.pth`` line
naming the project venv's ``site-packages`` (a directory named that way is only put on ``sys.path``:
its own ``.pth`` files, the editable install's finder among them, are not run), so no dependency is
downloaded or copied.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from contextlib import closing
from pathlib import Path

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
NIGHT = "2026-11-27"
#: What a build needs: the build configuration, the packages and the runtime folders.
SOURCES = ("pyproject.toml", "setup.py", "plugins", "tools", "dags", "sql", "expectations", "config", "schemas")
DATASETS = ("incidents", "anpr_reads", "seizures")
RUNTIME = ("config", "expectations", "sql", "schemas", "dags", "plugins")

SHOW_SETTINGS = """
import json, xforce
from xforce import dictionary
from xforce.airflow.env import airflow_env
from xforce.settings import RUNTIME_ROOT, Settings
s = Settings.from_env()
env = airflow_env(s)
print(json.dumps({
    "package": xforce.__file__, "runtime": str(RUNTIME_ROOT),
    "config": s.config_dir, "expectations": s.expectations_dir, "sql": s.sql_dir,
    "schemas": str(dictionary.SCHEMAS_DIR),
    "dags": env["AIRFLOW__CORE__DAGS_FOLDER"], "plugins": env["AIRFLOW__CORE__PLUGINS_FOLDER"],
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh venv with the wheel installed; ``{"python", "bin", "site", "work"}``."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = base / "dist"
    build = subprocess.run(
        [str(UV), "build", "--wheel", "--offline", "--quiet", "--out-dir", str(dist)],
        cwd=src,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = dist.glob("xforce-*.whl")

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(UV), "pip", "install", "--offline", "--no-deps", "--quiet", "--python", str(python), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    project_site = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "xforce-test-deps.pth").write_text("".join(f"{p}\n" for p in sorted(project_site)), encoding="utf-8")
    # `xforce run` calls the `airflow` beside its interpreter (`airflow db migrate`): as an image has it.
    airflow = venv / "bin" / "airflow"
    airflow.write_text(f"#!{python}\nimport sys\nfrom airflow.__main__ import main\nsys.exit(main())\n")
    airflow.chmod(0o755)
    work = base / "work"
    work.mkdir()
    return {"python": python, "bin": venv / "bin", "site": site, "work": work}


def _env(installed: dict[str, Path], **extra: str) -> dict[str, str]:
    """The environment of a deployment: nothing pointing into the repository."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("XFORCE_", "AIRFLOW", "AWS_", "PYTHON", "VIRTUAL_ENV")) and k != "PATH"
    }
    env["PATH"] = f"{installed['bin']}{os.pathsep}/usr/bin:/bin"
    env.update(
        {
            "XFORCE_DATA_DIR": str(installed["work"] / "data"),
            "XFORCE_HMAC_KEY": "wheel-test-key-not-a-secret-0123",
            "XFORCE_SETTLE_SECONDS": "0",
            "AIRFLOW__API__BASE_URL": "http://127.0.0.1:9",  # no UI answers here
        }
    )
    env.update(extra)
    return env


def _settings(installed: dict[str, Path], **extra: str) -> dict[str, str]:
    out = subprocess.run(
        [str(installed["python"]), "-c", SHOW_SETTINGS],
        cwd=installed["work"],
        env=_env(installed, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])


def test_the_installed_package_finds_its_runtime_files_inside_itself(installed: dict[str, Path]) -> None:
    found = _settings(installed)
    package = installed["site"] / "xforce"
    assert Path(found["package"]) == package / "__init__.py"
    runtime = package / "_runtime"
    assert Path(found["runtime"]) == runtime
    for name in RUNTIME:
        where = Path(found[name])
        assert where == runtime / name, (name, where)
        assert ROOT not in where.parents, (name, where)
    assert (runtime / "sql" / "ledger.sql").read_bytes() == (ROOT / "sql" / "ledger.sql").read_bytes()
    assert (runtime / "config" / "forces.yaml").read_bytes() == (ROOT / "config" / "forces.yaml").read_bytes()
    for sub, pattern in (
        ("config/contracts", "*.yaml"),
        ("expectations", "*.json"),
        ("schemas/v1", "*.json"),
        ("sql/reports", "*.sql"),
        ("dags", "*.py"),
    ):
        assert sorted(p.name for p in (runtime / sub).glob(pattern)) == sorted(
            p.name for p in (ROOT / sub).glob(pattern)
        ), sub
    assert (runtime / "plugins" / "xforce_ui_plugin.py").is_file()
    assert not (runtime / "plugins" / "xforce").exists()  # the package itself is not shipped twice


def test_the_source_checkout_reads_the_repositorys_own_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from xforce import dictionary
    from xforce.airflow.env import airflow_env
    from xforce.settings import PROJECT_ROOT, RUNTIME_ROOT, Settings

    assert RUNTIME_ROOT == PROJECT_ROOT == ROOT  # no _runtime/ in plugins/xforce: edits are live
    assert not (ROOT / "plugins" / "xforce" / "_runtime").exists()
    for var in ("XFORCE_CONFIG_DIR", "XFORCE_EXPECTATIONS_DIR", "XFORCE_SQL_DIR"):
        monkeypatch.delenv(var, raising=False)
    s = Settings.from_env()
    assert [s.config_dir, s.expectations_dir, s.sql_dir] == [str(ROOT / n) for n in ("config", "expectations", "sql")]
    assert dictionary.SCHEMAS_DIR == ROOT / "schemas"
    env = airflow_env(s, base={"AIRFLOW_HOME": str(tmp_path / "airflow")})
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(ROOT / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(ROOT / "plugins")


def test_settings_point_an_installed_package_at_a_deployments_own_files(installed: dict[str, Path]) -> None:
    own = installed["work"] / "deployment"
    dirs = {name: own / name for name in ("config", "expectations", "sql", "dags", "plugins")}
    found = _settings(
        installed,
        XFORCE_CONFIG_DIR=str(dirs["config"]),
        XFORCE_EXPECTATIONS_DIR=str(dirs["expectations"]),
        XFORCE_SQL_DIR=str(dirs["sql"]),
        AIRFLOW__CORE__DAGS_FOLDER=str(dirs["dags"]),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(dirs["plugins"]),
    )
    for name, where in dirs.items():
        assert found[name] == str(where), name


def test_one_night_runs_from_the_installed_wheel_outside_the_repository(installed: dict[str, Path]) -> None:
    work, xforce = installed["work"], str(installed["bin"] / "xforce")
    env = _env(installed)
    landing = work / "data" / "landing"
    generate = subprocess.run(
        [xforce, "generate", "--date", NIGHT, "--out", str(landing), "--forces", "norfolk", "--anpr-reads", "200"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generate.returncode == 0, generate.stderr[-3000:]
    run = subprocess.run(
        [xforce, "run", "--date", NIGHT, "--json"], cwd=work, env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["state"] == "success" and result["failed"] == []
    norfolk = {row["dataset"]: row for row in result["table"] if row["force"] == "norfolk"}
    assert {d: row["status"] for d, row in norfolk.items()} == dict.fromkeys(DATASETS, "published")
    assert norfolk["anpr_reads"]["received"] == 200

    # Airflow parsed the DAG from the installed package, not from the repository.
    with closing(sqlite3.connect(work / "data" / "airflow" / "airflow.db")) as db:
        (fileloc,) = db.execute("SELECT fileloc FROM dag WHERE dag_id = 'xforce_nightly'").fetchone()
    assert Path(fileloc) == installed["site"] / "xforce" / "_runtime" / "dags" / "xforce_nightly.py"

    curated = work / "data" / "curated"
    for dataset in DATASETS:
        files = sorted((curated / f"dataset={dataset}" / f"date={NIGHT}" / "force=norfolk").glob("*.parquet"))
        assert files, dataset
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        assert rows == norfolk[dataset]["published"] > 0, dataset
