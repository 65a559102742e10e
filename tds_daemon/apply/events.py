"""The outbox: each change TDS applies is written as an event in ``tds_events``, in the same
transaction as the change, so that no change is ever without its event and no event without its change.

Code that changes rows calls ``add`` on the connection of its transaction; the events gathered there are
inserted when that transaction commits (an engine ``commit`` hook), and dropped when it rolls back. Writers
never wait for each other, so an id may become visible after a greater one; readers stop at what is final
(``tds_daemon.publish.feed.horizon``), so that a cursor never passes an event committed later with a
smaller id. Listeners of ``NOTIFY tds_events`` are woken after the commit, by a notice sent outside the
applying transaction (``tds_daemon.apply.notice``).
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import psycopg2.extras
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool

from tds_daemon import jsoncodec, subscribers
from tds_daemon.apply import notice
from tds_daemon.store.db import driver_cursor

ENTITY_SYNCED, SYNC_COMPLETED = TYPES = subscribers.EVENT_TYPES
CHANNEL = notice.CHANNEL
ACTIONS = ("created", "updated", "deleted")
SOURCES = ("webhook", "pull")

_PENDING = "tds_events_pending"
_INSERT = "INSERT INTO tds_events (type, entity, zoho_id, payload) VALUES %s RETURNING id"


def add(conn: Connection, type_: str, payload: dict[str, Any], *, entity: str | None = None,
        zoho_id: str | None = None) -> None:
    """Record an event on ``conn``'s open transaction: written if and when that transaction commits."""
    conn.info.setdefault(_PENDING, []).append((type_, entity, zoho_id, jsoncodec.dumps(payload)))


def entity_synced(conn: Connection, *, entity: str, zoho_id: str, action: str, source: str,
                  last_modified: dt.datetime | None, changed: dict[str, Any]) -> None:
    """A row created, updated or deleted, with the typed columns the change set (all of them for a new row);
    its last-modified time in UTC, whatever offset Zoho wrote it with."""
    add(conn, ENTITY_SYNCED, {
        "entity": entity, "zoho_id": zoho_id, "action": action, "source": source,
        "last_modified_time": last_modified.astimezone(dt.UTC).isoformat() if last_modified else None,
        "changed": {k: plain(v) for k, v in changed.items()},
    }, entity=entity, zoho_id=zoho_id)


def plain(value: Any) -> Any:
    """A typed column value as JSON holds it: money exactly, as a string; dates and times in ISO 8601."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return value


@event.listens_for(Engine, "commit")
def _write(conn: Connection) -> None:
    pending = conn.info.pop(_PENDING, None)
    if not pending:
        return
    # Straight through the driver: the transaction is committing, and SQLAlchemy's own execute would
    # begin another. An error here fails the commit, so the changes are not committed either.
    with driver_cursor(conn, _INSERT) as cur:
        ids = psycopg2.extras.execute_values(cur, _INSERT, pending, page_size=len(pending), fetch=True)
    notice.send(conn.engine, max(i for (i,) in ids))


@event.listens_for(Engine, "rollback")
def _drop(conn: Connection) -> None:
    """Forget the rolled-back transaction's events. A connection invalidated (lost) has nothing to forget:
    its info went with it, and reading it would raise instead of letting the rollback happen."""
    if not conn.invalidated:
        conn.info.pop(_PENDING, None)


@event.listens_for(Pool, "checkin")
def _drop_returned(_dbapi_connection, record) -> None:
    """A connection back in the pool had its transaction ended by the pool (rolled back): nothing of it
    may be written by the next transaction that checks the connection out."""
    if record is not None:
        record.info.pop(_PENDING, None)
