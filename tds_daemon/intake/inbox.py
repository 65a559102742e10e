"""Storing accepted deliveries: inbox event + sync item, in one statement, before the 2xx.

The API stores the deliveries that arrive together in one statement and one commit (see
``tds_daemon.intake.groupcommit``); a single delivery is a batch of one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from tds_daemon.intake.webhook import Delivery
from tds_daemon.store.db import execute_values

# One statement, so one round trip and atomic on its own: each event and its item exist together or
# not at all. ON CONFLICT makes a duplicate (already stored, or stored concurrently) lose quietly
# instead of failing the batch; the SELECT pairs each new item with its event's key.
_STORE = """
WITH ev AS (
    INSERT INTO tds_inbox_events (entity_type, zoho_id, event_type, idempotency_key, zoho_last_modified,
                                  payload)
    VALUES %s
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, entity_type, zoho_id, idempotency_key
), item AS (
    INSERT INTO tds_sync_queue (event_id, entity_type, zoho_id, dispatched_at)
    SELECT id, entity_type, zoho_id, {dispatched} FROM ev ORDER BY id
    RETURNING id, event_id
)
SELECT ev.idempotency_key, ev.id, item.id FROM ev JOIN item ON item.event_id = ev.id
"""
_STORE_SQL = {True: _STORE.format(dispatched="now()"), False: _STORE.format(dispatched="NULL::timestamptz")}
_ROW = "(%s, %s, %s, %s, %s, %s::jsonb)"
_EXISTING = text("SELECT idempotency_key, id FROM tds_inbox_events WHERE idempotency_key = ANY(:keys)")
# Each delivery refused as a duplicate, recorded against the event it repeats (the story of an object).
_DUPLICATES = text("""
INSERT INTO tds_inbox_duplicates (event_id, event_type)
SELECT e.id, d.event_type
FROM unnest(CAST(:keys AS text[]), CAST(:types AS text[])) AS d(key, event_type)
JOIN tds_inbox_events e ON e.idempotency_key = d.key
""")


def _store(conn: Connection, deliveries: list[tuple[Delivery, str]], first: dict, rows: list,
           will_dispatch: bool) -> dict[str, tuple[int, int | None]]:
    found = {key: (event_id, item_id)
             for key, event_id, item_id in execute_values(conn, _STORE_SQL[will_dispatch], _ROW, rows)}
    missing = [key for key in first if key not in found]
    if missing:
        found.update({key: (event_id, None) for key, event_id in conn.execute(_EXISTING, {"keys": missing})})
    duplicates, seen = [], set()
    for delivery, _ in deliveries:
        key = delivery.idempotency_key
        if key in seen or found[key][1] is None:
            duplicates.append((key, delivery.event_type))
        seen.add(key)
    if duplicates:
        conn.execute(_DUPLICATES, {"keys": [k for k, _ in duplicates], "types": [t for _, t in duplicates]})
    return found


@dataclass(frozen=True)
class Stored:
    event_id: int
    item_id: int | None  # None: a duplicate of event_id

    @property
    def duplicate(self) -> bool:
        return self.item_id is None


def store_many(bind: Engine | Connection, deliveries: list[tuple[Delivery, str]],
               will_dispatch: bool) -> list[Stored]:
    """Store (delivery, payload JSON) pairs in one transaction; a Stored for each, in the same order.

    A delivery whose idempotency key is already stored, or appears earlier in the same batch, is a
    duplicate of that event, recorded as one in ``tds_inbox_duplicates``. ``will_dispatch``: the caller
    sends the messages right after the commit. ``bind``: an engine (a connection of its pool for this
    call), or a connection of the caller's in autocommit mode (the API's writer thread keeps one): the
    storing statement commits by itself.
    """
    first: dict[str, tuple[Delivery, str]] = {}
    for delivery, payload in deliveries:
        first.setdefault(delivery.idempotency_key, (delivery, payload))
    rows = [(d.spec.name, d.zoho_id, d.event_type, key, d.zoho_last_modified, payload)
            for key, (d, payload) in first.items()]
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            found = _store(conn, deliveries, first, rows, will_dispatch)
    else:
        found = _store(bind, deliveries, first, rows, will_dispatch)
        bind.commit()  # ends SQLAlchemy's own transaction marker, if the duplicates' SELECT began one
    stored, seen = [], set()
    for delivery, _ in deliveries:
        key = delivery.idempotency_key
        event_id, item_id = found[key]
        stored.append(Stored(event_id, item_id if key not in seen else None))
        seen.add(key)
    return stored
