"""The stats actor, first form: counts the live rows of every entity table and logs them.

Comparing with Zoho's own counts, drift and repair come with its full version.
"""

from __future__ import annotations

import logging

import dramatiq
from sqlalchemy import exc, func, select

from tds_daemon import entities
from tds_daemon.jobs import STATS_ACTOR, STATS_QUEUE
from tds_daemon.schema import entity_table

from . import runtime

log = logging.getLogger(__name__)
TIME_LIMIT_MS = 10 * 60 * 1000


def live_rows(engine, schema: str) -> dict[str, int]:
    """Rows not marked deleted, per entity."""
    counts = {}
    with engine.connect() as conn:
        for spec in entities.ENTITIES:
            t = entity_table(spec, schema)
            counts[spec.name] = conn.execute(select(func.count()).where(t.c.deleted_at.is_(None))).scalar_one()
    return counts


def collect_stats() -> None:
    rt = runtime.get()
    try:
        counts = live_rows(rt.engine, rt.config.database.entity_schema)
    except exc.SQLAlchemyError as e:
        log.warning("stats: database unavailable, nothing counted: error=%s", type(e).__name__)
        return
    log.info("stats: live rows %s", " ".join(f"{name}={n}" for name, n in counts.items()))


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    return dramatiq.actor(collect_stats, actor_name=STATS_ACTOR, queue_name=STATS_QUEUE, broker=broker,
                          time_limit=TIME_LIMIT_MS)
