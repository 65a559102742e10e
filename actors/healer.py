"""The healer actor: one healer run (``tds_daemon.care.healing.run``) when the scheduler asks (every 15 minutes by
default); ``POST /api/tds/auto-healing/run`` runs the same code in the API process.

Each worker already sweeps on its own every few seconds (``actors.middleware.recovery``); this run also
finds messages Redis lost at once, retries dead letters by policy, raises or resolves the queue alerts,
and stores its report in ``tds_healer_runs``.
"""

from __future__ import annotations

import logging

import dramatiq
from sqlalchemy import exc

from actors import runtime
from tds_daemon.care import healing
from tds_daemon.care.jobs import HEALER_ACTOR, HEALER_QUEUE

log = logging.getLogger(__name__)
TIME_LIMIT_MS = 5 * 60 * 1000


def heal(origin: str = "scheduler") -> None:
    rt = runtime.get()
    try:
        healing.run(rt.engine, rt.dispatcher, rt.config, origin)
    except exc.SQLAlchemyError as e:
        # Every step is its own transaction: what was done is done; the next run (and every worker's own
        # sweep) does the rest.
        log.warning("healer: database unavailable, run not completed: error=%s", type(e).__name__)


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    return dramatiq.actor(heal, actor_name=HEALER_ACTOR, queue_name=HEALER_QUEUE, broker=broker,
                          time_limit=TIME_LIMIT_MS)
