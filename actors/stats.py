"""The stats actor: one stats run (``tds_daemon.care.stats.run``) — Zoho's counts and fields against the local
copy, an alert and a repair sync for an entity below the match threshold — daily from the scheduler
(no arguments: every entity) and on ``POST /api/tds/stats/run`` (origin "api", optionally some entities).
"""

from __future__ import annotations

import logging

import dramatiq
from sqlalchemy import exc

from actors import runtime
from tds_daemon import entities
from tds_daemon.care import stats
from tds_daemon.care.jobs import STATS_ACTOR, STATS_QUEUE

log = logging.getLogger(__name__)
# Every list page of every entity under the shared 100 requests/minute: minutes for a large organization.
TIME_LIMIT_MS = 60 * 60 * 1000


def collect_stats(origin: str = "scheduler", names: list[str] | None = None) -> None:
    rt = runtime.get()
    known = [n for n in names or () if n in entities.BY_NAME]
    if names and not known:
        log.warning("stats: no known entity in %r: nothing to do", names)
        return
    try:
        stats.run(rt.config, rt.engine, rt.dispatcher, origin if origin in ("scheduler", "api", "cli") else "api",
                  known or None)
    except exc.SQLAlchemyError as e:
        log.warning("stats: database unavailable, run not completed: error=%s", type(e).__name__)


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    return dramatiq.actor(collect_stats, actor_name=STATS_ACTOR, queue_name=STATS_QUEUE, broker=broker,
                          time_limit=TIME_LIMIT_MS)
