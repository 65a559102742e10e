"""Retention: what the healer deletes so that the bookkeeping tables stop growing.

Each healer run deletes, older than ``healer.retain_days``: completed sync items and their inbox events,
finished sync runs, healer runs and resolved alerts; and events older than ``events.retain_days`` that every
subscriber has had. Dead letters and unfinished items are never deleted. At most ``BATCH`` rows of each
kind go per run, each kind in its own short transaction, so a large backlog is caught up over a few runs
without long locks. A re-delivery of a deleted event is accepted again and found stale or unchanged.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

BATCH = 20000

_ITEMS = text("""
WITH gone AS (
    DELETE FROM tds_sync_queue WHERE id IN (
        SELECT id FROM tds_sync_queue
        WHERE status = 'completed' AND completed_at < now() - make_interval(days => :days)
        ORDER BY completed_at LIMIT :batch)
    RETURNING event_id
)
DELETE FROM tds_inbox_events WHERE id IN (SELECT event_id FROM gone)
RETURNING id
""")

# (what, statement): each deletes at most :batch rows older than :days.
_OTHERS = (
    ("sync_runs", text("""DELETE FROM tds_sync_runs WHERE id IN (
        SELECT id FROM tds_sync_runs WHERE status IN ('succeeded', 'failed', 'skipped')
        AND finished_at < now() - make_interval(days => :days) ORDER BY id LIMIT :batch)""")),
    ("healer_runs", text("""DELETE FROM tds_healer_runs WHERE id IN (
        SELECT id FROM tds_healer_runs WHERE finished_at < now() - make_interval(days => :days)
        ORDER BY id LIMIT :batch)""")),
    ("resolved_alerts", text("""DELETE FROM tds_alerts WHERE id IN (
        SELECT id FROM tds_alerts WHERE resolved_at < now() - make_interval(days => :days)
        ORDER BY id LIMIT :batch)""")),
)


_EVENTS = text("""DELETE FROM tds_events WHERE id IN (
    SELECT id FROM tds_events e WHERE created_at < now() - make_interval(days => :days)
    AND id <= coalesce((SELECT min("cursor") FROM tds_event_subscribers WHERE url = ANY(:urls)), id)
    AND NOT EXISTS (SELECT 1 FROM tds_event_dead_letters d WHERE d.event_id = e.id)
    ORDER BY id LIMIT :batch)""")


def prune(engine: Engine, days: int, batch: int = BATCH, *, events_days: int | None = None,
          subscribers: list[str] = ()) -> dict[str, int]:
    """Delete what is older than ``days`` (events: ``events_days``, kept while a subscriber among
    ``subscribers``, by URL, still waits for them); returns the rows deleted per kind."""
    params = {"days": days, "batch": batch}
    with engine.begin() as conn:
        deleted = {"completed_items": len(conn.execute(_ITEMS, params).all())}
    for what, statement in _OTHERS:
        with engine.begin() as conn:
            deleted[what] = conn.execute(statement, params).rowcount
    if events_days is not None:
        with engine.begin() as conn:
            deleted["events"] = conn.execute(_EVENTS, {"days": events_days, "batch": batch,
                                                       "urls": list(subscribers)}).rowcount
    return deleted
