"""Build hook: a wheel carries the runtime files the repository keeps at its root.

``dags/``, ``sql/``, ``expectations/``, ``config/``, ``schemas/`` and the Airflow UI plugin
(``plugins/xforce_ui_plugin.py``) stay where they are in the repository; a wheel (``uv build --wheel``,
``pip wheel .``, ``uv pip install .``) gets a copy of each under ``xforce/_runtime/``, where
``xforce.settings.RUNTIME_ROOT`` finds them once installed. An editable install (``make install``)
gets no copy and reads the source tree. Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: Folders copied whole, and single files, into ``xforce/_runtime/<same relative path>``.
RUNTIME_FOLDERS = ("dags", "sql", "expectations", "config", "schemas")
RUNTIME_FILES = ("plugins/xforce_ui_plugin.py",)
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".*")


class BuildPyWithRuntime(build_py):
    """``build_py`` that also copies the runtime folders into the built package."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):  # the editable install reads the source tree
            return
        target = Path(self.build_lib) / "xforce" / "_runtime"
        for name in RUNTIME_FOLDERS:
            source = ROOT / name
            if not source.is_dir():
                raise FileNotFoundError(f"runtime folder {source} is missing: a wheel without it could not run")
            shutil.copytree(source, target / name, ignore=SKIP, dirs_exist_ok=True)
        for name in RUNTIME_FILES:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)


setup(cmdclass={"build_py": BuildPyWithRuntime})
