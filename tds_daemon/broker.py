"""The Dramatiq Redis broker, built the same way by the API (to send) and the workers (to consume)."""

from __future__ import annotations

import redis
from dramatiq.brokers.redis import RedisBroker

from .config import Config


def redis_client(config: Config) -> redis.Redis:
    timeout = config.redis.socket_timeout_s
    return redis.Redis.from_url(config.redis.url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=30)


def make_broker(config: Config, middleware=()) -> RedisBroker:
    # The client is built here (not from url=) so that the socket timeouts apply: Dramatiq passes
    # its own keyword arguments only when it builds the client itself from parameters.
    return RedisBroker(client=redis_client(config), namespace=config.redis.namespace, middleware=list(middleware))
