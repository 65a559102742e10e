"""Applying sync items: a message's item ids in, rows upserted and items completed, failed or deferred.

``Applier.apply`` runs once per message. Items never tried are locked, upserted and completed in one
transaction (``_apply_fresh``); the others are claimed (the attempt counted) and each entity's group is
applied in one transaction. Either way the upserts and completions commit together, several versions of
one object each get the outcome they would have had alone, and a failed group is applied again item by
item, so one bad object costs only itself. Each entity's breaker is asked once per group; while it
refuses, the items are deferred with their attempt given back. In full: docs/ARCHITECTURE.md,
"Applying items".
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import exc
from sqlalchemy.engine import Engine

from tds_daemon import entities
from tds_daemon.apply import syncqueue, upsert
from tds_daemon.apply.syncqueue import Claimed
from tds_daemon.config import Config
from tds_daemon.entities import EntitySpec
from tds_daemon.guard.breakers import HALF_OPEN, OPEN, Breaker, Breakers, Decision, clock
from tds_daemon.metrics import sync_items, webhook_apply_seconds
from tds_daemon.store.db import transient_code

log = logging.getLogger(__name__)
# A half-open breaker refused (its trials are in flight): they settle within an apply's time, so look again soon.
HALF_OPEN_RECHECK_S = 2.0
# Transient errors of the database as a whole, not of any item: a group failing so is not retried item by item.
DATABASE_WIDE = frozenset({"database_unavailable", "database_busy"})


class _NotFresh(Exception):
    """The fresh items of a message are not one known entity whose breaker lets them through."""


@dataclass(frozen=True)
class _Fresh:
    applied: frozenset[int] = frozenset()
    failed: bool = False  # their transaction failed: the claiming way tries them one by one


@dataclass(frozen=True)
class Applier:
    """Everything applying items needs, passed in: the database, the entity breakers (None: no breakers),
    the schema of the entity tables, and the retry settings (``workers.*``)."""

    engine: Engine
    breakers: Breakers | None
    schema: str
    lease_s: int  # how long a claimed item stays 'processing' before recovery takes it back
    max_attempts: int
    min_backoff_ms: int
    max_backoff_ms: int

    @classmethod
    def from_config(cls, config: Config, engine: Engine, breakers: Breakers | None) -> Applier:
        """The applier a worker process runs with its configuration."""
        w = config.workers
        return cls(engine, breakers, config.database.entity_schema, w.lease_s, w.max_attempts,
                   w.min_backoff_ms, w.max_backoff_ms)

    def apply(self, item_ids: list[int] | int) -> None:
        """Apply a message's items; never raises for an item's or the database's failure: each outcome is
        recorded on its item, or the item is left for the recovery sweep to send again."""
        ids = [item_ids] if isinstance(item_ids, int) else list(item_ids)
        fresh = self._apply_fresh(ids)
        if fresh is None:
            return
        rest = [i for i in ids if i not in fresh.applied]
        if rest:
            self._apply_claimed(rest, batch=not fresh.failed)

    def _apply_fresh(self, ids: list[int]) -> _Fresh | None:
        """The common case, in one transaction: lock the items never tried, apply and complete them. The
        others go the claiming way. None when the database as a whole failed: the items stay pending,
        untouched, and the recovery sweep sends them again."""
        items: list[Claimed] = []
        spec = breaker = decision = None
        try:
            with self.engine.begin() as conn:
                items = syncqueue.lock_fresh(conn, ids)
                if not items:
                    return _Fresh()
                spec = entities.BY_NAME.get(items[0].entity_type)
                if spec is None or any(i.entity_type != spec.name for i in items):
                    raise _NotFresh
                breaker = self.breakers.entity(spec.name) if self.breakers is not None else None
                decision = breaker.check() if breaker is not None else Decision(True, "closed")
                if not decision:
                    raise _NotFresh  # the claiming way defers them
                outcomes = self._write(conn, spec, items, fresh=True)
        except _NotFresh:
            return _Fresh()
        except Exception as e:  # any: the claiming way tries the items again, one by one, and classifies
            code = transient_code(e)
            if code in DATABASE_WIDE:
                if decision is not None:
                    _tell(breaker, decision, _as_calls(decision, False, len(items)))
                log.warning("could not apply items=%s: %s; the recovery sweep sends them again", _span(ids),
                            _describe(e))
                return None
            if decision is not None and decision.state == HALF_OPEN:
                breaker.release()  # the claiming way asks again
            log.warning("batch failed, applying its items one by one: entity=%s items=%s error=%s",
                        spec.name if spec else "?", _span([i.id for i in items] or ids), _describe(e))
            return _Fresh(failed=True)
        _tell(breaker, decision, _as_calls(decision, True, len(items)))
        _applied(spec, items, outcomes)
        return _Fresh(applied=frozenset(i.id for i in items))

    def _apply_claimed(self, ids: list[int], *, batch: bool) -> None:
        """Items tried before (or that the fresh way could not apply): claim them, then apply each entity's
        group together (``batch``) or each item alone."""
        try:
            with self.engine.begin() as conn:
                claimed = syncqueue.claim_many(conn, ids, self.lease_s)
        except exc.SQLAlchemyError as e:
            # Not claimed, so still pending in PostgreSQL: recovery dispatches them again once the
            # database answers. Nothing to retry here.
            log.warning("could not claim items=%s: %s", _span(ids), _describe(e))
            return
        if len(claimed) < len(ids):
            log.debug("nothing to do: %d of items=%s (completed, taken or dead)", len(ids) - len(claimed),
                      _span(ids))
        groups: dict[str, list[Claimed]] = {}
        for item in claimed:
            groups.setdefault(item.entity_type, []).append(item)
        for entity_type, items in groups.items():
            self._apply_group(entity_type, items, batch=batch)

    def _apply_group(self, entity_type: str, items: list[Claimed], *, batch: bool = True) -> None:
        """The claimed items of one entity: one breaker check, one transaction, each item alone if that fails."""
        spec = entities.BY_NAME.get(entity_type)
        breaker = self.breakers.entity(spec.name) if spec is not None and self.breakers is not None else None
        decision = breaker.check() if breaker is not None else Decision(True, "closed")
        if not decision:
            self._defer(items, breaker, decision)
            return
        if spec is not None and batch and len(items) > 1:
            try:
                outcomes = self._commit(spec, items)
            except Exception as e:  # any: the items are tried one by one below, which classifies the error
                code = transient_code(e)
                if code in DATABASE_WIDE:
                    _tell(breaker, decision, _as_calls(decision, False, len(items)))
                    self._finish_failed(items, code=code, message=_describe(e), transient=True)
                    return
                log.warning("batch failed, applying its items one by one: entity=%s items=%d first=%s last=%s "
                            "error=%s", entity_type, len(items), items[0].id, items[-1].id, _describe(e))
            else:
                _tell(breaker, decision, _as_calls(decision, True, len(items)))
                _applied(spec, items, outcomes)
                return
        # The group's check covers these (no check per item): each item's transaction is one result.
        _tell(breaker, decision, [self._apply_one(spec, entity_type, item) for item in items])

    def _apply_one(self, spec: EntitySpec | None, entity_type: str, item: Claimed) -> bool | None:
        """Apply one item in its own transaction; what the breaker hears: True applied, False transient
        failure, None a permanent error (nothing about the entity)."""
        try:
            if spec is None:
                raise upsert.InvalidObject(f"entity type {entity_type!r} is not known to this TDS version")
            outcomes = self._commit(spec, [item])
        except upsert.InvalidObject as e:
            self._finish_failed([item], code=e.code, message=str(e))
            return None
        except Exception as e:  # classified below; nothing escapes to Dramatiq, whose retries we do not use
            code = transient_code(e)
            if code:
                self._finish_failed([item], code=code, message=_describe(e), transient=True)
                return False
            log.exception("unexpected error applying item=%s entity=%s", item.id, entity_type)
            self._finish_failed([item], code="internal_error",
                                message=f"{_describe(e)}; this is a TDS bug: report it with the worker log, "
                                        f"then replay the item")
            return None
        _applied(spec, [item], outcomes)
        return True

    def _commit(self, spec: EntitySpec, items: list[Claimed]) -> dict[int, str]:
        """Upsert the items and complete each with its own outcome, in one transaction; {item id: outcome}."""
        with self.engine.begin() as conn:
            return self._write(conn, spec, items)

    def _write(self, conn, spec: EntitySpec, items: list[Claimed], *, fresh: bool = False) -> dict[int, str]:
        """Upsert the items round by round and complete each with its outcome, in ``conn``'s transaction."""
        outcomes: dict[int, str] = {}
        for batch in _rounds(items):
            changes = [upsert.Change(obj=entities.extract_object(spec, i.payload), version_at=i.received_at,
                                     deleted=i.event_type == "deleted") for i in batch]
            by_zoho_id = upsert.apply(conn, spec, self.schema, changes, source="webhook")
            outcomes.update((i.id, by_zoho_id[i.zoho_id]) for i in batch)
        syncqueue.complete_many(conn, [(i.id, outcomes[i.id]) for i in items], fresh=fresh)
        return outcomes

    def _defer(self, items: list[Claimed], breaker: Breaker, decision: Decision) -> None:
        """Not tried: failed until the breaker may let them through, their attempt given back."""
        now = dt.datetime.now(dt.UTC)
        if decision.state == OPEN and decision.retry_at is not None:
            delay = max(0.0, (decision.retry_at - now).total_seconds())
            why = f"circuit breaker {breaker.name} is open until {clock(decision.retry_at)}"
        else:
            delay = min(HALF_OPEN_RECHECK_S, breaker.settings.open_s)
            why = f"circuit breaker {breaker.name} is half-open with its trial calls in flight"
        try:
            with self.engine.begin() as conn:
                for item in items:
                    # Deferred items come back spread out, not all in one sweep.
                    syncqueue.defer(conn, item.id, "breaker_open", f"{why}; deferred without using an attempt",
                                    delay + random.uniform(0.05, 0.5))
        except exc.SQLAlchemyError as e:
            # Still 'processing' in the database: their lease runs out and recovery dispatches them again.
            log.warning("could not defer items=%s: %s", _span([i.id for i in items]), type(e).__name__)
            return
        sync_items.labels(items[0].entity_type, "deferred").inc(len(items))
        for item in items:
            log.debug("deferred: entity=%s zoho_id=%s item=%s", item.entity_type, item.zoho_id, item.id)
        log.info("deferred: entity=%s items=%d first=%s last=%s retry_in=%.1fs reason=%s", items[0].entity_type,
                 len(items), items[0].id, items[-1].id, delay, why)

    def _finish_failed(self, items: list[Claimed], *, code: str, message: str, transient: bool = False) -> None:
        """Record a failed apply, in one transaction: a transient error leaves each item failed with a backoff
        (dead-lettered once its attempts are used up), a permanent one dead-letters it at once."""
        done = []
        try:
            with self.engine.begin() as conn:
                for item in items:
                    exhausted = transient and item.attempt_count >= self.max_attempts
                    if transient and not exhausted:
                        delay = syncqueue.backoff_s(item.attempt_count, self.min_backoff_ms, self.max_backoff_ms)
                        syncqueue.fail(conn, item.id, code, message, delay)
                        done.append((item, "failed", code, message))
                    elif exhausted:
                        why = f"gave up after {item.attempt_count} attempts; last error: {message}"
                        syncqueue.dead_letter(conn, item.id, "retries_exhausted", why)
                        done.append((item, "dead_letter", "retries_exhausted", why))
                    else:
                        syncqueue.dead_letter(conn, item.id, code, message)
                        done.append((item, "dead_letter", code, message))
        except exc.SQLAlchemyError as e:
            # Still 'processing' in the database: their lease runs out and recovery dispatches them again.
            log.warning("could not record failure of items=%s: %s", _span([i.id for i in items]),
                        type(e).__name__)
            return
        for item, outcome, item_code, item_message in done:
            sync_items.labels(item.entity_type, outcome).inc()
            level = logging.ERROR if outcome == "dead_letter" else logging.WARNING
            log.log(level, "%s: entity=%s zoho_id=%s item=%s attempt=%s code=%s message=%s", outcome,
                    item.entity_type, item.zoho_id, item.id, item.attempt_count, item_code, item_message)


def _rounds(items: list[Claimed]) -> list[list[Claimed]]:
    """Round k holds the k-th item (in id order) of each object: an upsert takes each object once, and
    rounds applied in order give every item the outcome it would have had applied after the one before."""
    rounds: list[list[Claimed]] = []
    seen: Counter[str] = Counter()
    for item in sorted(items, key=lambda i: i.id):
        k = seen[item.zoho_id]
        seen[item.zoho_id] += 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(item)
    return rounds


def _applied(spec: EntitySpec, items: list[Claimed], outcomes: dict[int, str]) -> None:
    """Count and log the items applied, each with its outcome and its time since receipt."""
    now = dt.datetime.now(dt.UTC)
    for item in items:
        outcome = outcomes[item.id]
        sync_items.labels(spec.name, outcome).inc()
        webhook_apply_seconds.labels(spec.name).observe(max(0.0, (now - item.received_at).total_seconds()))
        log.debug("applied: entity=%s zoho_id=%s item=%s outcome=%s", spec.name, item.zoho_id, item.id, outcome)
    counts = Counter(outcomes[i.id] for i in items)
    log.info("applied: entity=%s items=%d %s first=%s last=%s", spec.name, len(items),
             " ".join(f"{o}={n}" for o, n in sorted(counts.items())), items[0].id, items[-1].id)


def _as_calls(decision: Decision, result: bool, n: int) -> list[bool]:
    """A group's one transaction as breaker results: one call, or one trial per item when half-open."""
    return [result] * (n if decision.state == HALF_OPEN else 1)


def _tell(breaker: Breaker | None, decision: Decision, results: list[bool | None]) -> None:
    """Report the group's results to its breaker; if none says anything of the entity (permanent errors),
    the half-open trial permit the group held goes back."""
    if breaker is None:
        return
    told = [r for r in results if r is not None]
    for result in told:
        breaker.record(result)
    if not told and decision.state == HALF_OPEN:
        breaker.release()


def _span(ids: list[int]) -> str:
    """Item ids for a log line: all of a few, else the first and last (a message holds up to 100)."""
    return ",".join(map(str, ids)) if len(ids) <= 5 else f"{ids[0]}..{ids[-1]}({len(ids)})"


def _describe(e: Exception) -> str:
    """``Type: first line`` of the error, or of the driver's error a SQLAlchemy error wraps."""
    orig = getattr(e, "orig", None)
    text = str(orig or e).strip().splitlines()
    return f"{type(orig or e).__name__}: {text[0] if text else ''}"[:500]
