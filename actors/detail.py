"""The detail backfill actor: reads the whole objects that rows lack (``tds_daemon.pull.detail``), from the
backfill's share of the day's Zoho budget, for at most DEADLINE_S; the next message resumes."""

from __future__ import annotations

import logging

import dramatiq
from sqlalchemy import exc

from actors import runtime
from tds_daemon.apply.broker import redis_client
from tds_daemon.pull import detail
from tds_daemon.pull.zoho import ZohoClient

log = logging.getLogger(__name__)
DEADLINE_S = 8 * 60  # shorter than the default schedule's 10 minutes: runs do not pile up
TIME_LIMIT_MS = 15 * 60 * 1000


def detail_backfill(origin: str = "scheduler") -> None:
    rt = runtime.get()
    redis = redis_client(rt.config)
    client = ZohoClient(rt.config, redis, alerts=rt.engine, purpose="backfill", stop=rt.stopping)
    try:
        report = detail.Backfill(rt.config, rt.engine, client).run(deadline_s=DEADLINE_S, stop=rt.stopping)
        if report.stopped != "already_running":  # the running one records its own report
            detail.record(redis, rt.config.redis.namespace, origin, report)
    except exc.SQLAlchemyError as e:  # each object is its own transaction: the next run resumes
        log.warning("detail backfill: database unavailable, run not completed: error=%s", type(e).__name__)
    finally:
        client.close()
        redis.close()


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    return dramatiq.actor(detail_backfill, actor_name=detail.DETAIL_ACTOR, queue_name=detail.DETAIL_QUEUE,
                          broker=broker, time_limit=TIME_LIMIT_MS)
