"""Healing: sending lost work again, retrying dead letters by policy, queue alerts, and the healer's report.

Two callers: every worker's recovery thread (``actors.middleware.recovery``) calls ``redispatch`` every few
seconds (items not applied in time, expired leases, due retries, sync runs whose message was lost); the
healer (``run``: every 15 minutes, or ``POST /api/tds/auto-healing/run``) does the same and more (messages
lost from Redis, abandoned runs, dead letters, queue alerts, retention) and stores a report in
``tds_healer_runs``. Every step is its own transaction: a database failure ends the run and loses
nothing; with Redis down the items stay pending for the next sweep. The steps: docs/ARCHITECTURE.md,
"Healing".
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine

from tds_daemon import entities
from tds_daemon.apply import syncqueue
from tds_daemon.apply.broker import redis_client
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.care import retention
from tds_daemon.care.reports import latest, report_head
from tds_daemon.config import Config
from tds_daemon.guard import alerts
from tds_daemon.pull import images, runs
from tds_daemon.pull.pulls import ABANDONED_AFTER_S, SYNC_ACTOR, SYNC_QUEUE
from tds_daemon.pull.zoho.budget import Budget
from tds_daemon.pull.zoho.client import BUDGET_ALERT
from tds_daemon.store.schema import healer_runs

log = logging.getLogger(__name__)

SWEEP_LIMIT = 500  # items of each kind per sweep statement
MAX_PASSES = 20  # a healer run sends at most this many sweeps' worth (10,000 items of each kind)


@dataclass
class Redispatched:
    """What one or more sweeps sent again."""

    lost_pending: int = 0  # pending items whose message was lost or never sent
    expired_leases: int = 0  # processing items whose worker stopped
    failed_due: int = 0  # failed items whose retry time came
    buried: int = 0  # processing items past their lease with every attempt used: dead_letter
    runs: int = 0  # queued sync runs sent again
    abandoned_runs: int = 0  # running sync runs whose heartbeat stopped: failed as abandoned
    dispatch_failed: int = 0  # items left pending, unsent (Redis unavailable)

    @property
    def items(self) -> int:
        return self.lost_pending + self.expired_leases + self.failed_due

    @property
    def sent(self) -> int:
        return self.items - self.dispatch_failed + self.runs


_KIND = {"pending": "lost_pending", "processing": "expired_leases", "failed": "failed_due"}


def redispatch(engine: Engine, dispatcher: Dispatcher, config: Config, *, passes: int = 1,
               result: Redispatched | None = None) -> Redispatched:
    """The recovery sweep: up to ``passes`` rounds of ``syncqueue.recover``, each item sent after commit."""
    cfg = config.workers
    result = result or Redispatched()
    for _ in range(passes):
        with engine.begin() as conn:
            buried, lost = syncqueue.recover(conn, cfg.redispatch_after_s, cfg.max_attempts, SWEEP_LIMIT)
        result.buried += buried
        if buried:
            log.error("recovery: %d item(s) moved to dead_letter after repeated worker loss", buried)
        per_kind = defaultdict(int)
        for item in lost:
            per_kind[item.was] += 1
            setattr(result, _KIND[item.was], getattr(result, _KIND[item.was]) + 1)
        unsent = dispatcher.send_items(engine, [(item.id, item.entity_type) for item in lost])
        result.dispatch_failed += len(unsent)
        if lost:
            log.info("recovery: dispatched %d item(s) again (%d could not be sent): %s", len(lost), len(unsent),
                     " ".join(f"{_KIND[k]}={n}" for k, n in per_kind.items()))
        if unsent or max(per_kind.values(), default=0) < SWEEP_LIMIT:
            break  # all done (or Redis is down: the next pass would pick the same items again)
    with engine.begin() as conn:
        queued = runs.lost_queued(conn, cfg.redispatch_after_s)
        abandoned = runs.abandon_stale(conn, ABANDONED_AFTER_S)
    for run_id in queued:
        if dispatcher.send_to(SYNC_QUEUE, SYNC_ACTOR, run_id):
            result.runs += 1
    for run_id, entity in abandoned:
        log.warning("sync run %s abandoned: entity=%s, no progress for %ds (its worker stopped); marked failed",
                    run_id, entity, ABANDONED_AFTER_S)
        runs.note_outcome(engine, entity)
    result.abandoned_runs += len(abandoned)
    return result


# --- lost messages ---------------------------------------------------------------------------------

_PENDING_SENT = text("""
SELECT id, entity_type FROM tds_sync_queue
WHERE status = 'pending' AND dispatched_at IS NOT NULL AND dispatched_at < :before
""")
_QUEUED_SENT = text("""
SELECT id FROM tds_sync_runs WHERE status = 'queued' AND dispatched_at IS NOT NULL AND dispatched_at < :before
""")


def _message_args(client: redis.Redis, namespace: str, queue: str) -> set[Any]:
    """The item or run ids named by every message Redis holds for ``queue`` (queued or being processed)."""
    decoder = dramatiq.get_encoder()
    found = set()
    for _, data in client.hscan_iter(f"{namespace}:{queue}.msgs", count=1000):
        try:
            args = decoder.decode(data).get("args") or []
        except Exception:  # not one of ours; it names no item
            continue
        if args:
            # An entity message names a list of items (one int from a message of an earlier version).
            found.update(args[0] if isinstance(args[0], list) else [args[0]])
    return found


def forget_lost_messages(engine: Engine, dispatcher: Dispatcher) -> tuple[int, int]:
    """Mark unsent the pending items and queued runs whose message is not in Redis; (items, runs).

    Raises redis.RedisError/OSError when Redis does not answer (nothing is changed then).
    """
    broker = dispatcher.broker
    with engine.connect() as conn:
        before = conn.execute(select(func.now())).scalar_one()  # PostgreSQL's clock, like dispatched_at
        sent_items = conn.execute(_PENDING_SENT, {"before": before}).all()
        sent_runs = list(conn.execute(_QUEUED_SENT, {"before": before}).scalars())
    by_entity: dict[str, list[int]] = defaultdict(list)
    for item_id, entity in sent_items:
        by_entity[entity].append(item_id)
    lost_items = []
    for entity, ids in by_entity.items():
        spec = entities.BY_NAME.get(entity)
        if spec is None:
            continue
        present = _message_args(broker.client, broker.namespace, spec.queue)
        lost_items += [i for i in ids if i not in present]
    lost_runs = []
    if sent_runs:
        present = _message_args(broker.client, broker.namespace, SYNC_QUEUE)
        lost_runs = [r for r in sent_runs if r not in present]
    if lost_items or lost_runs:
        with engine.begin() as conn:
            syncqueue.undispatch(conn, lost_items)
            runs.undispatch(conn, lost_runs)
        log.warning("healer: %d pending item(s) and %d queued run(s) had no message in Redis; sending them again",
                    len(lost_items), len(lost_runs))
    return len(lost_items), len(lost_runs)


# --- dead letters -------------------------------------------------------------------------------------

def retry_dead_letters(engine: Engine, dispatcher: Dispatcher, config: Config) -> tuple[int, int]:
    """The dead-letter policy; returns (retried, of which not sent)."""
    h = config.healer
    with engine.begin() as conn:
        picked = syncqueue.retry_dead_letters(conn, h.dead_letter_retry_after_s, h.max_attempts_total,
                                              h.dead_letter_batch)
    unsent = dispatcher.send_items(engine, picked)
    if picked:
        log.info("healer: %d dead letter(s) retried by policy (%d could not be sent yet)", len(picked), len(unsent))
    return len(picked), len(unsent)


# --- alerts -------------------------------------------------------------------------------------------

def queue_counts(engine: Engine) -> dict[str, int]:
    """Items by state, except completed (which only grows and is not the healer's business)."""
    with engine.connect() as conn:
        by_entity = syncqueue.counts(conn)
    counts = {s: 0 for s in ("pending", "processing", "failed", "dead_letter")}
    for (_, status), n in by_entity.items():
        if status != "completed":
            counts[status] = counts.get(status, 0) + n
    return counts


def _level(value: int, warning: int, critical: int) -> str | None:
    if value > critical:
        return "critical"
    if value > warning:
        return "warning"
    return None


def check_alerts(engine: Engine, config: Config, counts: dict[str, int]) -> dict[str, list]:
    """Raise or resolve ``queue_depth`` and ``dead_letters``; what was raised and resolved."""
    m = config.monitoring
    checks = (
        ("queue_depth", counts["pending"], m.pending_warning, m.pending_critical, "pending sync items"),
        ("dead_letters", counts["dead_letter"], m.dead_letter_warning, m.dead_letter_critical, "dead letters"),
    )
    raised, resolved = [], []
    for type_, value, warning, critical, what in checks:
        severity = _level(value, warning, critical)
        if severity:
            limit = critical if severity == "critical" else warning
            hint = ("look at the workers and the circuit breakers" if type_ == "queue_depth"
                    else "inspect them with `tds dlq list` and replay what is fixed")
            alert_id = alerts.raise_alert(engine, type_, severity, f"{value} {what}, more than {limit}: {hint}",
                                          details={"count": value, "warning": warning, "critical": critical})
            raised.append({"id": alert_id, "type": type_, "severity": severity, "count": value})
        elif alerts.resolve(engine, type_):
            resolved.append(type_)
    return {"raised": raised, "resolved": resolved}


def resolve_budget_alert(engine: Engine, config: Config) -> bool:
    """Resolve ``budget_spent`` once scheduled work may spend again (a new day, or a larger budget); the Zoho
    client raises it when the day's budget refuses a scheduled call."""
    client = redis_client(config)
    try:
        if Budget.from_config(config, client, engine).state().remaining <= 0:
            return False
    finally:
        client.close()
    return alerts.resolve(engine, BUDGET_ALERT)


# --- the healer run -------------------------------------------------------------------------------------

def run(engine: Engine, dispatcher: Dispatcher, config: Config, origin: str) -> dict[str, Any]:
    """One healer run; returns its report, stored in ``tds_healer_runs`` (with its ``id``).

    Raises SQLAlchemyError when PostgreSQL fails (then nothing is stored).
    """
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    errors: list[str] = []
    lost_items = lost_runs = 0
    try:
        lost_items, lost_runs = forget_lost_messages(engine, dispatcher)
    except (redis.RedisError, OSError) as e:
        errors.append(f"Redis unavailable ({type(e).__name__}): lost messages not looked for")
    result = redispatch(engine, dispatcher, config, passes=MAX_PASSES)
    retried, retried_unsent = retry_dead_letters(engine, dispatcher, config)
    result.dispatch_failed += retried_unsent
    if result.dispatch_failed:
        errors.append(f"dispatch failed for {result.dispatch_failed} item(s): Redis unavailable; they stay "
                            "pending in PostgreSQL and are sent when it answers")
    counts = queue_counts(engine)
    fired = check_alerts(engine, config, counts)
    try:
        if resolve_budget_alert(engine, config):
            fired["resolved"].append(BUDGET_ALERT)
    except (redis.RedisError, OSError) as e:
        errors.append(f"Redis unavailable ({type(e).__name__}): the Zoho budget was not looked at")
    pruned = retention.prune(engine, config.healer.retain_days, events_days=config.events.retain_days,
                             subscribers=[s.url for s in config.subscribers])
    try:
        pruned["image_files"] = images.prune_files(engine, config.database.entity_schema, config.images.dir)
    except OSError as e:
        errors.append(f"image files not pruned: {e.strerror or e}")
    finished, head = report_head(origin, started, clock)
    report = {
        **head,
        "lost_messages": {"items": lost_items, "runs": lost_runs},
        "redispatched": {"lost_pending": result.lost_pending, "expired_leases": result.expired_leases,
                         "failed_due": result.failed_due, "runs": result.runs},
        "buried": result.buried,
        "abandoned_runs": result.abandoned_runs,
        "dead_letters_retried": retried,
        "dispatch_failed": result.dispatch_failed,
        "queue": counts,
        "alerts": fired,
        "pruned": pruned,
        "errors": errors,
    }
    with engine.begin() as conn:
        run_id = conn.execute(insert(healer_runs).values(origin=origin, started_at=started, finished_at=finished,
                                                         report=report).returning(healer_runs.c.id)).scalar_one()
    log.info("healer run %s (%s): redispatched %s, dead letters retried %d, dispatch failed %d, queue %s",
             run_id, origin, report["redispatched"], retried, result.dispatch_failed, counts)
    return {"id": run_id, **report}


def recent(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The latest healer runs' reports, newest first."""
    return latest(engine, healer_runs, limit)
