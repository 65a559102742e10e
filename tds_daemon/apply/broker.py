"""The Dramatiq Redis broker, built the same way by the API (to send) and the workers (to consume)."""

from __future__ import annotations

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer

from tds_daemon.apply.wakeup import Wakeup
from tds_daemon.config import Config


def redis_client(config: Config) -> redis.Redis:
    timeout = config.redis.socket_timeout_s
    return redis.Redis.from_url(config.redis.url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=30)


class Broker(RedisBroker):
    """Dramatiq's Redis broker whose idle consumers wait for wake-up calls (``tds_daemon.apply.wakeup``)."""

    def __init__(self, *, wakeup: Wakeup, **kwargs):
        super().__init__(**kwargs)
        self.wakeup = wakeup
        self.add_middleware(wakeup)

    @property
    def consumer_class(self):
        return _WakeableConsumer


class _WakeableConsumer(_RedisConsumer):
    """While wake-up calls arrive, fetches only when one came (or after ``IDLE_WAIT_S``) once a fetch
    found the queue empty, and never sleeps in between: a message sent during Dramatiq's backoff sleep
    would wait for its end. Without wake-up calls, or with its prefetch full, it is Dramatiq's own
    consumer, polling every ``timeout`` ms."""

    def __init__(self, broker, queue_name, prefetch, timeout):
        super().__init__(broker, queue_name, prefetch, timeout)
        self.poll_ms = timeout
        self._drained = False  # the last fetch found nothing

    def __next__(self):
        wakeup = self.broker.wakeup
        can_fetch = not self.message_cache and self.outstanding_message_count < self.prefetch
        if can_fetch and wakeup.listening:
            if self._drained:
                wakeup.wait(self.queue_name)
            self.timeout = 0
        else:
            self.timeout = self.poll_ms
        message = super().__next__()
        self._drained = can_fetch and message is None
        return message


def make_broker(config: Config, middleware=()) -> Broker:
    # The client is built here (not from url=) so that the socket timeouts apply: Dramatiq passes
    # its own keyword arguments only when it builds the client itself from parameters.
    return Broker(client=redis_client(config), namespace=config.redis.namespace, middleware=list(middleware),
                  wakeup=Wakeup(config.redis.namespace))
