"""Reading the outbox by cursor: what ``GET /api/tds/events`` and ``tds events tail`` answer.

An event as a consumer sees it is the Standard Webhooks payload (``type``, ``timestamp``, ``data``) with
its ``id``. Ids only grow and are committed in order (``tds_daemon.apply.events``), so a consumer that
keeps the last id it has and asks for what comes after never misses or repeats one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from tds_daemon.store.schema import events

MAX_LIMIT = 1000


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


def rows(conn: Connection, after: int, limit: int, *, types: Iterable[str] | None = None,
         entities: Iterable[str] | None = None, upto: int | None = None) -> list:
    """Up to ``limit`` outbox rows with an id above ``after`` (and at most ``upto``) that pass the filter,
    oldest first."""
    where = [events.c.id > after, *matching(types, entities)] + ([events.c.id <= upto] if upto is not None else [])
    return conn.execute(select(events).where(*where).order_by(events.c.id)
                        .limit(max(1, min(limit, MAX_LIMIT)))).all()


def read(conn: Connection, after: int, limit: int, *, types: Iterable[str] | None = None,
         entities: Iterable[str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` events with an id above ``after``, oldest first, and the cursor to ask with next
    (the last id returned, or ``after`` when there is none yet)."""
    found = rows(conn, after, limit, types=types, entities=entities)
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
