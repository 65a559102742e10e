"""The latest webhook deliveries, newest first, and what became of each (``GET /api/tds/webhooks/recent``).

A delivery is an inbox event (its outcome is the state of its sync item: pending, processing, completed,
failed, dead_letter) or a delivery refused as a duplicate of a stored event (``duplicate``; its body is
not kept). Refused deliveries (bad token, bad body, unknown entity) store nothing, so they are not here:
``GET /api/tds/webhooks/stats`` counts them. Each side is read newest first through an index and cut at
the limit before the two are merged, so the cost follows the limit, not the size of the inbox.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

# Newest first through ix_tds_inbox_events_received_at, each event's item through its unique event_id. By
# entity, the same scan skips the other entities' rows: no index by entity on the inbox, whose every write is a
# webhook's (the scan is bounded by the inbox's retention).
_EVENTS = """
SELECT e.id AS event_id, e.entity_type, e.zoho_id, e.event_type, e.received_at, e.zoho_last_modified,
       q.id AS item_id, q.status, q.outcome, q.attempt_count, q.error_code, q.error_message{payload}
FROM tds_inbox_events e LEFT JOIN tds_sync_queue q ON q.event_id = e.id
{where}ORDER BY e.received_at DESC, e.id DESC LIMIT :limit
"""
# tds_inbox_duplicates has no index by time: its ids are in the order the duplicates were stored.
_DUPLICATES = """
SELECT d.id, d.event_id, e.entity_type, e.zoho_id, d.event_type, d.received_at, e.zoho_last_modified
FROM tds_inbox_duplicates d JOIN tds_inbox_events e ON e.id = d.event_id
{where}ORDER BY d.id DESC LIMIT :limit
"""


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def latest(engine: Engine, *, limit: int = DEFAULT_LIMIT, entity: str | None = None,
           payload: bool = False) -> list[dict[str, Any]]:
    """The ``limit`` most recent deliveries (of ``entity``, a canonical name, when given), newest first.

    ``payload``: each stored event's body as ``payload`` (a duplicate's is null: it was not kept). Left out
    otherwise, because bodies are large and hold customers' data."""
    where = "WHERE e.entity_type = :entity\n" if entity else ""
    events_sql = text(_EVENTS.format(payload=", e.payload" if payload else "", where=where))
    params = {"limit": limit, "entity": entity}
    with engine.connect() as conn:
        events = conn.execute(events_sql, params).all()
        duplicates = conn.execute(text(_DUPLICATES.format(where=where)), params).all()
    out = [(e.received_at, 0, e.event_id, _event(e, payload)) for e in events]
    out += [(d.received_at, 1, d.id, _duplicate(d, payload)) for d in duplicates]
    # A duplicate stored with its event (one batch) came after it: newer on a tie.
    out.sort(key=lambda r: r[:3], reverse=True)
    return [r[3] for r in out[:limit]]


def _event(e, payload: bool) -> dict[str, Any]:
    out = {
        "event_id": e.event_id, "entity": e.entity_type, "zoho_id": e.zoho_id, "event": e.event_type,
        "received": _iso(e.received_at), "zoho_last_modified": _iso(e.zoho_last_modified),
        # Stored with its item in one statement; both are deleted together by retention.
        "outcome": e.status or "unknown", "applied": e.outcome, "duplicate": False,
        "sync_item_id": e.item_id, "attempts": e.attempt_count, "error_code": e.error_code,
        "error_message": e.error_message,
    }
    if payload:
        out["payload"] = e.payload
    return out


def _duplicate(d, payload: bool) -> dict[str, Any]:
    out = {
        "event_id": d.event_id, "entity": d.entity_type, "zoho_id": d.zoho_id, "event": d.event_type,
        "received": _iso(d.received_at), "zoho_last_modified": _iso(d.zoho_last_modified),
        "outcome": "duplicate", "applied": None, "duplicate": True, "sync_item_id": None, "attempts": None,
        "error_code": None, "error_message": None,
    }
    if payload:
        out["payload"] = None
    return out
