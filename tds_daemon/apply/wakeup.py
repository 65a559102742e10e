"""Wake-up calls: an idle consumer waits for a notification instead of polling Redis every 100 ms.

Every sender (all brokers come from ``tds_daemon.apply.broker.make_broker``) publishes the queue's name on
``<namespace>:wakeup`` after each enqueue; each worker process subscribes on one thread; a consumer with
nothing in hand whose last fetch found nothing waits for its queue's call, at most ``IDLE_WAIT_S``. A
message is enqueued before its call and a consumer clears its call before it fetches, so no call is missed
for a message that fetch would not find. While the subscription is down, consumers poll as before. What
polling cost: docs/PERFORMANCE.md, "Figures behind choices in the code".
"""

from __future__ import annotations

import logging
import threading

import redis
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)
CHANNEL = "{namespace}:wakeup"
# The longest an idle consumer waits without a notification: what a message sent by something that
# does not publish (or whose notification was lost with the connection) may wait to be fetched.
IDLE_WAIT_S = 1.0
_RETRY_S = 1.0  # before subscribing again after a Redis error


class Wakeup(Middleware):
    """Publishes after every enqueue; in a worker process, also listens (``after_worker_boot``)."""

    def __init__(self, namespace: str, idle_wait_s: float = IDLE_WAIT_S):
        self.channel = CHANNEL.format(namespace=namespace)
        self.idle_wait_s = idle_wait_s
        self._events: dict[str, threading.Event] = {}
        self._events_lock = threading.Lock()
        self._live = threading.Event()  # subscribed: notifications arrive
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def listening(self) -> bool:
        return self._live.is_set()

    def after_enqueue(self, broker, message, delay) -> None:
        try:
            broker.client.publish(self.channel, message.queue_name)
        except (redis.RedisError, OSError) as e:
            # The message is in Redis; a consumer that waits for it fetches it within IDLE_WAIT_S.
            log.debug("could not publish a wake-up call for %s: %s", message.queue_name, type(e).__name__)

    def after_worker_boot(self, broker, worker) -> None:
        self.listen(broker.client)

    def before_worker_shutdown(self, broker, worker) -> None:
        self.close()

    def listen(self, client: redis.Redis) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(client,), name="tds-wakeup", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._went_deaf()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def wait(self, queue_name: str) -> None:
        """Block an idle consumer until its queue is notified, for ``idle_wait_s`` at most; return at
        once when nothing listens, so that the consumer polls instead."""
        if not self._live.is_set() or self._stop.is_set():
            return
        event = self._event(queue_name)
        event.wait(self.idle_wait_s)
        event.clear()

    def _event(self, queue_name: str) -> threading.Event:
        with self._events_lock:
            return self._events.setdefault(queue_name, threading.Event())

    def _went_deaf(self) -> None:
        """No notification can arrive now: end every wait, so that the consumers poll."""
        self._live.clear()
        with self._events_lock:
            for event in self._events.values():
                event.set()

    def _run(self, client: redis.Redis) -> None:
        while not self._stop.is_set():
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":  # from now on, every publish reaches us
                        self._live.set()
                    elif message["type"] == "message":
                        self._event(message["data"].decode(errors="replace")).set()
            except Exception as e:  # whatever it was, the thread lives on and the consumers poll meanwhile
                # Once per outage: while Redis is down, the retries below fail quietly.
                level = logging.WARNING if self._live.is_set() else logging.DEBUG
                log.log(level, "wake-up calls lost, consumers poll Redis until they are back: %s",
                        type(e).__name__, exc_info=not isinstance(e, (redis.RedisError, OSError)))
            finally:
                self._went_deaf()
                pubsub.close()
            self._stop.wait(_RETRY_S)
