"""Zoho's concurrency cap, shared by every process: at most ``zoho.max_concurrency`` calls in flight.

Zoho answers 429 past a few simultaneous calls per organization (5 on the free plan, 10 on paid
ones), whichever app they go to. Each call takes a slot before it is sent and gives it back after;
a slot is a lease (a member of a Redis sorted set scored by its expiry), so a process killed
mid-call holds its slot only until the lease ends, never for good.

Key: ``<ns>:zoho:slots`` (``<ns>`` is ``redis.namespace``).
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager

import redis

from tds_daemon.pull.zoho.errors import ZohoRateLimited

# KEYS[1] the sorted set; ARGV[1] slots, ARGV[2] lease in microseconds, ARGV[3] a unique member.
# Returns 1 when the slot is taken, else 0.
ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000) + 1000)
  return 1
end
return 0
"""
POLL_S = 0.02


class Slots:
    def __init__(self, client: redis.Redis, namespace: str, slots: int, lease_s: float):
        self.client, self.slots, self.lease_s = client, slots, lease_s
        self.key = f"{namespace}:zoho:slots"
        self._acquire = client.register_script(ACQUIRE)

    def try_acquire(self) -> str | None:
        member = uuid.uuid4().hex
        taken = self._acquire(keys=[self.key], args=[self.slots, int(self.lease_s * 1e6), member])
        return member if int(taken) else None

    def release(self, member: str) -> None:
        self.client.zrem(self.key, member)

    @contextmanager
    def slot(self, timeout: float, app: str = ""):
        """Hold a slot for the block; ZohoRateLimited if none frees within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            member = self.try_acquire()
            if member:
                break
            if time.monotonic() >= deadline:
                raise ZohoRateLimited(f"{self.slots} simultaneous Zoho calls (zoho.max_concurrency) in flight for "
                                      f"{timeout:.0f}s; none freed", retry_after=1.0, app=app)
            time.sleep(POLL_S)
        try:
            yield
        finally:
            try:
                self.release(member)
            except redis.RedisError:
                pass  # the lease ends it

    def in_flight(self) -> int:
        now_us = int(time.time() * 1e6)
        return int(self.client.zcount(self.key, now_us, "+inf"))
