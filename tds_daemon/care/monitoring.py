"""The overall health of a TDS, as ``GET /api/tds/monitoring/health`` answers it.

The worst status that applies (``critical``, ``warning``, ``degraded``, else ``healthy``) with every reason,
worst first, from the sync queue's counts, the success rate of the last 24 hours, the open alerts, whether
Redis answers, and the ``monitoring.*`` thresholds. PostgreSQL not answering is no status at all: the API
answers 503. The rules: docs/OPERATIONS.md, "Day to day".
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import redis
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tds_daemon import entities
from tds_daemon.apply import syncqueue
from tds_daemon.config import Config
from tds_daemon.guard import alerts
from tds_daemon.pull.runs import SYNC_FAILED_ALERT
from tds_daemon.store.schema import STATUSES

LEVELS = ("healthy", "degraded", "warning", "critical")
SUCCESS_RATE_DEGRADED = 0.95
ALERT_ITEMS = 20

_FINISHED_24H = text("""
SELECT count(*) FILTER (WHERE status = 'completed' AND completed_at > now() - interval '24 hours') AS completed,
       count(*) FILTER (WHERE status IN ('dead_letter', 'failed')
                        AND last_failed_at > now() - interval '24 hours') AS failed
FROM tds_sync_queue
WHERE status IN ('completed', 'dead_letter', 'failed')
""")


def thresholds(config: Config) -> dict[str, Any]:
    m = config.monitoring
    return {"pending": {"warning": m.pending_warning, "critical": m.pending_critical},
            "dead_letter": {"warning": m.dead_letter_warning, "critical": m.dead_letter_critical},
            "success_rate_24h": {"degraded_below": SUCCESS_RATE_DEGRADED, "min_items": m.success_rate_min_items}}


def assess(engine: Engine, config: Config, redis_client: redis.Redis | None = None) -> dict[str, Any]:
    """The health document; raises SQLAlchemy's errors when PostgreSQL does not answer."""
    with engine.connect() as conn:
        counts = syncqueue.counts(conn)
        finished = conn.execute(_FINISHED_24H).one()
        alert_counts = alerts.open_counts(conn)
        alert_items = alerts.recent(conn, status="open", limit=ALERT_ITEMS)
    queue = {s: sum(n for (_, status), n in counts.items() if status == s) for s in STATUSES}
    by_entity = {spec.name: {s: counts.get((spec.name, s), 0) for s in STATUSES} for spec in entities.ENTITIES}
    for (name, s), n in counts.items():  # rows of an entity type this TDS does not know: still counted
        by_entity.setdefault(name, dict.fromkeys(STATUSES, 0))[s] = n
    done = finished.completed + finished.failed
    rate = round(finished.completed / done, 4) if done else None
    limits = thresholds(config)

    reasons: list[tuple[str, str]] = []  # (level, why)
    for key, label in (("pending", "pending items"), ("dead_letter", "dead letters")):
        for level in ("critical", "warning"):
            if queue[key] > limits[key][level]:
                reasons.append((level, f"{queue[key]} {label}, more than the {level} threshold "
                                       f"{limits[key][level]} (monitoring.{key}_{level})"))
                break
    for level in ("critical", "warning"):
        if alert_counts[level]:
            reasons.append((level, f"{alert_counts[level]} open {level} alert(s)"))
    for alert in alert_items:  # pulls that keep failing are named, entity by entity
        if alert["type"] == SYNC_FAILED_ALERT:
            reasons.append((alert["severity"], alert["message"]))
    if redis_client is not None:
        try:
            redis_client.ping()
        except (redis.RedisError, OSError) as e:
            reasons.append(("critical", f"Redis does not answer ({type(e).__name__}): events are stored but "
                                        "not applied until it does"))
    if rate is not None and rate < SUCCESS_RATE_DEGRADED and done >= config.monitoring.success_rate_min_items:
        reasons.append(("degraded", f"success rate of the last 24 h is {rate:.1%}, below "
                                    f"{SUCCESS_RATE_DEGRADED:.0%} ({done} items finished)"))
    if queue["failed"]:
        reasons.append(("degraded", f"{queue['failed']} item(s) failed and waiting for a retry"))
    reasons.sort(key=lambda r: -LEVELS.index(r[0]))
    status = reasons[0][0] if reasons else "healthy"
    return {
        "status": status,
        "reasons": [why for _, why in reasons],
        "queue": queue,
        "by_entity": by_entity,
        "success_rate_24h": rate,
        "finished_24h": {"completed": finished.completed, "failed": finished.failed},
        "alerts": {**alert_counts, "items": alert_items},
        "thresholds": limits,
        "checked_at": dt.datetime.now(dt.UTC).isoformat(),
    }
