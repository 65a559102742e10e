"""One Zoho rate limiter for every process of every TDS sharing a Redis: a sliding-window log.

Zoho allows 100 requests per minute per organization, Books and Inventory counted separately; two
processes that each keep their own count break it together, so the count lives in Redis.

Keys (``<ns>`` is ``redis.namespace``):

- ``<ns>:zoho:rate:<app>`` — a sorted set, one member per request granted, scored by the Redis
  server's clock in microseconds. Members older than the window are trimmed on every call.

The window is 60 s plus a margin: a request granted at t arrives at Zoho a little later than t, so
a window of exactly 60 s measured here could hold 101 arrivals there.
"""

from __future__ import annotations

import threading
import time
import uuid

import redis

from tds_daemon.pull.zoho.errors import ZohoRateLimited, ZohoStopped

# KEYS[1] the app's sorted set; ARGV[1] limit, ARGV[2] window in microseconds, ARGV[3] a unique member.
# Returns 0 when granted, else the microseconds until the oldest request leaves the window.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""

WINDOW_S = 60.0
MARGIN_S = 1.0


class RateLimiter:
    def __init__(self, client: redis.Redis, namespace: str, per_minute: int):
        self.client = client
        self.namespace = namespace
        self.per_minute = per_minute
        self._acquire = client.register_script(ACQUIRE)

    def key(self, app: str) -> str:
        return f"{self.namespace}:zoho:rate:{app}"

    def try_acquire(self, app: str) -> float:
        """0 if a request may go now, else how many seconds until one may."""
        wait_us = self._acquire(keys=[self.key(app)],
                                args=[self.per_minute, int((WINDOW_S + MARGIN_S) * 1e6), uuid.uuid4().hex])
        return int(wait_us) / 1e6

    def acquire(self, app: str, timeout: float, stop: threading.Event | None = None) -> None:
        """Block until a request may go; ZohoRateLimited if that takes longer than ``timeout``, ZohoStopped
        as soon as ``stop`` is set (the process is stopping: a wait of up to a minute must not hold it)."""
        deadline = time.monotonic() + timeout
        while True:
            wait = self.try_acquire(app)
            if wait == 0:
                return
            if time.monotonic() + wait > deadline:
                raise ZohoRateLimited(f"{self.per_minute} requests/minute to Zoho {app} used up; next slot in "
                                      f"{wait:.0f}s", retry_after=wait, app=app)
            if stop is None:
                time.sleep(min(wait, 5.0))
            elif stop.wait(min(wait, 5.0)):
                raise ZohoStopped("this TDS is stopping; the request was not sent", app=app)

    def in_window(self, app: str) -> int:
        return int(self.client.zcard(self.key(app)))
