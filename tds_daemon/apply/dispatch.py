"""Sending "apply sync items [N, ...]" messages, by the queue and actor names of the entity registry.

The API never imports the actors: a message names its actor, and any worker that declared it
consumes it. A message carries a list of at most ``MAX_BATCH`` item ids of one entity, which the
actor applies in one transaction. PostgreSQL holds the items; the message is only a wake-up call, so
a failed send is recorded (``dispatched_at`` left NULL) and the recovery sweep sends it again later.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import exc
from sqlalchemy.engine import Engine

from tds_daemon.apply import syncqueue
from tds_daemon.entities import BY_NAME, EntitySpec
from tds_daemon.metrics import dispatches

log = logging.getLogger(__name__)
# Item ids per message at most: bounds the actor's transaction (its row locks and how long it holds
# them), and what one bad item costs the rest of its batch (they are then applied one by one).
MAX_BATCH = 100


class Dispatcher:
    """Sends messages; after a Redis failure, stops trying for ``pause_s`` so intake stays fast."""

    def __init__(self, broker: RedisBroker, origin: str, pause_s: float = 2.0):
        self.broker = broker
        self.origin = origin
        self.pause_s = pause_s
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    def send_batch(self, spec: EntitySpec, item_ids: list[int]) -> bool:
        """One message asking the entity's actor to apply the items; True if it reached Redis."""
        return self.send_to(spec.queue, spec.actor_name, list(item_ids))

    def send_to(self, queue: str, actor_name: str, *args) -> bool:
        if not self.available:
            dispatches.labels(self.origin, "skipped").inc()
            return False
        # The origin lets the workers tell intake's messages from the rest (actors/middleware/intake_first.py).
        message = Message(queue_name=queue, actor_name=actor_name, args=args, kwargs={},
                          options={"tds_origin": self.origin})
        try:
            self.broker.enqueue(message)
        except (redis.RedisError, OSError) as e:
            with self._lock:
                self._down_until = time.monotonic() + self.pause_s
            log.warning("broker unavailable, message not sent: queue=%s args=%s error=%s", queue, args,
                        type(e).__name__)
            dispatches.labels(self.origin, "failed").inc()
            return False
        dispatches.labels(self.origin, "sent").inc()
        return True

    def send_items(self, engine: Engine, items: Iterable[tuple[int, str]]) -> list[int]:
        """Send "apply items" for the committed (item id, entity) pairs, one message per entity and
        ``MAX_BATCH`` ids; returns the ids not sent.

        Those are marked unsent (``dispatched_at`` NULL) so that the recovery sweep sends them as soon
        as Redis answers. If PostgreSQL refuses even that, they are still pending and are sent again
        after ``workers.redispatch_after_s``: nothing is lost either way.
        """
        by_entity: dict[str, list[int]] = {}
        for item_id, entity in items:
            by_entity.setdefault(entity, []).append(item_id)
        unsent: list[int] = []
        for entity, ids in by_entity.items():
            spec = BY_NAME[entity]
            for start in range(0, len(ids), MAX_BATCH):
                chunk = ids[start:start + MAX_BATCH]
                if not self.send_batch(spec, chunk):
                    unsent.extend(chunk)
        if unsent:
            try:
                with engine.begin() as conn:
                    syncqueue.undispatch(conn, unsent)
            except exc.SQLAlchemyError as e:
                log.warning("could not mark %d unsent item(s): %s", len(unsent), type(e).__name__)
        return unsent
