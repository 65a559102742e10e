"""Getting sync runs done: queued for a worker (``queue``), or pulled here and now (``pull``, ``execute``).

A queued run is a row in ``tds_sync_runs`` plus a message asking a worker to execute it; the row is the
truth: a run whose message could not be sent stays queued with ``dispatched_at`` NULL, and the workers'
recovery sweep sends it later. Executing a run is one sequence wherever it happens (``tds sync``, the
sync actor, the tests): start the run, pull, and let the pull record its end.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from tds_daemon import entities
from tds_daemon.apply.broker import redis_client
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.entities import EntitySpec
from tds_daemon.oneline import described
from tds_daemon.pull import runs
from tds_daemon.pull.pulls import SYNC_ACTOR, SYNC_QUEUE, Progress, Syncer, SyncError, Tally
from tds_daemon.pull.zoho import ZohoClient
from tds_daemon.store.schema import sync_runs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueuedRun:
    id: int
    entity: str
    kind: str
    dispatched: bool  # False: in PostgreSQL, but its message waits for the recovery sweep
    reused: bool = False  # a run already queued for the same entity and kind, not a new one

    def as_json(self) -> dict:
        return {"id": self.id, "entity": self.entity, "kind": self.kind, "status": "queued", "reused": self.reused}


def queue(engine: Engine, dispatcher: Dispatcher, names: Iterable[str], kind: str, origin: str, *,
          unless_queued: bool = False, reuse_queued: bool = False) -> list[QueuedRun]:
    """Queue one run of ``kind`` per entity and send it to the sync actor.

    ``reuse_queued`` returns the run of this kind already queued for an entity instead of a second one
    (an operator's requests, e.g. ``products`` and ``sync-all`` sent together, share it); its message
    is not sent again (the recovery sweep sends one that was never sent).

    ``unless_queued`` skips the entities that already have a run of this kind waiting to start, which
    would do the same work: a slow worker does not collect a pile of identical scheduled runs. Only
    queued runs count, never running ones: a run whose worker was killed can stay "running" for good.
    """
    names = list(names)
    if unless_queued:
        waiting = _queued(engine, names, kind)
        names = [n for n in names if n not in waiting]
    started = []
    for name in dict.fromkeys(names):
        if reuse_queued:
            run_id, reused, dispatched = runs.create_or_reuse(engine, name, kind, origin=origin)
            if reused:
                started.append(QueuedRun(run_id, name, kind, dispatched, reused=True))
                continue
        else:
            run_id = runs.create(engine, name, kind, origin=origin)
        started.append(QueuedRun(run_id, name, kind, _dispatch(engine, dispatcher, run_id)))
    return started


def _dispatch(engine: Engine, dispatcher: Dispatcher, run_id: int) -> bool:
    """Send a queued run to the sync actor and record that it was sent (an unsent one waits for the recovery
    sweep); whether it was sent."""
    sent = dispatcher.send_to(SYNC_QUEUE, SYNC_ACTOR, run_id)
    if sent:
        runs.mark_dispatched(engine, run_id)
    return sent


def _queued(engine: Engine, names: list[str], kind: str) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(select(sync_runs.c.entity_type).where(
            sync_runs.c.status == "queued", sync_runs.c.kind == kind, sync_runs.c.entity_type.in_(names),
            sync_runs.c.item_ids.is_(None))).scalars())


def queue_items(engine: Engine, dispatcher: Dispatcher, entity: str, kind: str, item_ids: list[str],
                origin: str) -> QueuedRun:
    """Queue a run of ``kind`` of the chosen items of ``entity`` only (the ids are kept in the run, so that the
    recovery sweep can send it again) and send it to the sync actor; never shared with another run."""
    run_id = runs.create(engine, entity, kind, origin=origin, item_ids=item_ids)
    return QueuedRun(run_id, entity, kind, _dispatch(engine, dispatcher, run_id))


@dataclass(frozen=True)
class Pulled:
    """One executed run: its tally when it succeeded, else the one line it failed with."""
    run_id: int
    spec: EntitySpec | None  # None: the run named an entity this TDS does not know
    tally: Tally | None
    error: str | None
    run: dict[str, Any] | None = None  # the run as recorded at its end (``pull`` reads it back)


def pull(config, engine: Engine, client: ZohoClient, entity: str, kind: str, *, origin: str,
         since: dt.datetime | None = None, progress: Progress | None = None,
         item_ids: list[str] | None = None) -> Pulled:
    """Create a run of ``kind`` for ``entity`` (a canonical name; ``item_ids``: of these items only), start
    it, pull and record it, in this process.

    A failed pull is answered, never raised: a SyncError with the run as recorded, anything else
    (PostgreSQL or Redis gone mid-run, which the run recorded when it could) described in one line, so
    a command can report every entity's outcome with its run id.
    """
    spec = entities.get(entity)
    run_id = runs.create(engine, spec.name, kind, origin=origin, since=since, item_ids=item_ids)
    runs.start(engine, run_id)
    try:
        pulled = _pull(config, engine, client, run_id, spec, kind, since, progress, item_ids)
        return replace(pulled, run=runs.get(engine, run_id))
    except Exception as e:
        log.debug("sync run %s raised", run_id, exc_info=True)
        return Pulled(run_id, spec, None, described(e))


def execute(config, engine: Engine, run_id: int, *, client: ZohoClient | None = None,
            progress: Progress | None = None) -> Pulled | None:
    """Start the queued run ``run_id``, pull and record it; None if it is not queued (already run, or unknown).

    Without ``client``, one of its own spends the calls: a person's (``manual``) when the run was queued
    from a terminal, background work (``scheduled``) otherwise. Errors other than SyncError are raised
    (the run recorded them), for the caller's retry policy to see.
    """
    run = runs.start(engine, run_id)
    if run is None:
        return None
    spec = entities.BY_NAME.get(run["entity_type"])
    if spec is None:
        error = f"unknown entity {run['entity_type']!r}"
        runs.finish(engine, run_id, "failed", {}, error)
        return Pulled(run_id, None, None, error)
    if client is not None:
        return _pull(config, engine, client, run_id, spec, run["kind"], run["since"], progress, run["item_ids"])
    purpose = "manual" if run["origin"] == "cli" else "scheduled"
    own = ZohoClient(config, redis_client(config), alerts=engine, purpose=purpose)
    try:
        return _pull(config, engine, own, run_id, spec, run["kind"], run["since"], progress, run["item_ids"])
    finally:
        own.close()


def _pull(config, engine: Engine, client: ZohoClient, run_id: int, spec: EntitySpec, kind: str,
          since: dt.datetime | None, progress: Progress | None, item_ids: list[str] | None = None) -> Pulled:
    try:
        tally = Syncer(config, engine, client).run(run_id, spec, kind, since, progress, item_ids)
    except SyncError as e:
        return Pulled(run_id, spec, None, str(e))  # recorded in the run
    return Pulled(run_id, spec, tally, None)
