"""``tds migrate``: Alembic ``upgrade head`` on the configured database, safe to repeat."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import exc

from tds_daemon.config import Config
from tds_daemon.oneline import first_line
from tds_daemon.redaction import mask_url
from tds_daemon.store import revisions
from tds_daemon.store.db import DatabaseUnavailable, make_engine

_HERE = os.path.join(os.path.dirname(__file__), "migrations")


def _alembic_config(config: Config | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", _HERE)
    if config is not None:
        cfg.attributes["entity_schema"] = config.database.entity_schema
    return cfg


def _connect(config: Config):
    engine = make_engine(config, pool_size=1, application_name="tds-migrate")
    try:
        return engine, engine.connect()
    except exc.OperationalError as e:
        engine.dispose()
        reason = first_line(e.orig if e.orig else e)
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {mask_url(config.database.url)}: "
                                  f"{reason}") from None


class SchemaNewer(Exception):
    """The database holds a revision this TDS does not know: a newer TDS migrated it."""


def upgrade(config: Config) -> tuple[str | None, str]:
    """Upgrade to head; returns (revision before, revision after)."""
    engine, conn = _connect(config)
    try:
        with conn:
            # One migrator at a time: two daemons starting together must not race.
            conn.exec_driver_sql("SELECT pg_advisory_lock(7415007)")
            before = revisions.current(conn)
            if not revisions.known(before):
                raise SchemaNewer(f"database schema is at {before}, newer than this TDS ({revisions.head()}): "
                                  "install the TDS that migrated it, or downgrade with it (docs/OPERATIONS.md)")
            cfg = _alembic_config(config)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
            after = revisions.current(conn)
            conn.exec_driver_sql("SELECT pg_advisory_unlock(7415007)")
            conn.commit()
        return before, after
    finally:
        engine.dispose()
