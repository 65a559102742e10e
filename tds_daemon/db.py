"""Engines with timeouts, and telling "the database is unavailable" apart from other errors."""

from __future__ import annotations

from sqlalchemy import create_engine, exc
from sqlalchemy.engine import Engine, make_url

from .config import Config


class DatabaseUnavailable(Exception):
    """PostgreSQL cannot be reached or is not accepting work (a transient condition)."""


def make_engine(config: Config, *, pool_size: int = 5, application_name: str = "tds") -> Engine:
    url = make_url(config.database.url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=config.database.connect_timeout_s,
        connect_args={
            "connect_timeout": config.database.connect_timeout_s,
            "application_name": application_name,
            # Every statement and lock wait is bounded: a blocked socket is something Dramatiq's
            # time limit cannot interrupt.
            "options": f"-c statement_timeout={config.database.statement_timeout_ms}"
                       f" -c lock_timeout={config.database.statement_timeout_ms}",
            "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        },
    )


_UNAVAILABLE_PGCODES = {
    "57P01", "57P02", "57P03",  # admin shutdown, crash shutdown, cannot connect now
    "53300",  # too many connections
    "08000", "08003", "08006", "08001", "08004",  # connection exceptions
    "57014",  # statement timeout (query_canceled): the server is overloaded or locked
    "55P03",  # lock not available
    "40001", "40P01",  # serialization failure, deadlock: retry
}


def is_transient(error: BaseException) -> bool:
    """True when retrying later may succeed (connection lost, timeouts, shutdown, deadlock)."""
    if isinstance(error, DatabaseUnavailable):
        return True
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        code = getattr(error.orig, "pgcode", None)
        if code in _UNAVAILABLE_PGCODES:
            return True
        if isinstance(error, exc.OperationalError | exc.InterfaceError) and code is None:
            return True  # no server answer at all: refused, reset, DNS, timeout
    return isinstance(error, exc.TimeoutError)  # pool exhausted
