"""Admin API for the circuit breakers: ``GET /api/tds/circuit-breakers`` and ``POST .../{name}/reset``.

The breakers are in Redis (``tds_daemon.guard.breakers``); this reads them as every process sees them. A
reset closes the breaker at once with an empty window, resolves its ``breaker_open`` alert, and makes
the entity's deferred sync items due now (the recovery sweep dispatches them within a sweep interval)
instead of at the time the breaker would have let trial calls through.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import redis
from sqlalchemy import exc

from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError, redis_unavailable
from tds_daemon.apply import syncqueue
from tds_daemon.guard import breakers as breakers_mod

log = logging.getLogger(__name__)


def _unavailable(e: Exception) -> ApiError:
    return redis_unavailable(e, "the breakers' state")


class BreakersResource:
    access = Access.ADMIN

    def __init__(self, breakers: breakers_mod.Breakers):
        self.breakers = breakers

    def on_get(self, req, resp) -> None:
        try:
            statuses = self.breakers.statuses()
        except redis.RedisError as e:
            raise _unavailable(e) from None
        resp.media = {"breakers": [s.as_json() for s in statuses],
                      "settings": asdict(self.breakers.settings)}


class BreakerResetResource:
    access = Access.ADMIN

    def __init__(self, breakers: breakers_mod.Breakers, engine):
        self.breakers, self.engine = breakers, engine

    def on_post(self, req, resp, name: str) -> None:
        try:
            breaker = self.breakers.get(name)
        except KeyError:
            raise ApiError(404, "unknown_breaker", f"no circuit breaker {name[:80]!r}; known: "
                           + ", ".join(breakers_mod.NAMES)) from None
        try:
            before = breaker.reset()
            if before == breakers_mod.CLOSED:
                breaker.clear_alert()  # closed already, but its alert may be left open (a resolve that failed)
            status = breaker.status()
        except redis.RedisError as e:
            raise _unavailable(e) from None
        released = None
        if name.startswith("entity:"):
            try:
                with self.engine.begin() as conn:
                    released = syncqueue.undefer(conn, name.split(":", 1)[1])
            except exc.SQLAlchemyError as e:  # they are still retried when their deferral runs out
                log.warning("breaker %s reset; its deferred items stay deferred: %s", name, type(e).__name__)
        log.info("breaker %s reset by the admin API (was %s); deferred items made due: %s", name, before, released)
        resp.media = {"status": "reset", "previous_state": before, "breaker": status.as_json(),
                      "deferred_items_released": released}
