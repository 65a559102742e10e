"""What several commands share before they work: the configuration, the database schema, Redis, the
metrics directory, and the ``--config`` option; and ``Failure``, how a command says it could not."""

from __future__ import annotations

import os
import sys
import tempfile

from tds_daemon.config import DEFAULT_PATH, Config, ConfigError, load
from tds_daemon.oneline import first_line
from tds_daemon.redaction import mask_url

CONFIG_HELP = "TOML file (default: $TDS_CONFIG, /etc/tds/tds.toml)"


class Failure(Exception):
    """An operator-facing failure: printed as one line, exit status 1."""


def command(sub, name: str, func, help_: str):
    """A subcommand that reads the configuration (``--config``) and runs ``func(args)``."""
    p = sub.add_parser(name, help=help_)
    p.add_argument("--config", metavar="PATH", help=CONFIG_HELP)
    p.set_defaults(func=func)
    return p


def prepare_metrics_dir(fresh: bool) -> str:
    """Set PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported anywhere in this process."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = tempfile.mkdtemp(prefix="tds-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    elif fresh and os.path.isdir(path):
        # A new daemon must not inherit a dead one's counters.
        for name in os.listdir(path):
            if name.endswith(".db"):
                os.unlink(os.path.join(path, name))
    os.makedirs(path, exist_ok=True)
    return path


def load_config(args) -> Config:
    """The configuration ``--config`` (or the environment) names; each problem on a line of its own, exit 1."""
    try:
        return load(args.config)
    except ConfigError as e:
        for key, why in e.problems:
            print(f"tds: config: {key}: {why}", file=sys.stderr)
        raise SystemExit(1) from None


def origin(config: Config, key: str) -> str:
    """Where ``key`` came from and how to point TDS at another configuration, for an unreachable-service line."""
    source = config.sources.get(key, "default")
    if config.source == "defaults":
        came = "is the default" if source == "default" else f"is from {source}"
        return (f"{key} {came}: no configuration file was given with --config or $TDS_CONFIG, and {DEFAULT_PATH} "
                "does not exist; point at one with --config PATH or TDS_CONFIG=PATH")
    came = f"from {source}" if source != "default" else f"the default, {config.source} does not set it"
    return f"{key} {came}; another configuration: --config PATH or TDS_CONFIG=PATH"


def require_schema(config: Config) -> None:
    """Return if the database answers with the schema this TDS needs, else raise a Failure saying what to do."""
    from sqlalchemy import exc

    from tds_daemon.store import revisions
    from tds_daemon.store.db import make_engine

    engine = make_engine(config, pool_size=1, application_name="tds-check")
    try:
        with engine.connect() as conn:
            current = revisions.current(conn)
    except exc.OperationalError as e:
        raise Failure(f"cannot connect to PostgreSQL at {mask_url(config.database.url)}: "
                      f"{first_line(e.orig)} ({origin(config, 'database.url')})") from None
    finally:
        engine.dispose()
    head = revisions.head()
    if not revisions.known(current):
        raise Failure(f"database schema is at {current}, newer than this TDS ({head}): install the TDS that "
                      "migrated it, or downgrade with it (docs/OPERATIONS.md)")
    if current != head:
        raise Failure(f"database schema is at {current or 'nothing'}, this TDS needs {head}: run `tds migrate`")


def require_redis(config: Config) -> None:
    """Return if Redis answers a PING, else raise a Failure with its URL (password masked), why, and where
    redis.url came from."""
    import redis

    from tds_daemon.apply.broker import redis_client

    client = redis_client(config)
    try:
        client.ping()
    except redis.RedisError as e:
        raise Failure(f"cannot reach Redis at {mask_url(config.redis.url)}: {first_line(e)} "
                      f"({origin(config, 'redis.url')})") from None
    finally:
        client.close()


def database_failure(e, config: Config) -> Failure:
    """The one line for a database that stopped answering a command's reads."""
    return Failure(f"cannot read the database: {first_line(getattr(e, 'orig', e))} "
                   f"({origin(config, 'database.url')})")


def die_with_parent() -> None:
    """Under ``tds run``, stop (SIGTERM: gracefully) if the supervisor itself is killed outright.

    systemd's KillMode=mixed would clean up anyway; this covers a SIGKILLed ``tds run`` elsewhere
    (a terminal, a test harness), which must not leave an API or workers running unsupervised.
    """
    parent = os.environ.get("TDS_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != int(parent):  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
