"""``tds run``, ``tds api`` and ``tds worker``: the daemon under its supervisor, and each of its processes alone."""

from __future__ import annotations

import os
import sys

from tds.preflight import command, die_with_parent, load_config, prepare_metrics_dir, require_schema
from tds_daemon.config import resolve_path

# How the supervisor starts this command again for its children (``tds api``, ``tds worker``).
SELF = [sys.executable, "-m", "tds"]


def add_commands(sub) -> None:
    command(sub, "run", cmd_run, "the daemon: API server and worker processes")
    command(sub, "api", cmd_api, "the API server alone, in the foreground")
    command(sub, "worker", cmd_worker, "one worker process, in the foreground")


def cmd_api(args) -> int:
    die_with_parent()
    config = load_config(args)
    prepare_metrics_dir(fresh=False)
    from tds_daemon import logs
    from tds_daemon.api import server

    logs.setup(config.log.level, logs.role_from_env("api"))
    server.run(config, args.config)
    return 0


def cmd_worker(args) -> int:
    die_with_parent()
    config = load_config(args)
    prepare_metrics_dir(fresh=False)
    from tds_daemon import logs

    logs.setup(config.log.level, logs.role_from_env("worker"))
    from actors import worker

    return worker.run(config)


def cmd_run(args) -> int:
    config = load_config(args)
    require_schema(config)
    prepare_metrics_dir(fresh=True)
    from tds_daemon import logs

    logs.setup(config.log.level, "supervisor")
    from supervisor import run

    return run.run(config, resolve_path(args.config, os.environ), SELF)
