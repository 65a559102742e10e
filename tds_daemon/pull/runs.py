"""Sync runs as recorded in ``tds_sync_runs``, and the cursors of incremental pulls."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, Engine

from tds_daemon import metrics
from tds_daemon.apply import events
from tds_daemon.guard import alerts
from tds_daemon.store.schema import sync_cursors, sync_runs

COUNTS = ("pages", "objects", "created", "updated", "unchanged", "stale", "deleted", "requests")


def create(engine: Engine, entity: str, kind: str, *, origin: str, since: dt.datetime | None = None,
           item_ids: list[str] | None = None) -> int:
    """A new queued run; ``item_ids``: a run of these items only (not the whole entity)."""
    with engine.begin() as c:
        return c.execute(insert(sync_runs).values(entity_type=entity, kind=kind, origin=origin, since=since,
                                                  item_ids=item_ids).returning(sync_runs.c.id)).scalar_one()


def create_or_reuse(engine: Engine, entity: str, kind: str, *, origin: str) -> tuple[int, bool, bool]:
    """The run of ``kind`` already queued for ``entity`` (not started yet; a run of chosen items does not
    count), else a new one: (id, reused, dispatched). One transaction under an advisory lock per entity and
    kind, so requests that arrive together, in any process, queue one run between them."""
    with engine.begin() as c:
        c.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"tds_sync_run:{entity}:{kind}"})
        row = c.execute(select(sync_runs.c.id, sync_runs.c.dispatched_at).where(
            sync_runs.c.entity_type == entity, sync_runs.c.kind == kind, sync_runs.c.status == "queued",
            sync_runs.c.item_ids.is_(None)).order_by(sync_runs.c.id).limit(1)).first()
        if row is not None:
            return row.id, True, row.dispatched_at is not None
        run_id = c.execute(insert(sync_runs).values(entity_type=entity, kind=kind, origin=origin)
                           .returning(sync_runs.c.id)).scalar_one()
        return run_id, False, False


# Queued runs whose message never reached a worker (Redis down when asked, or flushed since).
_LOST_QUEUED = text("""
UPDATE tds_sync_runs SET dispatched_at = now()
WHERE id IN (SELECT id FROM tds_sync_runs WHERE status = 'queued'
             AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => :after_s))
             ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
RETURNING id
""")


def mark_dispatched(engine: Engine, run_id: int) -> None:
    with engine.begin() as c:
        c.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(dispatched_at=func.now()))


def lost_queued(conn: Connection, after_s: int) -> list[int]:
    return list(conn.execute(_LOST_QUEUED, {"after_s": after_s}).scalars())


def undispatch(conn: Connection, run_ids: list[int]) -> None:
    """The runs' messages are gone: let the next recovery pass send them at once."""
    if run_ids:
        conn.execute(update(sync_runs).where(sync_runs.c.id.in_(run_ids), sync_runs.c.status == "queued")
                     .values(dispatched_at=None))


def start(engine: Engine, run_id: int) -> dict[str, Any] | None:
    """Mark a queued run running; None if it is not queued (already run, or unknown)."""
    with engine.begin() as c:
        row = c.execute(update(sync_runs).where(sync_runs.c.id == run_id, sync_runs.c.status == "queued")
                        .values(status="running", started_at=func.now(), heartbeat_at=func.now())
                        .returning(*sync_runs.c)).first()
    return dict(row._mapping) if row else None


def progress(engine: Engine, run_id: int, counts: dict[str, int]) -> None:
    """The counts so far, and the heartbeat that says the run is alive."""
    with engine.begin() as c:
        c.execute(update(sync_runs).where(sync_runs.c.id == run_id, sync_runs.c.status == "running")
                  .values(heartbeat_at=func.now(), **counts))


# Running runs whose heartbeat stopped: their worker died (SIGKILL, OOM, a lost host) mid-run.
_ABANDONED = text("""
UPDATE tds_sync_runs
SET status = 'failed', finished_at = now(),
    duration_s = extract(epoch FROM now() - coalesce(started_at, now())),
    error = 'abandoned: no progress for ' || :after_s || ' s (its worker stopped mid-run); the next '
            || 'scheduled run, or tds sync, pulls again'
WHERE status = 'running' AND coalesce(heartbeat_at, started_at) < now() - make_interval(secs => :after_s)
RETURNING id, entity_type, kind, error, created, updated, unchanged, stale, deleted
""")


def abandon_stale(conn: Connection, after_s: int) -> list[tuple[int, str]]:
    """Fail the runs whose worker stopped mid-run (each ends with its event); (id, entity) of each."""
    ended = conn.execute(_ABANDONED, {"after_s": after_s}).all()
    for r in ended:
        counts = {k: getattr(r, k) or 0 for k in ("created", "updated", "unchanged", "stale", "deleted")}
        completed(conn, r.id, r.entity_type, r.kind, "failed", counts, r.error)
    return [(r.id, r.entity_type) for r in ended]


def completed(conn: Connection, run_id: int, entity: str, kind: str, outcome: str, counts: dict[str, int],
              error: str | None) -> None:
    """The run's end as an event, in the transaction that records it."""
    events.add(conn, events.SYNC_COMPLETED, {"run_id": run_id, "entity": entity, "kind": kind, "outcome": outcome,
                                             "counts": counts, "error": error}, entity=entity)


def latest_successes(conn: Connection) -> list[tuple[str, str, float]]:
    """(entity, kind, epoch seconds) of each entity's and kind's latest succeeded run of the whole entity (a
    run of chosen items says nothing of the others' freshness)."""
    rows = conn.execute(select(sync_runs.c.entity_type, sync_runs.c.kind, func.max(sync_runs.c.finished_at))
                        .where(sync_runs.c.status == "succeeded", sync_runs.c.item_ids.is_(None))
                        .group_by(sync_runs.c.entity_type, sync_runs.c.kind))
    return [(e, k, at.timestamp()) for e, k, at in rows if at is not None]


SYNC_FAILED_ALERT = "sync_failed"
FAILURES_BEFORE_ALERT = 3  # consecutive failed pulls of an entity that raise sync_failed


def finish(engine: Engine, run_id: int, status: str, counts: dict[str, int], error: str | None = None,
           kind: str | None = None, item_results: dict[str, dict] | None = None) -> None:
    """Record the run's end (``item_results``: a run of chosen items, what became of each); count it
    (``tds_sync_runs_total``, ``tds_sync_objects_total``); a failure that makes FAILURES_BEFORE_ALERT in a
    row for its entity raises ``sync_failed``, a success resolves it."""
    extra: dict[str, Any] = {"kind": kind} if kind else {}
    if item_results is not None:
        extra["item_results"] = item_results
    with engine.begin() as c:
        row = c.execute(update(sync_runs).where(sync_runs.c.id == run_id).values(
            status=status, error=error, finished_at=func.now(), **extra,
            duration_s=func.extract("epoch", func.now() - func.coalesce(sync_runs.c.started_at, func.now())),
            **counts).returning(sync_runs.c.entity_type, sync_runs.c.kind)).first()
        if row is not None:
            completed(c, run_id, row.entity_type, row.kind, status, counts, error)
    if row is None:
        return
    metrics.sync_runs.labels(row.entity_type, row.kind, status).inc()
    for outcome in ("created", "updated", "unchanged", "stale", "deleted"):
        if counts.get(outcome):
            metrics.sync_objects.labels(row.entity_type, outcome).inc(counts[outcome])
    note_outcome(engine, row.entity_type)


def note_outcome(engine: Engine, entity: str) -> None:
    """Raise or resolve ``sync_failed`` for ``entity`` from its latest finished pulls of the whole entity
    (skipped ones, which sent nothing, count neither way; nor do runs of chosen items)."""
    with engine.connect() as c:
        latest = c.execute(select(sync_runs.c.status, sync_runs.c.kind, sync_runs.c.error).where(
            sync_runs.c.entity_type == entity, sync_runs.c.status.in_(("succeeded", "failed")),
            sync_runs.c.item_ids.is_(None))
            .order_by(sync_runs.c.id.desc()).limit(FAILURES_BEFORE_ALERT)).all()
    if not latest:
        return
    if latest[0].status == "succeeded":
        alerts.resolve(engine, SYNC_FAILED_ALERT, entity=entity)
    elif len(latest) == FAILURES_BEFORE_ALERT and all(r.status == "failed" for r in latest):
        last = latest[0]
        alerts.raise_alert(engine, SYNC_FAILED_ALERT, "warning",
                           f"pulls of {entity} failed {FAILURES_BEFORE_ALERT} times in a row; the last ({last.kind}): "
                           f"{(last.error or '')[:300]}", entity=entity,
                           details={"failures": FAILURES_BEFORE_ALERT, "last_error": last.error})


def get(engine: Engine, run_id: int) -> dict[str, Any] | None:
    with engine.connect() as c:
        row = c.execute(select(sync_runs).where(sync_runs.c.id == run_id)).first()
    return as_json(row._mapping) if row else None


def recent(engine: Engine, *, entity: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    q = select(sync_runs).order_by(sync_runs.c.id.desc()).limit(limit)
    if entity:
        q = q.where(sync_runs.c.entity_type == entity)
    with engine.connect() as c:
        return [as_json(r._mapping) for r in c.execute(q)]


def as_json(row) -> dict[str, Any]:
    out = {}
    for k, v in dict(row).items():
        if isinstance(v, dt.datetime):
            v = v.isoformat()
        elif v is not None and k == "duration_s":
            v = float(v)
        out[k] = v
    return out


def cursor(conn: Connection, entity: str) -> dt.datetime | None:
    return conn.execute(select(sync_cursors.c.last_modified).where(sync_cursors.c.entity_type == entity)
                        ).scalar_one_or_none()


def advance_cursor(conn: Connection, entity: str, kind: str, newest: dt.datetime | None) -> None:
    """Move the cursor forward (never back) and stamp when this kind of pull last succeeded."""
    stamp = {"last_full_at": func.now()} if kind == "full" else {"last_incremental_at": func.now()}
    stmt = pg_insert(sync_cursors).values(entity_type=entity, last_modified=newest, **stamp)
    stmt = stmt.on_conflict_do_update(index_elements=[sync_cursors.c.entity_type], set_={
        "last_modified": func.greatest(sync_cursors.c.last_modified, stmt.excluded.last_modified),
        "updated_at": func.now(), **stamp})
    conn.execute(stmt)


def latest_per_entity(conn: Connection) -> dict[str, dict[str, Any]]:
    rows = conn.execute(select(sync_runs).distinct(sync_runs.c.entity_type)
                        .order_by(sync_runs.c.entity_type, sync_runs.c.id.desc()))
    return {r.entity_type: as_json(r._mapping) for r in rows}


def latest_per_kind(conn: Connection) -> dict[str, dict[str, dict[str, Any]]]:
    """{entity: {kind: its most recent run of the whole entity}}: what the dashboard shows as each entity's
    last pulls."""
    rows = conn.execute(select(sync_runs).where(sync_runs.c.item_ids.is_(None))
                        .distinct(sync_runs.c.entity_type, sync_runs.c.kind)
                        .order_by(sync_runs.c.entity_type, sync_runs.c.kind, sync_runs.c.id.desc()))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.entity_type, {})[r.kind] = as_json(r._mapping)
    return out
