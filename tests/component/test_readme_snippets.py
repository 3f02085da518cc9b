"""The reading examples of the docs, run as written.

The "Reading the dataset" sections: the analyst's guide's two blocks (locally, and from S3 through a
moto server on 127.0.0.1) and the README's short local one. Also: every relative link of the README
and of docs/ reaches a file and, with ``#anchor``, a heading of it; every ``xforce.…`` module the docs
name exists.
"""

from __future__ import annotations

import contextlib
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers import s3_in_process
from xforce.schemas import CANONICAL

pytestmark = pytest.mark.component

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "analyst-guide.md"  # the full examples: every library, local and S3
FORCES = ("norfolk", "kent")
NIGHTS = ("2026-11-26", "2026-11-27")
ROWS = {"incidents": 3, "anpr_reads": 5, "seizures": 2}  # per force and night


def snippets(page: Path = GUIDE) -> list[str]:
    text = page.read_text(encoding="utf-8")
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


def run(code: str, page: Path = GUIDE) -> dict[str, object]:
    ns: dict[str, object] = {"__name__": "readme"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(page.relative_to(ROOT)), "exec"), ns)
    ns["_stdout"] = out.getvalue()
    return ns


PER = len(FORCES) * len(NIGHTS)


def check_anpr(ns: dict[str, object]) -> None:
    anpr = ns["anpr"]
    assert anpr.num_rows == ROWS["anpr_reads"] * PER  # type: ignore[attr-defined]
    assert set(anpr.column("force").to_pylist()) == set(FORCES)  # type: ignore[attr-defined]


def check_incidents(ns: dict[str, object]) -> None:
    incidents = ns["incidents"]
    assert len(incidents) == ROWS["incidents"] * PER  # type: ignore[arg-type]
    assert set(incidents["date"].astype(str)) == set(NIGHTS)  # type: ignore[index]


def check_by_force(ns: dict[str, object]) -> None:
    by_force = ns["by_force"].fetchall()  # type: ignore[attr-defined]
    assert by_force == [(f, ROWS["anpr_reads"] * len(NIGHTS)) for f in sorted(FORCES)]
    assert "kent" in str(ns["_stdout"])  # .show() printed the table


def check_seizures(ns: dict[str, object]) -> None:
    seizures = ns["seizures"]
    assert seizures.height == ROWS["seizures"] * PER  # type: ignore[attr-defined]
    assert sorted(seizures["force"].unique().to_list()) == sorted(FORCES)  # type: ignore[index]


#: What an example defines, and how its result is checked.
CHECKS = {"anpr": check_anpr, "incidents": check_incidents, "by_force": check_by_force, "seizures": check_seizures}


def check(ns: dict[str, object]) -> None:
    """A full example: every result, each with every library."""
    for verify in CHECKS.values():
        verify(ns)


def test_guide_has_local_and_s3_snippets() -> None:
    blocks = snippets()
    assert len(blocks) == 2
    assert "s3" not in blocks[0].lower() and "s3" in blocks[1].lower()
    for lib in ("pyarrow", "pandas", "duckdb", "polars"):
        assert all(lib in b for b in blocks), lib


def local_curated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``data/curated`` under a fresh working directory, as after ``make run``."""

    def put(rel: str, data: bytes) -> None:
        path = tmp_path / "data" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    write_curated(put)
    # a publisher's temporary file in the middle of a replace must not be read
    put(f"curated/dataset=anpr_reads/date={NIGHTS[0]}/force=kent/.part-0.parquet.0123456789ab.tmp", b"partial")
    monkeypatch.chdir(tmp_path)


def test_local_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local_curated(tmp_path, monkeypatch)
    check(run(snippets()[0]))


def test_readme_snippet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README keeps one short local example (and points to the guide for the rest)."""
    blocks = snippets(README)
    assert len(blocks) == 1
    assert "s3" not in blocks[0].lower()
    assert "docs/analyst-guide.md" in README.read_text(encoding="utf-8")
    local_curated(tmp_path, monkeypatch)
    ns = run(blocks[0], README)
    found = [name for name in CHECKS if name in ns]
    assert found, f"the README's example defines none of {sorted(CHECKS)}"
    for name in found:
        CHECKS[name](ns)


def test_s3_snippet(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    with s3_in_process(monkeypatch) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="xforce-exchange", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
        write_curated(lambda rel, data: s3.put_object(Bucket="xforce-exchange", Key=rel, Body=data))
        check(run(snippets()[1]))


# ------------------------------------------------------------------ links and module names
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^ *```.*?^ *```", flags=re.S | re.M)  # also those indented in a list
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(page: Path) -> str:
    """A page without its fenced blocks (a ``#`` in a shell block is no heading, a link in one no link)."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def anchors(page: Path) -> set[str]:
    """The ``#anchor`` of every heading, as GitHub makes them (a repeated one gets ``-1``, ``-2``, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", _prose(page), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    assert not broken, broken


def _module_exists(name: str) -> bool:
    """``xforce.a.b[.attr]``: a module or package under plugins/ or tools/, or a name defined in one."""
    parts = name.split(".")
    for base in (ROOT / "plugins", ROOT / "tools"):
        for i in range(len(parts), 0, -1):
            path = base.joinpath(*parts[:i])
            source = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"
            if not source.is_file():
                continue
            rest = parts[i:]
            if not rest:
                return True
            if len(rest) == 1:
                defined = rf"^(?:class|def|async def) {re.escape(rest[0])}\b|^{re.escape(rest[0])}\s*[:=]"
                return re.search(defined, source.read_text(encoding="utf-8"), flags=re.M) is not None
            return False
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_modules_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    # `xforce.alerts` logger: a logger's name, not a module
    names = {m[1] for m in re.finditer(r"`(xforce(?:_tools)?(?:\.\w+)+)`(?! logger)", text)}
    missing = sorted(n for n in names if not _module_exists(n))
    # short references such as `process.process_extract`: a module's base name (when one module has it)
    modules: dict[str, list[str]] = {}
    for base in (ROOT / "plugins" / "xforce", ROOT / "tools" / "xforce_tools"):
        for source in base.rglob("*.py"):
            modules.setdefault(source.stem, []).append(".".join(source.relative_to(base.parent).with_suffix("").parts))
    for stem, name in set(re.findall(r"`([a-z_]+)\.([A-Za-z_]\w*)(?:\(\))?`", text)):
        if stem in CANONICAL:  # `incidents.location_name`: a dataset's column
            continue
        if (
            len(modules.get(stem, [])) == 1
            and name not in FILE_SUFFIXES
            and not _module_exists(f"{modules[stem][0]}.{name}")
        ):
            missing.append(f"{stem}.{name}")
    assert not missing, f"{page.name} names modules or functions that do not exist: {missing}"


#: `ledger.sql`, `forces.yaml`...: file names, not a module's attribute
FILE_SUFFIXES = {"py", "sql", "yaml", "json", "md", "html", "parquet", "csv", "jsonl", "gz", "env", "example", "lock"}
