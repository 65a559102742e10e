"""Sending "apply sync item N" messages, by the queue and actor names of the entity registry.

The API never imports the actors: a message names its actor, and any worker that declared it
consumes it. PostgreSQL holds the item; the message is only a wake-up call, so a failed send is
recorded (``dispatched_at`` left NULL) and the recovery sweep sends it again later.
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

from . import syncqueue
from .entities import BY_NAME, EntitySpec
from .metrics import dispatches

log = logging.getLogger(__name__)


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

    def send(self, spec: EntitySpec, item_id: int) -> bool:
        """Ask the entity's actor to apply a sync item; True if the message reached Redis."""
        return self.send_to(spec.queue, spec.actor_name, item_id)

    def send_to(self, queue: str, actor_name: str, *args) -> bool:
        if not self.available:
            dispatches.labels(self.origin, "skipped").inc()
            return False
        message = Message(queue_name=queue, actor_name=actor_name, args=args, kwargs={}, options={})
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
        """Send "apply item N" for each committed (item id, entity); returns the ids not sent.

        Those are marked unsent (``dispatched_at`` NULL) so that the recovery sweep sends them as soon
        as Redis answers. If PostgreSQL refuses even that, they are still pending and are sent again
        after ``workers.redispatch_after_s``: nothing is lost either way.
        """
        unsent = [item_id for item_id, entity in items if not self.send(BY_NAME[entity], item_id)]
        if unsent:
            try:
                with engine.begin() as conn:
                    syncqueue.undispatch(conn, unsent)
            except exc.SQLAlchemyError as e:
                log.warning("could not mark %d unsent item(s): %s", len(unsent), type(e).__name__)
        return unsent
