"""The healer actor, first form: one recovery sweep when the scheduler asks (every 15 minutes by default).

Each worker already sweeps on its own every few seconds (``actors.middleware.recovery``); this run is
the scheduled, logged pass that also covers a deployment whose workers were all down at the time.
Retrying dead letters by policy and raising alerts come with its full version.
"""

from __future__ import annotations

import logging

import dramatiq
from sqlalchemy import exc

from tds_daemon.jobs import HEALER_ACTOR, HEALER_QUEUE

from . import runtime
from .middleware.recovery import sweep

log = logging.getLogger(__name__)
TIME_LIMIT_MS = 5 * 60 * 1000


def heal() -> None:
    try:
        sent = sweep(runtime.get())
    except exc.SQLAlchemyError as e:
        # Nothing was changed; the next scheduled run (and every worker's own sweep) tries again.
        log.warning("healer: database unavailable, nothing done: error=%s", type(e).__name__)
        return
    log.info("healer: recovery sweep done: dispatched_again=%d", sent)


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    return dramatiq.actor(heal, actor_name=HEALER_ACTOR, queue_name=HEALER_QUEUE, broker=broker,
                          time_limit=TIME_LIMIT_MS)
