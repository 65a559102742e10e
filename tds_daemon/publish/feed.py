"""Reading the outbox by cursor: what ``GET /api/tds/events`` and ``tds events tail`` answer.

An event as a consumer sees it is the Standard Webhooks payload (``type``, ``timestamp``, ``data``) with
its ``id``. Ids only grow, but writers commit side by side, so an id may become visible after a greater
one: every read stops at the ``horizon``, below which nothing more can appear, so that a consumer that keeps
the last id it has and asks for what comes after never misses or repeats one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from tds_daemon.store.schema import events

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
HORIZON_WAIT_S = 10.0  # writers insert their events as they commit: milliseconds, unless the database is stuck

_LAST_ID = text("SELECT coalesce(pg_sequence_last_value(pg_get_serial_sequence('tds_events', 'id')::regclass), 0)")
# The transactions (other than this one) inserting into the outbox: a lock every INSERT holds to its end.
_WRITERS = text("""
    SELECT coalesce(array_agg(virtualtransaction), '{}') FROM pg_locks
    WHERE locktype = 'relation' AND mode = 'RowExclusiveLock' AND granted AND pid <> pg_backend_pid()
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND relation = 'tds_events'::regclass AND (:all OR virtualtransaction = ANY(:among))
""")


def as_json(row) -> dict[str, Any]:
    return {"id": row.id, "type": row.type, "timestamp": row.created_at.isoformat(), "data": row.payload}


def matching(types: Iterable[str] | None = None, entities: Iterable[str] | None = None) -> list:
    """The WHERE conditions of a filter (None or empty: no filter on that field)."""
    where = []
    if types:
        where.append(events.c.type.in_(list(types)))
    if entities:
        where.append(events.c.entity.in_(list(entities)))
    return where


def horizon(conn: Connection, wait_s: float = HORIZON_WAIT_S) -> int | None:
    """The id up to which the outbox is final: every event with an id up to it is visible now or never will
    be. Waits for the writers in flight when it was asked (not for those that come after); None if one of
    them is still in flight after ``wait_s``. ``conn`` must read committed data (each statement its snapshot).

    Why it holds: an INSERT locks the table (RowExclusiveLock, until its transaction ends) before it takes
    ids, so any id the sequence had handed out when it was read belongs to a transaction that had ended by
    then or shows in pg_locks just after. Writers take no lock of their own for this."""
    last = conn.execute(_LAST_ID).scalar_one()
    writers = conn.execute(_WRITERS, {"all": True, "among": []}).scalar_one()
    deadline, pause = time.monotonic() + wait_s, 0.0005
    while writers:
        if time.monotonic() > deadline:
            log.warning("events: a transaction writing events has not ended after %.0f s: newer events wait "
                        "until it does", wait_s)
            return None
        time.sleep(pause)
        pause = min(2 * pause, 0.02)
        writers = conn.execute(_WRITERS, {"all": False, "among": writers}).scalar_one()
    return last


def rows(conn: Connection, after: int, limit: int, *, types: Iterable[str] | None = None,
         entities: Iterable[str] | None = None, upto: int | None = None) -> list:
    """Up to ``limit`` outbox rows with an id above ``after`` (and at most ``upto``) that pass the filter,
    oldest first."""
    where = [events.c.id > after, *matching(types, entities)] + ([events.c.id <= upto] if upto is not None else [])
    return conn.execute(select(events).where(*where).order_by(events.c.id)
                        .limit(max(1, min(limit, MAX_LIMIT)))).all()


def read(conn: Connection, after: int, limit: int, *, types: Iterable[str] | None = None,
         entities: Iterable[str] | None = None, wait_s: float = HORIZON_WAIT_S) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` events with an id above ``after`` and up to the ``horizon`` (waited for up to
    ``wait_s``), oldest first, and the cursor to ask with next (the last id returned, or ``after`` when there
    is none yet)."""
    upto = horizon(conn, wait_s)
    if upto is None or upto <= after:
        return [], after
    found = rows(conn, after, limit, types=types, entities=entities, upto=upto)
    return [as_json(r) for r in found], found[-1].id if found else after


def newest(conn: Connection) -> int:
    """The id of the newest event (0 when there is none): where a new subscriber starts."""
    return conn.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one()


def last_cursor(conn: Connection, n: int, *, types: Iterable[str] | None = None,
                entities: Iterable[str] | None = None) -> int:
    """The cursor after which come the last ``n`` events of a filter (0 when there are fewer): where
    ``tds events tail`` starts without ``--after``. A backward scan of the primary key, stopping after ``n``."""
    ids = select(events.c.id).where(*matching(types, entities)).order_by(events.c.id.desc()).limit(n).subquery()
    return conn.execute(select(func.coalesce(func.min(ids.c.id) - 1, 0))).scalar_one()
