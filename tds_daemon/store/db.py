"""Engines with timeouts, and telling "the database is unavailable" apart from other errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg2
import psycopg2.extras
from sqlalchemy import create_engine, exc
from sqlalchemy.engine import Connection, Engine, make_url

from tds_daemon import jsoncodec
from tds_daemon.config import Config


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached or is not accepting work (a transient condition)."""


def make_engine(config: Config, *, pool_size: int = 5, application_name: str = "tds", pre_ping: bool = True,
                autocommit: bool = False) -> Engine:
    url = make_url(config.database.url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        # Set on each new connection, not switched on and off at every checkout as execution_options would.
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
        pool_timeout=config.database.connect_timeout_s,
        # JSONB read back (a webhook's payload, at every apply) is decoded by orjson, not by the
        # standard library's json: cheaper in the worker, which decodes every payload it applies.
        json_deserializer=jsoncodec.loads,
        connect_args={
            "connect_timeout": config.database.connect_timeout_s,
            "application_name": application_name,
            # Every statement and lock wait is bounded: a blocked socket is something Dramatiq's
            # time limit cannot interrupt.
            "options": f"-c statement_timeout={config.database.statement_timeout_ms}"
                       f" -c lock_timeout={max(1, config.database.statement_timeout_ms // 2)}",
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        },
    )


_TRANSIENT_PGCODES = {
    "57P01": "database_unavailable", "57P02": "database_unavailable",  # admin / crash shutdown
    "57P03": "database_unavailable",  # cannot connect now (starting up)
    "53300": "database_unavailable",  # too many connections
    "08000": "database_unavailable", "08003": "database_unavailable", "08006": "database_unavailable",
    "08001": "database_unavailable", "08004": "database_unavailable",  # connection exceptions
    "57014": "database_timeout",  # statement timeout: the server is overloaded or a row is locked
    "55P03": "database_timeout",  # lock_timeout
    "40001": "database_conflict", "40P01": "database_conflict",  # serialization failure, deadlock
}


def transient_code(error: BaseException) -> str | None:
    """An error code when retrying later may succeed (connection lost, timeouts, deadlock), else None."""
    if isinstance(error, DatabaseUnavailable):
        return "database_unavailable"
    if isinstance(error, exc.DBAPIError):
        code = getattr(error.orig, "pgcode", None)
        if code in _TRANSIENT_PGCODES:
            return _TRANSIENT_PGCODES[code]
        if error.connection_invalidated:
            return "database_unavailable"
        if isinstance(error, exc.OperationalError | exc.InterfaceError) and code is None:
            return "database_unavailable"  # no server answer at all: refused, reset, DNS, timeout
    if isinstance(error, exc.TimeoutError):
        return "database_busy"  # no pooled connection free in time
    return None


def is_transient(error: BaseException) -> bool:
    return transient_code(error) is not None


def execute_values(conn: Connection, sql: str, template: str, rows: list[Any]) -> list[tuple]:
    """Many rows in one statement, straight through psycopg2 (``sql`` has one ``%s`` for the VALUES);
    the rows it returns.

    Binding a batch this way skips SQLAlchemy's per-row parameter processing, a large share of a full
    sync's CPU (docs/PERFORMANCE.md).
    """
    with driver_cursor(conn, sql) as cur:
        return psycopg2.extras.execute_values(cur, sql, rows, template=template, page_size=len(rows), fetch=True)


@contextmanager
def driver_cursor(conn: Connection, sql: str) -> Iterator[Any]:
    """A psycopg2 cursor on ``conn``'s transaction whose errors are raised as SQLAlchemy would have raised
    them, so that they are classified the same way (``transient_code``)."""
    dbapi = conn.connection.dbapi_connection
    try:
        with dbapi.cursor() as cur:
            yield cur
    except psycopg2.Error as e:
        raise exc.DBAPIError.instance(sql, None, e, psycopg2.Error, hide_parameters=True, dialect=conn.dialect,
                                      connection_invalidated=conn.dialect.is_disconnect(e, dbapi, None)) from e
