"""Queueing sync runs: a row in ``tds_sync_runs``, then a message asking a worker to execute it.

Used by the admin API and the scheduler alike. The row is the truth: a run whose message could not
be sent stays queued with ``dispatched_at`` NULL, and the workers' recovery sweep sends it later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Engine

from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.pull import runs
from tds_daemon.pull.pulls import SYNC_ACTOR, SYNC_QUEUE
from tds_daemon.store.schema import sync_runs


@dataclass(frozen=True)
class QueuedRun:
    id: int
    entity: str
    kind: str
    dispatched: bool  # False: in PostgreSQL, but its message waits for the recovery sweep
    reused: bool = False  # a run already queued for the same entity and kind, not a new one

    def as_json(self) -> dict:
        return {"id": self.id, "entity": self.entity, "kind": self.kind, "status": "queued", "reused": self.reused}


def start(engine: Engine, dispatcher: Dispatcher, names: Iterable[str], kind: str, origin: str, *,
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
        sent = dispatcher.send_to(SYNC_QUEUE, SYNC_ACTOR, run_id)
        if sent:
            runs.mark_dispatched(engine, run_id)
        started.append(QueuedRun(run_id, name, kind, sent))
    return started


def _queued(engine: Engine, names: list[str], kind: str) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(select(sync_runs.c.entity_type).where(
            sync_runs.c.status == "queued", sync_runs.c.kind == kind, sync_runs.c.entity_type.in_(names))
        ).scalars())
