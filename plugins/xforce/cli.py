"""``xforce``: the same code paths the DAG uses, from the command line.

xforce generate --date D --out DIR [--anpr-reads N] [--seed S] [--forces ...] [--datasets ...]
xforce run --date D            # the nightly DAG for that night, through Airflow itself
xforce ingest --force F --dataset D --file PATH --date D
xforce status --date D         # the force x dataset table from the ledger
xforce backfill --from D1 --to D2 [--reports]   # xforce_nightly for each night in order, through Airflow
xforce report --date D          # the cross-force reports of a night (Parquet + HTML)
xforce reidentify --token T --purpose "..." --requested-by NAME   # audited; see docs/privacy.md
xforce audit [--token T]        # the re-identification audit
xforce retention [--dry-run] [--today D]
xforce policies --out deploy/minio/policies
xforce rotate-key               # re-tokenise under the configured (new) key version
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from xforce.errors import XforceError
from xforce.schemas import DATASETS

if TYPE_CHECKING:
    from xforce.settings import Settings


def _night(value: str) -> str:
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def ensure_dev_key(data_dir: str) -> None:
    """Without a configured key, make a local development key (0600) outside the repository."""
    if os.environ.get("XFORCE_HMAC_KEY") or os.environ.get("AIRFLOW_CONN_XFORCE_HMAC"):
        return
    path = Path(os.environ.get("XFORCE_HMAC_KEY_FILE") or Path(data_dir) / "secrets" / "hmac.key")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32), encoding="utf-8")
        print(f"xforce: no XFORCE_HMAC_KEY set; created a development key in {path}", file=sys.stderr)
    os.environ["XFORCE_HMAC_KEY_FILE"] = str(path)


def cmd_generate(args: argparse.Namespace) -> int:
    try:  # a developer tool (tools/xforce_tools), not part of the runtime image
        from xforce_tools.generate import generate_night
    except ImportError as exc:
        raise XforceError(
            f"the extract generator is a developer tool: install the project with `make install` ({exc})"
        ) from None

    truth = generate_night(
        date.fromisoformat(args.date),
        args.out,
        anpr_reads=args.anpr_reads,
        seed=args.seed,
        forces=args.forces,
        datasets=args.datasets,
        incidents=args.incidents,
        seizures=args.seizures,
        defect_rate=args.defect_rate,
        plant_crossing_vehicle=args.plant_crossing_vehicle,
    )
    total = sum(d["records"] for k, f in truth.items() if not k.startswith("_") for d in f.values())
    print(f"wrote {total} records for {args.date} under {args.out}")
    return 0


def prepare_airflow() -> Settings:
    """Configure this process for Airflow on the project's settings and migrate its metadata DB."""
    from xforce.airflow.env import airflow_env
    from xforce.settings import Settings

    settings = Settings.from_env()
    ensure_dev_key(settings.data_dir)
    env = airflow_env(settings)
    airflow = shutil.which("airflow", path=str(Path(sys.executable).parent)) or "airflow"
    os.environ.update(env)
    # The migration runs in its own process, and Great Expectations is imported in its worker
    # process (xforce.quality.gxworker), while this one imports Airflow's DagBag: on two cores the fixed
    # costs overlap instead of adding up.
    migrate = subprocess.Popen([airflow, "db", "migrate"], env=env, stdout=subprocess.DEVNULL)
    try:
        from xforce.quality import gxworker

        gxworker.start()
        from airflow.dag_processing.dagbag import DagBag  # noqa: F401
    except BaseException:
        migrate.wait()
        raise
    if migrate.wait() != 0:
        raise subprocess.CalledProcessError(migrate.returncode, [airflow, "db", "migrate"])
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    prepare_airflow()
    state = run_dag_test(args.date)
    from xforce import context
    from xforce.exchange import publish

    print(f"\nxforce_nightly for {args.date}: run {state}")
    print(publish.format_table(publish.night_table(context.Context.from_env(), args.date)))
    return 0 if state == "success" else 1


def run_dag_test(night: str) -> str:
    """Run ``xforce_nightly`` for a night in this process with ``dag.test()`` (Airflow configured by env)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise XforceError(f"DAG import errors: {bag.import_errors}")
    dag = bag.get_dag("xforce_nightly")
    if dag is None:
        raise XforceError("DAG xforce_nightly not found")
    # A fresh logical date per run so that a re-run of the same night is a new DAG run.
    run_after = datetime.combine(
        date.fromisoformat(night) + timedelta(days=1), time(2, 30), ZoneInfo("Europe/London")
    ).astimezone(ZoneInfo("UTC"))
    logical = run_after + timedelta(microseconds=uuid.uuid4().int % 1_000_000)
    dr = dag.test(logical_date=logical, run_conf={"night": night})
    return str(getattr(dr, "state", "unknown"))


def cmd_backfill(args: argparse.Namespace) -> int:
    """Reprocess every night from ``--from`` to ``--to`` through Airflow, oldest first, in one process.

    Idempotent: a night's partitions are replaced, never duplicated; a changed re-delivery in
    landing supersedes the earlier one; an emptied landing folder is reprocessed from raw.
    """

    first, last = date.fromisoformat(args.date_from), date.fromisoformat(args.date_to)
    if last < first:
        print(f"xforce backfill: --to {last} is before --from {first}", file=sys.stderr)
        return 2
    nights = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    settings = prepare_airflow()
    from xforce import context
    from xforce.exchange import publish

    states: list[tuple[str, str, str]] = []
    for night in nights:
        state = run_dag_test(night)
        rows = publish.night_table(context.Context.from_env(), night)
        published = sum(r["status"] == "published" for r in rows)
        note = f"{published}/{len(rows)} extracts published"
        if args.reports and state == "success":
            from xforce.reports import queries as reports

            built = reports.build_reports(settings, night)
            note += f"; reports: {built['files']['html']}"
        states.append((night, state, note))
        print(f"xforce_nightly for {night}: run {state}; {note}", flush=True)
    failed = [n for n, s, _ in states if s != "success"]
    print(f"\nbackfill {nights[0]} .. {nights[-1]}: {len(nights) - len(failed)} of {len(nights)} nights succeeded")
    for n in failed:
        print(f"  failed: {n} (see `xforce status --date {n}`)")
    return 1 if failed else 0


def cmd_report(args: argparse.Namespace) -> int:
    from xforce.reports import queries as reports
    from xforce.settings import Settings

    built = reports.build_reports(Settings.from_env(), args.date)
    for name, where in built["files"].items():
        rows = built["rows"].get(name)
        print(f"{name:22} {'' if rows is None else f'{rows:>7} rows  '}{where}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from xforce import context
    from xforce.exchange import land, process, publish, tuning
    from xforce.quality import gxworker
    from xforce.store import layout
    from xforce.store.zones import Zone

    tuning.arrow_memory_pool()  # this command's own process: tuned once, here at its edge
    gxworker.start()  # GX's import runs in its worker while this process lands the file
    ctx = context.Context.from_env()
    ensure_dev_key(ctx.settings.data_dir)
    ctx.registry.force(args.force)
    src = Path(args.file)
    if not src.is_file():
        print(f"xforce ingest: no such file {src}", file=sys.stderr)
        return 2
    landing = ctx.zones.landing
    delivery = layout.delivery_dir(args.force, args.dataset, args.date)
    landing.copy_from(Zone(str(src.parent.resolve())), src.name, f"{delivery}/{src.name}")
    run_id = f"ingest__{args.force}__{args.dataset}__{args.date}__{uuid.uuid4().hex[:8]}"
    ref = land.land_extract(ctx, args.date, args.force, args.dataset, run_id)
    process.process_extract(ctx, ref, run_id)
    publish.publish_night(ctx, args.date, run_id)
    rows = [r for r in publish.night_table(ctx, args.date) if r["force"] == args.force and r["dataset"] == args.dataset]
    print(publish.format_table(rows))
    return 0 if rows and rows[0]["status"] == "published" else 1


def cmd_status(args: argparse.Namespace) -> int:
    from xforce import context
    from xforce.exchange import publish

    print(publish.format_table(publish.night_table(context.Context.from_env(), args.date)))
    return 0


def cmd_reidentify(args: argparse.Namespace) -> int:
    from xforce.privacy import tokenmap as privacy
    from xforce.settings import Settings
    from xforce.store.ledger import open_ledger

    s = Settings.from_env()
    found = privacy.reidentify(
        s.restricted,
        open_ledger(s.ledger_url, s.sql_dir),
        args.token,
        purpose=args.purpose,
        requested_by=args.requested_by,
    )
    print(found.plate)
    print(f"key version {found.key_version}; audited as {found.audit_id}", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from xforce.settings import Settings
    from xforce.store.ledger import open_ledger

    s = Settings.from_env()
    rows = open_ledger(s.ledger_url, s.sql_dir).reidentifications(args.token)
    cols = ("at", "requested_by", "os_user", "outcome", "key_version", "token", "purpose")
    print("\t".join(cols))
    for r in rows:
        print("\t".join("" if r[c] is None else str(r[c]).replace("\t", " ").replace("\n", " ") for c in cols))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from xforce.privacy import retention
    from xforce.settings import Settings
    from xforce.store.ledger import open_ledger

    s = Settings.from_env()
    policy = retention.load_policy(s.config_dir)
    today = date.fromisoformat(args.today) if args.today else policy.today()
    done = retention.apply(
        s,
        open_ledger(s.ledger_url, s.sql_dir),
        policy,
        today,
        dry_run=args.dry_run,
        run_id=f"cli__{uuid.uuid4().hex[:8]}",
    )
    print(retention.format_plan(done, args.dry_run))
    return 0


def cmd_policies(args: argparse.Namespace) -> int:
    from xforce.intake.contracts import load_registry
    from xforce.privacy import policies
    from xforce.settings import Settings

    s = Settings.from_env()
    for path in policies.write(args.out, policies.generate(load_registry(s.config_dir), s, args.bucket)):
        print(path)
    return 0


def cmd_rotate_key(args: argparse.Namespace) -> int:
    from xforce.privacy import tokenmap as privacy
    from xforce.settings import Settings, hmac_key
    from xforce.store.ledger import open_ledger

    s = Settings.from_env()
    version, key = hmac_key()
    zones = {"curated": s.curated, "quarantine": s.quarantine, "restricted": s.restricted}
    report = privacy.rotate_key(
        zones, open_ledger(s.ledger_url, s.sql_dir), new_version=version, new_key=key, retire_old=not args.keep_old_map
    )
    print(f"rotated {len(report.partitions)} partition(s) to key version {version}; {report.skipped} already current")
    for f in report.failed:
        print(f"  not rotated: {f['zone']}/{f['path']}: {f['error']}", file=sys.stderr)
    if report.retired:
        print(f"retired the token map of key version(s) {', '.join(report.retired)}")
    return 1 if report.failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xforce", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="write sample extracts for every force in its native format")
    g.add_argument("--date", required=True, type=_night)
    g.add_argument("--out", required=True)
    g.add_argument("--anpr-reads", type=int, default=5000, help="ANPR reads per force")
    g.add_argument("--incidents", type=int, default=None, help="incidents per force (default: realistic)")
    g.add_argument("--seizures", type=int, default=None, help="seizures per force (default: realistic)")
    g.add_argument("--defect-rate", type=float, default=0.02)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--forces", nargs="+", default=None)
    g.add_argument("--datasets", nargs="+", default=None, choices=DATASETS)
    g.add_argument(
        "--plant-crossing-vehicle",
        action="store_true",
        help="plant a vehicle read in three forces near hare coursing, with decoys (needs all seven forces)",
    )
    g.set_defaults(func=cmd_generate)
    r = sub.add_parser("run", help="run xforce_nightly for a night through Airflow")
    r.add_argument("--date", required=True, type=_night)
    r.set_defaults(func=cmd_run)
    i = sub.add_parser("ingest", help="one extract through land, normalise, validate, publish")
    i.add_argument("--force", required=True)
    i.add_argument("--dataset", required=True, choices=DATASETS)
    i.add_argument("--file", required=True)
    i.add_argument("--date", required=True, type=_night)
    i.set_defaults(func=cmd_ingest)
    s = sub.add_parser("status", help="the force x dataset table of a night, from the ledger")
    s.add_argument("--date", required=True, type=_night)
    s.set_defaults(func=cmd_status)
    b = sub.add_parser("backfill", help="reprocess a range of nights through Airflow, oldest first")
    b.add_argument("--from", dest="date_from", required=True, type=_night)
    b.add_argument("--to", dest="date_to", required=True, type=_night)
    b.add_argument("--reports", action="store_true", help="also build each night's reports")
    b.set_defaults(func=cmd_backfill)
    rp = sub.add_parser("report", help="build the cross-force reports of a night (Parquet tables and HTML)")
    rp.add_argument("--date", required=True, type=_night)
    rp.set_defaults(func=cmd_report)
    ri = sub.add_parser("reidentify", help="the plate behind a token, for a stated purpose (audited)")
    ri.add_argument("--token", required=True)
    ri.add_argument("--purpose", required=True, help="why the plate is needed (recorded in the audit)")
    ri.add_argument("--requested-by", required=True, help="the person asking (recorded in the audit)")
    ri.set_defaults(func=cmd_reidentify)
    au = sub.add_parser("audit", help="list the re-identification audit")
    au.add_argument("--token", default=None)
    au.set_defaults(func=cmd_audit)
    rt = sub.add_parser("retention", help="delete partitions past their retention (config/retention.yaml)")
    rt.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    rt.add_argument("--today", type=_night, default=None, help="count from this date (default: today, local)")
    rt.set_defaults(func=cmd_retention)
    po = sub.add_parser("policies", help="write the MinIO/S3 policy documents generated from the force registry")
    po.add_argument("--out", required=True)
    po.add_argument("--bucket", default="xforce", help="bucket of zones that are not s3:// in the settings")
    po.set_defaults(func=cmd_policies)
    rk = sub.add_parser("rotate-key", help="re-tokenise published partitions under the configured key version")
    rk.add_argument("--keep-old-map", action="store_true", help="keep the old versions' token maps")
    rk.set_defaults(func=cmd_rotate_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except XforceError as exc:
        print(f"xforce {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
