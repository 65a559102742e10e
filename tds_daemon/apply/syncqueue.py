"""The life of a sync item in ``tds_sync_queue``: claim, complete, fail, dead-letter, recover.

PostgreSQL, not the broker, guarantees every item ends applied: the recovery sweep sends again pending
items whose message was lost, processing items whose lease ran out (a killed worker) and failed items
whose retry is due. An item never tried is locked, applied and completed in one transaction
(``lock_fresh``, then ``complete_many(..., fresh=True)``); one the sweep sent again is marked
``redispatched`` and goes the claiming way, where every attempt counts and an item that kills its worker
every time ends ``worker_lost``. The states, drawn: docs/ARCHITECTURE.md, "Applying items".
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

# Many items in one statement (a message carries a batch of ids). The claimable rows are locked in id
# order and SKIP LOCKED: a row another transaction holds (a concurrent claim, the recovery sweep putting
# it back to pending) is left to it, never waited for; if it is still claimable afterwards, the sweep
# sends it again.
_CLAIM = text("""
WITH picked AS (
    SELECT id FROM tds_sync_queue
    WHERE id = ANY(CAST(:ids AS bigint[])) AND status IN ('pending', 'failed')
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
UPDATE tds_sync_queue q
SET status = 'processing', attempt_count = q.attempt_count + 1, updated_at = now(),
    lease_until = now() + make_interval(secs => :lease_s)
FROM picked, tds_inbox_events e
WHERE q.id = picked.id AND e.id = q.event_id
RETURNING q.id, q.entity_type, q.zoho_id, q.attempt_count, e.event_type, e.payload, e.received_at,
          e.zoho_last_modified
""")
# Items never tried (pending, no attempt, no error: not sent again by the sweep), locked for the
# transaction that applies and completes them. SKIP LOCKED as in the claim.
_LOCK_FRESH = text("""
SELECT q.id, q.entity_type, q.zoho_id, 1 AS attempt_count, e.event_type, e.payload, e.received_at,
       e.zoho_last_modified
FROM tds_sync_queue q JOIN tds_inbox_events e ON e.id = q.event_id
WHERE q.id = ANY(CAST(:ids AS bigint[])) AND q.status = 'pending' AND q.attempt_count = 0
  AND q.error_code IS NULL
ORDER BY q.id
FOR UPDATE OF q SKIP LOCKED
""")
# Each item with its own outcome: the arrays are zipped by unnest. A fresh item (locked, still pending)
# counts its one attempt here; a claimed one counted it in the claim.
_COMPLETE = text("""
UPDATE tds_sync_queue q
SET status = 'completed', outcome = v.outcome, completed_at = now(), updated_at = now(), lease_until = NULL,
    error_code = NULL, error_message = NULL, attempt_count = q.attempt_count + :tried
FROM (SELECT unnest(CAST(:ids AS bigint[])) AS id, unnest(CAST(:outcomes AS text[])) AS outcome) v
WHERE q.id = v.id AND q.status = :status
""")
_FAIL = text("""
UPDATE tds_sync_queue
SET status = 'failed', error_code = :code, error_message = :message, updated_at = now(),
    lease_until = NULL, next_attempt_at = now() + make_interval(secs => :delay_s),
    first_failed_at = coalesce(first_failed_at, now()), last_failed_at = now()
WHERE id = :id AND status = 'processing'
""")
_DEAD = text("""
UPDATE tds_sync_queue
SET status = 'dead_letter', error_code = :code, error_message = :message, updated_at = now(),
    lease_until = NULL, next_attempt_at = NULL,
    first_failed_at = coalesce(first_failed_at, now()), last_failed_at = now()
WHERE id = :id AND status = 'processing'
""")
# A processing item whose lease ran out and that has used every attempt is not tried again: a
# message that kills its worker every time must not take the workers down forever.
_BURY_LOST = text("""
UPDATE tds_sync_queue
SET status = 'dead_letter', error_code = 'worker_lost', updated_at = now(), lease_until = NULL,
    error_message = 'the worker applying this item stopped (killed or crashed) ' || attempt_count ||
        ' times; look for crashes in the worker logs, then replay it',
    first_failed_at = coalesce(first_failed_at, now()), last_failed_at = now()
WHERE status = 'processing' AND lease_until < now() AND attempt_count >= :max_attempts
""")
_RECOVER = text("""
WITH lost AS (
    (SELECT id FROM tds_sync_queue WHERE status = 'pending'
        AND (dispatched_at IS NULL OR dispatched_at < now() - make_interval(secs => :after_s))
     ORDER BY dispatched_at NULLS FIRST LIMIT :limit)
    UNION ALL
    (SELECT id FROM tds_sync_queue WHERE status = 'processing' AND lease_until < now() LIMIT :limit)
    UNION ALL
    (SELECT id FROM tds_sync_queue WHERE status = 'failed' AND next_attempt_at <= now() LIMIT :limit)
), picked AS (
    SELECT q.id, q.status FROM tds_sync_queue q JOIN lost ON lost.id = q.id
    FOR UPDATE OF q SKIP LOCKED
)
UPDATE tds_sync_queue q
SET status = 'pending', dispatched_at = now(), lease_until = NULL, updated_at = now(),
    error_code = CASE WHEN picked.status = 'pending' AND q.dispatched_at IS NOT NULL
                      THEN 'redispatched' ELSE q.error_code END,
    error_message = CASE WHEN picked.status = 'pending' AND q.dispatched_at IS NOT NULL
                         THEN 'sent again by the recovery sweep: not applied within ' || :after_s
                              || ' s of being sent (its message was lost, or its worker stopped)'
                         ELSE q.error_message END
FROM picked WHERE q.id = picked.id
RETURNING q.id, q.entity_type, picked.status AS was
""")
_UNDISPATCH = text("UPDATE tds_sync_queue SET dispatched_at = NULL WHERE id = ANY(:ids) AND status = 'pending'")
# Dead letters given another chance by the healer's policy: old enough, attempts left, oldest first.
_RETRY_DEAD = text("""
WITH picked AS (
    SELECT id FROM tds_sync_queue
    WHERE status = 'dead_letter' AND attempt_count < :max_attempts
      AND coalesce(last_failed_at, updated_at) < now() - make_interval(secs => :after_s)
    ORDER BY coalesce(last_failed_at, updated_at), id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE tds_sync_queue q
SET status = 'pending', dispatched_at = now(), next_attempt_at = NULL, lease_until = NULL, updated_at = now()
FROM picked WHERE q.id = picked.id
RETURNING q.id, q.entity_type
""")


@dataclass(frozen=True)
class Claimed:
    id: int
    entity_type: str
    zoho_id: str
    attempt_count: int
    event_type: str
    payload: dict
    received_at: Any
    zoho_last_modified: Any


def claim_many(conn: Connection, item_ids: list[int], lease_s: int) -> list[Claimed]:
    """Take the items that are claimable for processing, in id order; the others (done, taken, dead: a
    redelivery) are left out."""
    if not item_ids:
        return []
    rows = conn.execute(_CLAIM, {"ids": list(item_ids), "lease_s": lease_s}).all()
    return sorted((Claimed(**row._mapping) for row in rows), key=lambda c: c.id)


def lock_fresh(conn: Connection, item_ids: list[int]) -> list[Claimed]:
    """Lock the items never tried, in id order, for this transaction to apply and complete (``fresh``)."""
    if not item_ids:
        return []
    return [Claimed(**row._mapping) for row in conn.execute(_LOCK_FRESH, {"ids": list(item_ids)})]


def complete_many(conn: Connection, outcomes: list[tuple[int, str]], *, fresh: bool = False) -> None:
    """Mark items completed, each with its own outcome: [(item id, outcome)]. Claimed (processing) items,
    or with ``fresh`` the pending ones this transaction locked."""
    if outcomes:
        conn.execute(_COMPLETE, {"ids": [i for i, _ in outcomes], "outcomes": [o for _, o in outcomes],
                                 "status": "pending" if fresh else "processing", "tried": int(fresh)})


def backoff_s(attempt: int, min_ms: int, max_ms: int) -> float:
    """Exponential backoff with full jitter over the upper half, bounded by max_ms."""
    ceiling = min(max_ms, min_ms * 2 ** max(0, attempt - 1))
    return random.uniform(ceiling / 2, ceiling) / 1000


def fail(conn: Connection, item_id: int, code: str, message: str, delay_s: float) -> None:
    conn.execute(_FAIL, {"id": item_id, "code": code, "message": message[:2000], "delay_s": delay_s})


def dead_letter(conn: Connection, item_id: int, code: str, message: str) -> None:
    conn.execute(_DEAD, {"id": item_id, "code": code, "message": message[:2000]})


# Put back a claimed item that was not tried (its entity's circuit breaker is open): failed until
# ``next_attempt_at``, when the recovery sweep dispatches it again, and the attempt the claim counted
# is given back, so a deferral never uses up the item's retries. Not a failure: no *_failed_at.
_DEFER = text("""
UPDATE tds_sync_queue
SET status = 'failed', attempt_count = greatest(attempt_count - 1, 0), error_code = :code,
    error_message = :message, updated_at = now(), lease_until = NULL,
    next_attempt_at = now() + make_interval(secs => :delay_s)
WHERE id = :id AND status = 'processing'
""")


def defer(conn: Connection, item_id: int, code: str, message: str, delay_s: float) -> None:
    conn.execute(_DEFER, {"id": item_id, "code": code, "message": message[:2000], "delay_s": delay_s})


_UNDEFER = text("""
UPDATE tds_sync_queue SET next_attempt_at = now(), updated_at = now()
WHERE status = 'failed' AND error_code = :code AND entity_type = :entity AND next_attempt_at > now()
""")


def undefer(conn: Connection, entity: str, code: str = "breaker_open") -> int:
    """Items of ``entity`` deferred with ``code`` become due now (their breaker was reset); how many."""
    return conn.execute(_UNDEFER, {"entity": entity, "code": code}).rowcount


@dataclass(frozen=True)
class Lost:
    id: int
    entity_type: str
    was: str  # pending (message lost or never sent), processing (lease ran out) or failed (retry due)


def recover(conn: Connection, redispatch_after_s: int, max_attempts: int, limit: int = 500
            ) -> tuple[int, list[Lost]]:
    """Dead-letter hopeless lost items; return (buried, items back in pending) to dispatch again.

    At most ``limit`` items of each kind per call.
    """
    buried = conn.execute(_BURY_LOST, {"max_attempts": max_attempts}).rowcount
    rows = conn.execute(_RECOVER, {"after_s": redispatch_after_s, "limit": limit}).all()
    return buried, [Lost(r.id, r.entity_type, r.was) for r in rows]


def retry_dead_letters(conn: Connection, after_s: int, max_attempts: int, limit: int) -> list[tuple[int, str]]:
    """Dead letters last failed over ``after_s`` ago with fewer than ``max_attempts`` attempts, oldest
    first, at most ``limit``: back to pending; returns [(item id, entity)] to dispatch after commit."""
    if limit <= 0:
        return []
    rows = conn.execute(_RETRY_DEAD, {"after_s": after_s, "max_attempts": max_attempts, "limit": limit}).all()
    return [(r.id, r.entity_type) for r in rows]


def undispatch(conn: Connection, item_ids: list[int]) -> None:
    if item_ids:
        conn.execute(_UNDISPATCH, {"ids": item_ids})


_COUNTS = text("SELECT entity_type, status, count(*) AS n FROM tds_sync_queue GROUP BY 1, 2")


def counts(conn: Connection) -> dict[tuple[str, str], int]:
    """Sync items by (entity, status): the one count behind health, metrics, status and the healer."""
    return {(r.entity_type, r.status): r.n for r in conn.execute(_COUNTS)}
