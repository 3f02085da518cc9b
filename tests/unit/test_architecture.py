"""The package's shape: imports flow one way, from the top (Airflow glue, CLI) down to the foundations.

Every import of an ``xforce`` module counts, wherever it is written: at module level, inside a
function (lazy) or under ``TYPE_CHECKING``. A lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "plugins" / "xforce"

#: Lowest first. A module may import its own layer and the layers below, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "xforce",
        "xforce.errors",
        "xforce.datasets",
        "xforce.schemas",
        "xforce.hashing",
        "xforce.settings",
        "xforce.redaction",
        "xforce.html",
        "xforce.outcome",
        "xforce.dictionary",
    ),
    ("xforce.store",),
    ("xforce.intake",),
    ("xforce.privacy",),
    ("xforce.context",),
    ("xforce.quality",),
    ("xforce.exchange",),
    ("xforce.reports",),
    ("xforce.airflow", "xforce.cli", "xforce.cli_console"),
)
#: The one import of the developer tools from the runtime package: ``xforce generate`` (lazy, guarded).
DEV_TOOLS_ALLOWED = {("xforce.cli", "xforce_tools.generate")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The xforce (and xforce_tools) modules ``name`` imports, anywhere in the file."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for a in node.names:  # ``from xforce.quality import gxworker`` imports the module xforce.quality.gxworker
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return {m for m in found if m.split(".")[0] in ("xforce", "xforce_tools") and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    best = (-1, -1)  # (length of the matching prefix, layer)
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), i)
    if best[1] < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return best[1]


def test_every_module_has_a_layer_and_a_docstring() -> None:
    for name, path in MODULES.items():
        _layer(name)
        assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), f"{name} has no module docstring"


def test_imports_never_point_up_a_layer() -> None:
    upward = []
    for name, targets in GRAPH.items():
        for target in targets:
            if target.startswith("xforce_tools"):
                if (name, target) not in DEV_TOOLS_ALLOWED:
                    upward.append(f"{name} -> {target} (developer tools)")
            elif _layer(target) > _layer(name):
                upward.append(f"{name} (layer {_layer(name)}) -> {target} (layer {_layer(target)})")
    assert upward == []


def test_no_import_cycle() -> None:
    internal = {n: {t for t in ts if t in MODULES} for n, ts in GRAPH.items()}
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(internal[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(internal):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_the_checks_see_lazy_and_type_only_imports() -> None:
    """The graph is read from the source, so a cycle hidden in a function or TYPE_CHECKING still shows."""
    assert "xforce.context" in GRAPH["xforce.quality.checks"]  # only under TYPE_CHECKING there
    assert "xforce.quality.deadlines" in GRAPH["xforce.airflow.callbacks"]  # only inside a function there


def test_airflow_is_imported_only_by_the_airflow_glue() -> None:
    """Outside ``xforce.airflow`` the stages know nothing of Airflow (except reading a Connection at the edge)."""
    edge = {"xforce.settings", "xforce.store.connections", "xforce.cli"}
    offenders = []
    for name, path in MODULES.items():
        if name.startswith("xforce.airflow") or name in edge:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [f"{name}: {n}" for n in names if n == "airflow" or n.startswith("airflow.")]
    assert offenders == []


def test_one_module_owns_the_zone_layout() -> None:
    """Hive partition paths (``dataset=…/date=…``) are spelled in :mod:`xforce.store.layout` only.

    (``xforce.airflow.assets`` names the curated datasets as Asset URIs, not zone paths, and stays
    light enough for DAG parsing: it does not import the layout, whose zones need pyarrow.)
    """
    spelled = [
        name
        for name, path in MODULES.items()
        if name not in ("xforce.store.layout", "xforce.airflow.assets")
        and ("dataset={" in (text := path.read_text(encoding="utf-8")) or "/date={" in text)
    ]
    assert spelled == []


def test_the_ledger_sql_lives_in_the_ledger() -> None:
    offenders = [
        name
        for name, path in MODULES.items()
        if name != "xforce.store.ledger"
        and any(
            t in path.read_text(encoding="utf-8")
            for t in ("xforce_extracts", "xforce_events", "xforce_reidentifications", "ledger.engine")
        )
    ]
    assert offenders == []
