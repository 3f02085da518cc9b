"""Least privilege on the object store: S3 IAM-style policy documents generated from the force registry.

Roles (one MinIO user each, named like its policy):

* ``xforce-force-<code>``: the force writes only its own landing prefix ``<landing>/<code>/``
  (and may list it, to see what it delivered); nothing else, not even reading it back.
* ``xforce-analyst``: reads the curated zone and the reports built from it; nothing else.
* ``xforce-pipeline``: reads landing (and deletes there, for retention only); reads and writes raw,
  staging, curated, quarantine, docs, reports and the restricted zone.
* ``xforce-reidentify``: reads the token->plate map in the restricted zone (``xforce reidentify``).

Each zone is where the settings put it (``XFORCE_<ZONE>_URI``; the reports where
:func:`xforce.privacy.retention.reports_location` says), or, for the zones given in
:func:`compose_zone_uris`, where a docker-compose file's Airflow environment puts them. Zones that are
not ``s3://`` are placed at ``s3://<bucket>/<zone>`` (default bucket ``xforce``): the layout of the
files in ``deploy/minio/policies/``; ``deploy/minio/compose/`` holds those of ``docker-compose.yaml``.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from xforce.errors import ConfigError
from xforce.privacy.retention import reports_location
from xforce.privacy.tokenmap import TOKEN_MAP

if TYPE_CHECKING:
    from collections.abc import Mapping

    from xforce.intake.contracts import Registry
    from xforce.settings import Settings

VERSION = "2012-10-17"
ZONE_NAMES = ("landing", "raw", "staging", "curated", "quarantine", "docs", "restricted", "reports")
#: The compose service whose environment says where the zones are (every Airflow service shares it).
COMPOSE_SERVICE = "airflow-worker"
READ = ["s3:GetObject"]
WRITE = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]


def zone_uris(settings: Settings) -> dict[str, str]:
    """Zone -> its location in the settings; ``reports`` only when there can be reports."""
    out = {name: str(getattr(settings, name, "") or "") for name in ZONE_NAMES if name != "reports"}
    reports = reports_location(settings)
    if reports is not None:
        out["reports"] = reports
    return out


def compose_zone_uris(compose_file: str | Path, service: str = COMPOSE_SERVICE) -> dict[str, str]:
    """Zone -> ``XFORCE_<ZONE>_URI`` in a docker-compose file's ``service`` environment (only those set).

    Values must be literal: a ``${VARIABLE}`` would make the policies depend on the shell that
    starts compose, so it is refused.
    """
    path = Path(compose_file)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        env = doc["services"][service].get("environment") or {}
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"{path.name}: no environment of service {service!r} to read ({type(exc).__name__})"
        ) from None
    if isinstance(env, list):
        env = dict(str(item).partition("=")[::2] for item in env)
    out: dict[str, str] = {}
    for name in ZONE_NAMES:
        value = str(env.get(f"XFORCE_{name.upper()}_URI") or "").strip()
        if "$" in value:
            raise ConfigError(f"{path.name}: XFORCE_{name.upper()}_URI of {service} must be literal, not interpolated")
        if value:
            out[name] = value
    return out


def zone_locations(
    settings: Settings, bucket: str = "xforce", uris: Mapping[str, str] | None = None
) -> dict[str, tuple[str, str]]:
    """Zone -> (bucket, prefix) on the object store: ``uris`` first (e.g. a compose file's), then the settings."""
    where = {**zone_uris(settings), **(uris or {})}
    out: dict[str, tuple[str, str]] = {}
    for name in ZONE_NAMES:
        if name not in where:
            continue  # reports that cannot exist (a whole-bucket curated zone and no XFORCE_REPORTS_URI)
        uri = where[name]
        if uri.startswith("s3://"):
            b, _, prefix = uri[5:].partition("/")
            out[name] = (b, prefix.strip("/"))
        else:
            out[name] = (bucket, name)
    return out


def _objects(loc: tuple[str, str], sub: str = "") -> str:
    bucket, prefix = loc
    path = "/".join(p for p in (prefix, sub) if p)
    return f"arn:aws:s3:::{bucket}/{path}/*" if path else f"arn:aws:s3:::{bucket}/*"


def _listing(*places: tuple[tuple[str, str], str]) -> list[dict[str, Any]]:
    """``s3:ListBucket`` limited to the given prefixes: one statement per bucket."""
    by_bucket: dict[str, list[str]] = {}
    whole: set[str] = set()  # a place that is the whole bucket: listing it is not limited to a prefix
    for (bucket, prefix), sub in places:
        path = "/".join(p for p in (prefix, sub) if p)
        by_bucket.setdefault(bucket, []).extend([path, f"{path}/*"] if path else [])
        if not path:
            whole.add(bucket)
    out = []
    for bucket, prefixes in by_bucket.items():
        stmt: dict[str, Any] = {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [f"arn:aws:s3:::{bucket}"]}
        if bucket not in whole:
            stmt["Condition"] = {"StringLike": {"s3:prefix": prefixes}}
        out.append(stmt)
    return out


def _doc(statements: list[dict[str, Any]], buckets: set[str]) -> dict[str, Any]:
    location = {
        "Effect": "Allow",
        "Action": ["s3:GetBucketLocation"],
        "Resource": [f"arn:aws:s3:::{b}" for b in sorted(buckets)],
    }
    return {"Version": VERSION, "Statement": [location, *statements]}


def generate(
    registry: Registry, settings: Settings, bucket: str = "xforce", uris: Mapping[str, str] | None = None
) -> dict[str, dict[str, Any]]:
    """Policy name -> policy document, for the zones where :func:`zone_locations` puts them."""
    loc = zone_locations(settings, bucket, uris)
    published = [loc[z] for z in ("curated", "reports") if z in loc]
    docs: dict[str, dict[str, Any]] = {}
    for code in registry.forces:
        docs[f"xforce-force-{code}"] = _doc(
            [
                {
                    "Effect": "Allow",
                    "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                    "Resource": [_objects(loc["landing"], code)],
                },
                *_listing((loc["landing"], code)),
            ],
            {loc["landing"][0]},
        )
    docs["xforce-analyst"] = _doc(
        [
            {"Effect": "Allow", "Action": READ, "Resource": [_objects(place) for place in published]},
            *_listing(*((place, "") for place in published)),
        ],
        {b for b, _ in published},
    )
    written = [z for z in ZONE_NAMES if z != "landing" and z in loc]
    docs["xforce-pipeline"] = _doc(
        [
            # Landing: read, and delete for retention only; never write there.
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:DeleteObject"], "Resource": [_objects(loc["landing"])]},
            {"Effect": "Allow", "Action": WRITE, "Resource": [_objects(loc[z]) for z in written]},
            *_listing(*((loc[z], "") for z in ZONE_NAMES if z in loc)),
        ],
        {b for b, _ in loc.values()},
    )
    docs["xforce-reidentify"] = _doc(
        [
            {"Effect": "Allow", "Action": READ, "Resource": [_objects(loc["restricted"], TOKEN_MAP)]},
            *_listing((loc["restricted"], TOKEN_MAP)),
        ],
        {loc["restricted"][0]},
    )
    return docs


def apply_script(names: list[str]) -> str:
    """A POSIX shell script for the compose init: create each policy and attach it to its user."""
    lines = [
        "#!/bin/sh",
        "# Generated by `xforce policies`: do not edit, regenerate.",
        "# Usage: apply.sh [ALIAS]   (an `mc alias set ALIAS http://minio:9000 ROOT_USER ROOT_PASSWORD` done first)",
        "# Creates (or replaces) every policy and attaches each to the MinIO user of the same name",
        "# when that user exists; create the users first with `mc admin user add ALIAS NAME SECRET`.",
        "set -eu",
        'ALIAS="${1:-xforce}"',
        'DIR="$(cd "$(dirname "$0")" && pwd)"',
        f"for p in {' '.join(shlex.quote(n) for n in names)}; do",
        '  mc admin policy create "$ALIAS" "$p" "$DIR/$p.json"',
        '  if mc admin user info "$ALIAS" "$p" >/dev/null 2>&1; then',
        '    mc admin policy attach "$ALIAS" "$p" --user "$p" || echo "apply.sh: $p already attached to user $p"',
        "  else",
        '    echo "apply.sh: no user $p yet: policy created, not attached"',
        "  fi",
        "done",
        "",
    ]
    return "\n".join(lines)


def write(out_dir: str | Path, docs: dict[str, dict[str, Any]]) -> list[Path]:
    """Write one JSON file per policy, an index and ``apply.sh``; stale ``xforce-*.json`` files are removed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for old in out.glob("xforce-*.json"):
        if old.stem not in docs:
            old.unlink()
    for name, doc in sorted(docs.items()):
        path = out / f"{name}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    script = out / "apply.sh"
    script.write_text(apply_script(sorted(docs)), encoding="utf-8")
    script.chmod(0o755)
    written.append(script)
    return written
