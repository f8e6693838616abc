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
        from .devserver.seed import load_seed
        from .testing.connections import devserver_connections, export_lines

        print("# ready-to-paste Airflow connections to this server (dev values only):", flush=True)
        for line in export_lines(devserver_connections(server.info(), load_seed(args.seed))):
            print(line, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


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
        help="after the JSON line, print export AIRFLOW_CONN_CYBERARK_{CONJUR,CCP,PVWA}=... lines for this server",
    )
    dev.set_defaults(handler=_devserver)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
