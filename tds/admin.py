"""``tds check-config`` and ``tds migrate``: the configuration checked, the database schema brought up to date."""

from __future__ import annotations

import os
import sys

from tds.preflight import Failure, command, load_config, origin
from tds_daemon.config import SCHEMA, ConfigError, load, resolve_path


def add_migrate(sub) -> None:
    command(sub, "migrate", cmd_migrate, "bring the database schema to the current version")


def add_check_config(sub) -> None:
    p = command(sub, "check-config", cmd_check_config, "validate the configuration")
    p.add_argument("-v", "--verbose", action="store_true", help="show every value (secrets hidden)")


def cmd_check_config(args) -> int:
    path = resolve_path(args.config, os.environ)
    try:
        config = load(args.config)
    except ConfigError as e:
        for key, why in e.problems:
            print(f"{key}: {why}", file=sys.stderr)
        print(f"configuration {path or '(defaults)'} is invalid: {len(e.problems)} problem(s)", file=sys.stderr)
        return 1
    gaps = config.gaps()
    if len(gaps) == 1:
        print(f"configuration {config.source} is valid, but {gaps[0]}")
    else:
        print(f"configuration {config.source} is valid" + (", but:" if gaps else ""))
        for gap in gaps:
            print(f"  - {gap}")
    if args.verbose:
        shown = config.redacted()
        for s in SCHEMA:
            print(f"  {s.name} = {shown[s.name]!r}  ({config.sources[s.name]})")
    return 0


def cmd_migrate(args) -> int:
    from tds_daemon.store.db import DatabaseUnavailable
    from tds_daemon.store.migrate import SchemaNewer, upgrade

    config = load_config(args)
    try:
        before, after = upgrade(config)
    except DatabaseUnavailable as e:
        raise Failure(f"{e}; is PostgreSQL running? ({origin(config, 'database.url')})") from None
    except SchemaNewer as e:
        raise Failure(str(e)) from None
    if before == after:
        print(f"schema already at {after}")
    else:
        print(f"schema migrated from {before or 'empty'} to {after}")
    return 0
