"""The ``tds`` command line: the parser composed from the command groups, and how a command ends.

Operator errors (bad configuration, database unreachable, unknown entity) end with one readable
line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys

from tds import admin, dlq, events, pull, serve, simulator, status, trace
from tds.preflight import Failure
from tds_daemon import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tds", description="Zoho to PostgreSQL sync daemon")
    parser.add_argument("--version", action="version", version=f"tds {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_commands(sub)  # run, api, worker
    admin.add_migrate(sub)
    pull.add_command(sub)  # sync
    dlq.add_commands(sub)
    events.add_commands(sub)
    trace.add_command(sub)
    status.add_command(sub)
    admin.add_check_config(sub)
    simulator.add_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Failure as e:
        print(f"tds: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
