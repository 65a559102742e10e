"""The sync actor: executes a queued sync run (full, incremental or stock) of one entity."""

from __future__ import annotations

import logging

import dramatiq

from actors import runtime
from tds_daemon.pull import launch
from tds_daemon.pull.detail import DETAIL_ACTOR, DETAIL_QUEUE
from tds_daemon.pull.pulls import SYNC_ACTOR, SYNC_QUEUE

log = logging.getLogger(__name__)
TIME_LIMIT_MS = 60 * 60 * 1000  # a full sync of a large entity within the 100/min limit takes minutes


def sync_run(run_id: int) -> None:
    rt = runtime.get()
    pulled = launch.execute(rt.config, rt.engine, run_id)
    if pulled is None:
        log.info("sync run %s is not queued (already run or unknown): nothing to do", run_id)
        return
    if pulled.error is not None:
        return  # recorded in the run; the scheduler's next run tries again
    if not pulled.spec.lists_whole and (pulled.tally.created or pulled.tally.updated):
        # Rows now wait for their whole objects: the backfill starts on them at once (one runs at a time).
        rt.dispatcher.send_to(DETAIL_QUEUE, DETAIL_ACTOR, "sync")


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    return dramatiq.actor(sync_run, actor_name=SYNC_ACTOR, queue_name=SYNC_QUEUE, broker=broker,
                          time_limit=TIME_LIMIT_MS)
