"""The ``cyberark-ops`` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cyberark-ops" / "devserver"


def _devserver(args: argparse.Namespace) -> int:
    from .devserver import DevServer, SeedError

    try:
        server = DevServer(
            args.seed,
            host=args.host,
            port=args.port,
            tls=args.tls,
            state_dir=args.state_dir or default_state_dir(),
            allow_remote=args.allow_remote,
            admin_token=args.admin_token or os.environ.get("CYBERARK_DEVSERVER_ADMIN_TOKEN"),
        )
    except SeedError as exc:
        print(f"cyberark-ops devserver: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"cyberark-ops devserver: cannot listen on {args.host}:{args.port} ({exc.strerror})",
            file=sys.stderr,
        )
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    server.start()
    print(json.dumps(server.info()), flush=True)
    if args.print_connections:
        from .devserver.connections import devserver_export_lines
        from .devserver.seed import load_seed

        for line in devserver_export_lines(server.info(), load_seed(args.seed)):
            print(line, flush=True)
        print("# end of the lines to paste", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import (
        DoctorUsageError,
        render_json,
        render_rich,
        render_text,
        run,
        settings_from_backend_kwargs,
        settings_from_connection,
        use_rich,
    )

    if args.conn_id:
        source = f"connection {args.conn_id!r}"

        def load() -> Any:
            return settings_from_connection(args.conn_id)

    else:
        source = "secrets backend kwargs"
        try:
            kwargs = json.loads(args.backend_kwargs)
        except ValueError:
            print("cyberark-ops doctor: --backend-kwargs is not valid JSON", file=sys.stderr)
            return 2
        if not isinstance(kwargs, dict):
            print("cyberark-ops doctor: --backend-kwargs must be a JSON object", file=sys.stderr)
            return 2

        def load() -> Any:
            return settings_from_backend_kwargs(kwargs)

    try:
        report = run(load, source=source, paths=args.path)
    except DoctorUsageError as exc:
        print(f"cyberark-ops doctor: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(render_json(report))
    elif use_rich():
        render_rich(report)
    else:
        sys.stdout.write(render_text(report))
    return 1 if report.failed else 0


def _migrate_plan(args: argparse.Namespace) -> int:
    from .migrate import PlanError, make_plan, read_airflow

    try:
        kwargs = _backend_kwargs_for_migrate(args.backend_kwargs)
        plan = make_plan(
            read_airflow(),
            kwargs,
            airflow_group=args.airflow_group,
            grant_to=args.grant_to,
            include=args.include,
            exclude=args.exclude,
            on_remove=args.on_remove,
            platform_id=args.platform_id,
        )
        plan.write(args.out)
    except (PlanError, OSError) as exc:
        print(f"cyberark-ops migrate plan: {exc}", file=sys.stderr)
        return 2
    print(f"{len(plan.entries)} to migrate, {len(plan.left)} left in place; plan written to {args.out}")
    for left in plan.left:
        print(f"  left: {left.kind} {left.id!r} ({left.source}): {left.reason}")
    return 0


def _backend_kwargs_for_migrate(text: str | None) -> dict[str, Any]:
    """--backend-kwargs, else what this Airflow is configured with ([secrets] backend_kwargs)."""
    from .migrate import PlanError

    if text is None:
        from airflow.configuration import conf

        text = conf.get("secrets", "backend_kwargs", fallback="") or ""
        if not text.strip():
            raise PlanError("--backend-kwargs: not given, and [secrets] backend_kwargs is not set")
    try:
        kwargs = json.loads(text)
    except ValueError:
        raise PlanError("--backend-kwargs: not valid JSON") from None
    if not isinstance(kwargs, dict):
        raise PlanError("--backend-kwargs: must be a JSON object")
    return kwargs


def _migrate_apply(args: argparse.Namespace) -> int:
    from .migrate import BulkFileError, MigrationError, Plan, PlanError, Report, run_apply, write_bulk_file

    report = Report(dry_run=not args.execute)

    def progress(line: str) -> None:
        print(f"migrate: {line}", file=sys.stderr, flush=True)

    code = 0
    try:
        if args.bulk_file is not None:
            if args.execute or args.remove_from_airflow or args.verify_only or args.overwrite:
                raise MigrationError(
                    "--bulk-file writes the file only: no --execute, --overwrite, --verify-only "
                    "or --remove-from-airflow (verify and remove in a later apply --verify-only)"
                )
            write_bulk_file(Plan.read(args.plan), args.bulk_file, report=report)
            print(
                f"WARNING: {args.bulk_file} holds the secret values in clear text; load it, then delete it",
                file=sys.stderr,
            )
        else:
            if args.remove_from_airflow and not args.execute:
                raise MigrationError("--remove-from-airflow needs --execute")
            run_apply(
                args.plan,
                args.vault_conn_id,
                execute=args.execute,
                overwrite=args.overwrite,
                remove=args.remove_from_airflow,
                verify_only=args.verify_only,
                progress=progress,
                report=report,
            )
    except (PlanError, MigrationError, BulkFileError, ValueError) as exc:
        print(f"cyberark-ops migrate apply: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        report.interrupted = True
        code = 130
    report_path = args.report or args.plan.with_name(args.plan.name + ".report.json")
    from .migrate.plan import atomic_write

    atomic_write(report_path, report.to_json() + "\n")
    sys.stdout.write(report.table())
    print(f"report: {report_path}")
    return code or (1 if report.failed else 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cyberark-ops", description="CyberArk credentials for Airflow 3.")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser(
        "devserver",
        help="run the local CyberArk dev server (Conjur, CCP, PVWA)",
        description=(
            "Runs a local emulation of CyberArk Conjur, CCP and PVWA. Prints one JSON line with the URL, "
            "certificate paths and admin token, then serves until SIGINT or SIGTERM."
        ),
    )
    dev.add_argument("--seed", type=Path, help="seed file (YAML or JSON); default: the built-in demo seed")
    dev.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dev.add_argument("--port", type=int, default=0, help="port (default 0: pick a free one)")
    tls = dev.add_mutually_exclusive_group()
    tls.add_argument("--tls", dest="tls", action="store_true", default=True, help="serve HTTPS (default)")
    tls.add_argument("--no-tls", dest="tls", action="store_false", help="serve plain HTTP")
    dev.add_argument("--state-dir", type=Path, help=f"certificates and audit log (default {default_state_dir()})")
    dev.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address")
    dev.add_argument("--admin-token", help="fixed admin token (default: random; env CYBERARK_DEVSERVER_ADMIN_TOKEN)")
    dev.add_argument(
        "--print-connections",
        action="store_true",
        help=(
            "after the JSON line, print ready-to-paste export lines for this server: the connections "
            "cyberark_{conjur,ccp,pvwa}, the secrets backend ([secrets] and [workers]) and the example DAGs' variables"
        ),
    )
    dev.set_defaults(handler=_devserver)

    doctor = commands.add_parser(
        "doctor",
        help="check a CyberArk connection: configuration, TLS, reachability, auth, clock, paths, privileges",
        description=(
            "Checks a cyberark connection (or the secrets backend's kwargs) end to end and prints one line per "
            "check with pass / warn / fail / skip and a remedy; never a secret value. Exit code 0 without a "
            "failure, 1 with one, 2 on a usage error."
        ),
    )
    target = doctor.add_mutually_exclusive_group(required=True)
    target.add_argument("--conn-id", help="an Airflow connection id (looked up as a task would, env vars included)")
    target.add_argument("--backend-kwargs", help="the secrets backend's backend_kwargs, as JSON")
    doctor.add_argument(
        "--path",
        action="append",
        default=[],
        help="a path (reference) your DAGs read, checked with a real fetch; repeatable",
    )
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(handler=_doctor)

    migrate = commands.add_parser(
        "migrate",
        help="move the secrets Airflow holds (metadata DB, AIRFLOW_CONN_/AIRFLOW_VAR_) into CyberArk, verified",
        description="Run inside the Airflow environment (AIRFLOW_HOME set). Prints no secret value, ever.",
    )
    steps = migrate.add_subparsers(dest="step", required=True)
    plan = steps.add_parser("plan", help="decide what holds a secret and where the backend will read it")
    plan.add_argument("--out", type=Path, required=True, help="the plan file to write (JSON, holds no value)")
    plan.add_argument("--backend-kwargs", help="the secrets backend's backend_kwargs as JSON (default: [secrets])")
    plan.add_argument("--airflow-group", default="airflow/secrets-readers", help="Conjur group given read + execute")
    plan.add_argument(
        "--grant-to", action="append", default=[], help="host/<id> (or layer/, user/, group/) to add to the group"
    )
    plan.add_argument(
        "--include", action="append", default=[], help="also migrate ids matching this glob (connection:/variable:)"
    )
    plan.add_argument("--exclude", action="append", default=[], help="never migrate ids matching this glob")
    plan.add_argument(
        "--on-remove",
        choices=("strip", "delete"),
        default="strip",
        help="with --remove-from-airflow: keep a connection's non-secret parts (strip) or delete it",
    )
    plan.add_argument(
        "--platform-id", help="PVWA / Privilege Cloud: the platform of the accounts to add (e.g. a generic one)"
    )
    plan.set_defaults(handler=_migrate_plan)
    apply = steps.add_parser("apply", help="write, read back through the backend, and (optionally) remove")
    apply.add_argument("--plan", type=Path, required=True)
    apply.add_argument("--vault-conn-id", help="a cyberark connection for the migration identity (to write)")
    apply.add_argument("--execute", action="store_true", help="write for real (default: a dry run)")
    apply.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a different value already in the vault (PVWA / Privilege Cloud: in the Vault only, "
        "which needs 'Update password value' on the safe)",
    )
    apply.add_argument(
        "--remove-from-airflow", action="store_true", help="remove what was read back equal from the metadata DB"
    )
    apply.add_argument(
        "--bulk-file",
        type=Path,
        help="PVWA: write CyberArk's bulk-onboarding CSV (it HOLDS THE VALUES, 0600) instead of calling the API",
    )
    apply.add_argument(
        "--verify-only",
        action="store_true",
        help="write nothing to the vault: read each value back (after a bulk file)",
    )
    apply.add_argument("--report", type=Path, help="report file (default: <plan>.report.json)")
    apply.set_defaults(handler=_migrate_apply)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
