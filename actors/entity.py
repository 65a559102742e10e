"""Entity actors: one Dramatiq actor per registry spec, all running ``apply_item``.

Each message carries a sync item id; the item and its inbox event in PostgreSQL are the truth. The
effect (the upsert) and the item's completion commit in one transaction, so a redelivered message
for a completed item finds nothing to claim and does nothing.

Each entity has a circuit breaker (``entity:<name>``, ``tds_daemon.breakers``), asked once an item is
claimed. While it refuses, the item is deferred rather than tried: back to ``failed`` with
``error_code`` ``breaker_open``, ``next_attempt_at`` when the breaker lets trial calls through, and
the claim's attempt given back, so it keeps every retry; the recovery sweep dispatches it again then.
What the breaker is told: an apply that commits is a success, one that fails transiently (the
database unavailable, a timeout, a deadlock: ``tds_daemon.db.transient_code``) a failure; a
permanent error (a bad payload, a TDS bug) is about the item, not the entity, and counts neither way.
"""

from __future__ import annotations

import datetime as dt
import logging
import random

import dramatiq
from sqlalchemy import exc

from tds_daemon import entities, intake, syncqueue, upsert
from tds_daemon.breakers import HALF_OPEN, OPEN, Breaker, Decision, clock
from tds_daemon.db import transient_code
from tds_daemon.metrics import sync_items, webhook_apply_seconds

from . import runtime

log = logging.getLogger(__name__)
# A half-open breaker refused (its trials are in flight): they settle within an apply's time, so look again soon.
HALF_OPEN_RECHECK_S = 2.0


def apply_item(item_id: int) -> None:
    rt = runtime.get()
    cfg = rt.config
    try:
        with rt.engine.begin() as conn:
            item = syncqueue.claim(conn, item_id, cfg.workers.lease_s)
    except exc.SQLAlchemyError as e:
        # Not claimed, so still pending in PostgreSQL: recovery dispatches it again once the
        # database answers. Nothing to retry here.
        log.warning("could not claim item=%s: %s", item_id, _describe(e))
        return
    if item is None:
        log.debug("nothing to do: item=%s (completed, taken or dead)", item_id)
        return
    spec = entities.BY_NAME.get(item.entity_type)
    breaker = rt.breakers.entity(spec.name) if spec is not None and rt.breakers is not None else None
    decision = breaker.check() if breaker is not None else Decision(True, "closed")
    if not decision:
        _defer(rt, item, breaker, decision)
        return
    try:
        if spec is None:
            raise upsert.InvalidObject(f"entity type {item.entity_type!r} is not known to this TDS version")
        change = upsert.Change(obj=intake.extract_object(spec, item.payload), version_at=item.received_at,
                               deleted=item.event_type == "deleted")
        with rt.engine.begin() as conn:
            outcome = upsert.apply(conn, spec, cfg.database.entity_schema, [change])[item.zoho_id]
            syncqueue.complete(conn, item.id, outcome)
    except upsert.InvalidObject as e:
        _untold(breaker, decision)
        _finish_failed(rt, item, permanent=True, code=e.code, message=str(e))
    except Exception as e:  # classified below; nothing escapes to Dramatiq, whose retries we do not use
        code = transient_code(e)
        if code:
            if breaker is not None:
                breaker.record(False)
            exhausted = item.attempt_count >= cfg.workers.max_attempts
            _finish_failed(rt, item, permanent=exhausted, code="retries_exhausted" if exhausted else code,
                           message=_describe(e), transient=True)
        else:
            _untold(breaker, decision)
            log.exception("unexpected error applying item=%s entity=%s", item.id, item.entity_type)
            _finish_failed(rt, item, permanent=True, code="internal_error",
                           message=f"{_describe(e)}; this is a TDS bug: report it with the worker log, "
                                   f"then replay the item")
        return
    if breaker is not None:
        breaker.record(True)
    name = spec.name
    sync_items.labels(name, outcome).inc()
    webhook_apply_seconds.labels(name).observe(
        max(0.0, (dt.datetime.now(dt.UTC) - item.received_at).total_seconds()))
    log.info("applied: entity=%s zoho_id=%s item=%s outcome=%s", name, item.zoho_id, item.id, outcome)


def _describe(e: Exception) -> str:
    orig = getattr(e, "orig", None)
    text = str(orig or e).strip().splitlines()
    return f"{type(orig or e).__name__}: {text[0] if text else ''}"[:500]


def _untold(breaker: Breaker | None, decision: Decision) -> None:
    """The apply said nothing about the entity (a permanent error): a trial permit it held goes back."""
    if breaker is not None and decision.state == HALF_OPEN:
        breaker.release()


def _defer(rt, item, breaker: Breaker, decision: Decision) -> None:
    """Not tried: failed until the breaker may let it through, its attempt given back."""
    now = dt.datetime.now(dt.UTC)
    if decision.state == OPEN and decision.retry_at is not None:
        delay = max(0.0, (decision.retry_at - now).total_seconds())
        why = f"circuit breaker {breaker.name} is open until {clock(decision.retry_at)}"
    else:
        delay = min(HALF_OPEN_RECHECK_S, breaker.settings.open_s)
        why = f"circuit breaker {breaker.name} is half-open with its trial calls in flight"
    delay += random.uniform(0.05, 0.5)  # deferred items come back spread out, not all in one sweep
    try:
        with rt.engine.begin() as conn:
            syncqueue.defer(conn, item.id, "breaker_open", f"{why}; deferred without using an attempt", delay)
    except exc.SQLAlchemyError as e:
        # Still 'processing' in the database: its lease runs out and recovery dispatches it again.
        log.warning("could not defer item=%s: %s", item.id, type(e).__name__)
        return
    sync_items.labels(item.entity_type, "deferred").inc()
    log.info("deferred: entity=%s zoho_id=%s item=%s retry_in=%.1fs reason=%s", item.entity_type, item.zoho_id,
             item.id, delay, why)


def _finish_failed(rt, item, *, permanent: bool, code: str, message: str, transient: bool = False) -> None:
    cfg = rt.config.workers
    try:
        with rt.engine.begin() as conn:
            if permanent:
                if transient:
                    message = f"gave up after {item.attempt_count} attempts; last error: {message}"
                syncqueue.dead_letter(conn, item.id, code, message)
            else:
                delay = syncqueue.backoff_s(item.attempt_count, cfg.min_backoff_ms, cfg.max_backoff_ms)
                syncqueue.fail(conn, item.id, code, message, delay)
    except exc.SQLAlchemyError as e:
        # Still 'processing' in the database: its lease runs out and recovery dispatches it again.
        log.warning("could not record failure of item=%s: %s", item.id, type(e).__name__)
        return
    outcome = "dead_letter" if permanent else "failed"
    sync_items.labels(item.entity_type, outcome).inc()
    level = logging.ERROR if permanent else logging.WARNING
    log.log(level, "%s: entity=%s zoho_id=%s item=%s attempt=%s code=%s message=%s", outcome,
            item.entity_type, item.zoho_id, item.id, item.attempt_count, code, message)


def declare(broker: dramatiq.Broker) -> dict[str, dramatiq.Actor]:
    """Declare every entity actor on the broker; their names and queues come from the registry."""
    return {
        spec.name: dramatiq.actor(apply_item, actor_name=spec.actor_name, queue_name=spec.queue,
                                  broker=broker)
        for spec in entities.ENTITIES
    }
