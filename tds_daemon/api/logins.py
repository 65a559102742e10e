"""Failed dashboard logins, limited per client address: after ``FAILURES_PER_MINUTE`` wrong tokens in a
minute, that address gets 429 with ``Retry-After`` until its minute is over, whatever it sends.

Counted in Redis, so every API process shares the count; while Redis does not answer, each process
counts on its own, so the limit still holds (per process) rather than lapsing.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time

import redis

log = logging.getLogger(__name__)
FAILURES_PER_MINUTE = 5
WINDOW_S = 60


def client_address(req) -> str:
    """The address a request came from: behind a reverse proxy on this machine, the address the proxy saw
    (the last ``X-Forwarded-For`` entry, which the proxy appends; earlier entries are the client's own word)."""
    remote = req.remote_addr or ""
    forwarded = req.get_header("X-Forwarded-For")
    try:
        local = ipaddress.ip_address(remote).is_loopback
    except ValueError:
        local = False
    if local and forwarded:
        last = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return remote
    return remote


class LoginLimiter:
    def __init__(self, client: redis.Redis, namespace: str, per_minute: int = FAILURES_PER_MINUTE):
        self.client, self.namespace, self.per_minute = client, namespace, per_minute
        self._local: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def _key(self, address: str) -> str:
        return f"{self.namespace}:login_failures:{address}"

    def blocked_for(self, address: str) -> int:
        """Seconds until ``address`` may try again (0: it may now)."""
        try:
            pipe = self.client.pipeline()
            pipe.get(self._key(address))
            pipe.ttl(self._key(address))
            count, ttl = pipe.execute()
            count = int(count or 0)
        except redis.RedisError:
            with self._lock:
                started, count = self._local.get(address, (0.0, 0))
            ttl = int(started + WINDOW_S - time.monotonic()) + 1
        if count < self.per_minute or ttl <= 0:
            return 0
        return ttl

    def failed(self, address: str) -> None:
        """Counts one wrong token from ``address`` in its current minute."""
        try:
            pipe = self.client.pipeline()
            pipe.incr(self._key(address))
            pipe.expire(self._key(address), WINDOW_S, nx=True)
            pipe.execute()
        except redis.RedisError:
            now = time.monotonic()
            with self._lock:
                started, count = self._local.get(address, (now, 0))
                if now - started >= WINDOW_S:
                    started, count = now, 0
                self._local[address] = (started, count + 1)
