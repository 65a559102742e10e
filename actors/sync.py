"""The sync actor: executes a queued sync run (full, incremental or stock) of one entity."""

from __future__ import annotations

import logging

import dramatiq

from actors import runtime
from tds_daemon import entities
from tds_daemon.apply.broker import redis_client
from tds_daemon.pull import runs
from tds_daemon.pull.detail import DETAIL_ACTOR, DETAIL_QUEUE
from tds_daemon.pull.pulls import SYNC_ACTOR, SYNC_QUEUE, Syncer, SyncError
from tds_daemon.pull.zoho import ZohoClient

log = logging.getLogger(__name__)
TIME_LIMIT_MS = 60 * 60 * 1000  # a full sync of a large entity within the 100/min limit takes minutes


def sync_run(run_id: int) -> None:
    rt = runtime.get()
    run = runs.start(rt.engine, run_id)
    if run is None:
        log.info("sync run %s is not queued (already run or unknown): nothing to do", run_id)
        return
    spec = entities.BY_NAME.get(run["entity_type"])
    if spec is None:
        runs.finish(rt.engine, run_id, "failed", {}, f"unknown entity {run['entity_type']!r}")
        return
    # A run queued by a person from a terminal is theirs to spend; every other run is background work.
    purpose = "manual" if run["origin"] == "cli" else "scheduled"
    client = ZohoClient(rt.config, redis_client(rt.config), alerts=rt.engine, purpose=purpose)
    try:
        tally = Syncer(rt.config, rt.engine, client).run(run_id, spec, run["kind"], run["since"])
    except SyncError:
        return  # recorded in the run; the scheduler's next run tries again
    finally:
        client.close()
    if not spec.lists_whole and (tally.created or tally.updated):
        # Rows now wait for their whole objects: the backfill starts on them at once (one runs at a time).
        rt.dispatcher.send_to(DETAIL_QUEUE, DETAIL_ACTOR, "sync")


def declare(broker: dramatiq.Broker) -> dramatiq.Actor:
    return dramatiq.actor(sync_run, actor_name=SYNC_ACTOR, queue_name=SYNC_QUEUE, broker=broker,
                          time_limit=TIME_LIMIT_MS)
