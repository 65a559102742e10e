"""Storing an accepted delivery: inbox event + sync item, in one statement, before the 2xx."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine

from .intake import Delivery

# One statement, so one round trip and atomic on its own: the event and its item exist together or
# not at all. ON CONFLICT makes a concurrent duplicate lose quietly instead of failing.
_STORE = text("""
WITH ev AS (
    INSERT INTO tds_inbox_events (entity_type, zoho_id, event_type, idempotency_key, zoho_last_modified,
                                  payload)
    VALUES (:entity, :zoho_id, :event, :key, :modified, CAST(:payload AS jsonb))
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
)
INSERT INTO tds_sync_queue (event_id, entity_type, zoho_id, dispatched_at)
SELECT id, :entity, :zoho_id, CASE WHEN :dispatch THEN now() END FROM ev
RETURNING id, event_id
""")
_EXISTING = text("SELECT id FROM tds_inbox_events WHERE idempotency_key = :key")

@dataclass(frozen=True)
class Stored:
    event_id: int
    item_id: int | None  # None: a duplicate of event_id

    @property
    def duplicate(self) -> bool:
        return self.item_id is None


def store(engine: Engine, delivery: Delivery, payload_json: str, will_dispatch: bool) -> Stored:
    params = {"entity": delivery.spec.name, "zoho_id": delivery.zoho_id, "event": delivery.event_type,
              "key": delivery.idempotency_key, "modified": delivery.zoho_last_modified,
              "payload": payload_json, "dispatch": will_dispatch}
    with engine.begin() as conn:
        row = conn.execute(_STORE, params).first()
        if row is not None:
            return Stored(event_id=row.event_id, item_id=row.id)
        existing = conn.execute(_EXISTING, {"key": delivery.idempotency_key}).scalar_one()
        return Stored(event_id=existing, item_id=None)
