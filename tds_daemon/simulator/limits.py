"""Zoho's API limits: a minute window per app, and a daily count and a concurrency cap per organization.

A sliding 60 s window per app (429 code 44), one daily count per organization for both apps (429 code 45;
back to 0 at the organization's midnight, counted even when off, for the ``X-Rate-Limit-*`` headers), and
the organization's requests in flight (429 code 1070), each with ``Retry-After``. Every arrival past the
token and organization checks enters the minute's log, let through or not, so the stats prove a client
never *sent* more than the limit in any 60 s (``max_window``). Where Zoho's behaviour is unconfirmed, the
stricter reading: docs/ARCHITECTURE.md, "The Zoho simulator".
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from tds_daemon.simulator import errors
from tds_daemon.simulator.errors import ZohoError
from tds_daemon.simulator.zohotime import ORG_TZ

WINDOW_S = 60.0
# X-Rate-Limit-Limit when the daily limit is off: Zoho always sends a figure, so "unlimited" is
# reported as this stand-in (Remaining counts down from it as usual).
UNLIMITED_DAY = 1_000_000


@dataclass(frozen=True)
class Quota:
    """The day's quota of an organization as one answer reports it (Zoho's ``X-Rate-Limit-*``)."""

    limit: int
    remaining: int
    reset_s: int

    def headers(self) -> dict[str, str]:
        return {"X-Rate-Limit-Limit": str(self.limit), "X-Rate-Limit-Remaining": str(self.remaining),
                "X-Rate-Limit-Reset": str(self.reset_s)}


def zero_app() -> dict[str, int]:
    return {"max_window": 0, "max_window_accepted": 0, "window_now": 0, "limited": 0,
            "in_flight": 0, "max_concurrent": 0, "concurrency_limited": 0}


class RateLimiter:
    def __init__(self, per_minute: int, per_day: int = 0, max_concurrency: int = 0, clock=time.monotonic,
                 now=lambda: dt.datetime.now(ORG_TZ)):
        self.per_minute, self.per_day, self.max_concurrency = per_minute, per_day, max_concurrency
        self.clock, self.now = clock, now
        self.lock = threading.Lock()
        # Requests in flight survive a reset (they are still running; their release must find them).
        self.in_flight: dict[tuple[str, str], int] = {}
        self.org_in_flight: dict[str, int] = {}
        self.reset()

    def reset(self) -> None:
        """Fresh windows, daily counts, high-water marks and refusal counts."""
        with self.lock:
            self.accepted: dict[tuple[str, str], deque[float]] = {}
            self.arrived: dict[tuple[str, str], deque[float]] = {}
            self.max_accepted: dict[tuple[str, str], int] = {}
            self.max_arrived: dict[tuple[str, str], int] = {}
            self.limited: dict[tuple[str, str], int] = {}
            self.days: dict[str, tuple[dt.date, int]] = {}
            self.max_in_flight: dict[tuple[str, str], int] = {}
            self.org_max_in_flight: dict[str, int] = {}
            self.concurrency_limited: dict[tuple[str, str], int] = {}

    def configure(self, per_minute: int | None = None, per_day: int | None = None,
                  max_concurrency: int | None = None) -> None:
        with self.lock:
            if per_minute is not None:
                self.per_minute = per_minute
            if per_day is not None:
                self.per_day = per_day
            if max_concurrency is not None:
                self.max_concurrency = max_concurrency

    @staticmethod
    def _slide(q: deque[float], now: float) -> None:
        while q and q[0] <= now - WINDOW_S:
            q.popleft()

    def _used(self, org: str, today: dt.date) -> int:
        day, used = self.days.get(org, (today, 0))
        return used if day == today else 0

    def _quota(self, org: str, wall: dt.datetime) -> Quota:
        limit = self.per_day or UNLIMITED_DAY
        midnight = dt.datetime.combine(wall.date() + dt.timedelta(days=1), dt.time(), ORG_TZ)
        return Quota(limit, max(0, limit - self._used(org, wall.date())),
                     max(1, math.ceil((midnight - wall).total_seconds())))

    def admit(self, app: str, org: str) -> tuple[Quota, ZohoError | None]:
        """Count one request. ``(quota, None)``: let through and now in flight (the caller must
        ``release`` it); ``(quota, error)``: refused, answer ``error``. ``quota`` includes this
        request when it was let through."""
        key, now, wall = (app, org), self.clock(), self.now().astimezone(ORG_TZ)
        with self.lock:
            arrived = self.arrived.setdefault(key, deque())
            self._slide(arrived, now)
            arrived.append(now)
            self.max_arrived[key] = max(self.max_arrived.get(key, 0), len(arrived))
            accepted = self.accepted.setdefault(key, deque())
            self._slide(accepted, now)
            used = self._used(org, wall.date())
            error = None
            if self.per_minute and len(accepted) >= self.per_minute:
                error = errors.per_minute(max(1, math.ceil(accepted[0] + WINDOW_S - now)))
            elif self.per_day and used >= self.per_day:
                error = errors.per_day(self.per_day, self._quota(org, wall).reset_s)
            elif self.max_concurrency and self.org_in_flight.get(org, 0) >= self.max_concurrency:
                self.concurrency_limited[key] = self.concurrency_limited.get(key, 0) + 1
                return self._quota(org, wall), errors.concurrency()
            if error is not None:
                self.limited[key] = self.limited.get(key, 0) + 1
                return self._quota(org, wall), error
            self.days[org] = (wall.date(), used + 1)
            accepted.append(now)
            self.max_accepted[key] = max(self.max_accepted.get(key, 0), len(accepted))
            self.in_flight[key] = self.in_flight.get(key, 0) + 1
            self.max_in_flight[key] = max(self.max_in_flight.get(key, 0), self.in_flight[key])
            self.org_in_flight[org] = self.org_in_flight.get(org, 0) + 1
            self.org_max_in_flight[org] = max(self.org_max_in_flight.get(org, 0), self.org_in_flight[org])
            return self._quota(org, wall), None

    def release(self, app: str, org: str) -> None:
        """A request ``admit`` let through has been answered: no longer in flight."""
        with self.lock:
            self.in_flight[(app, org)] = max(0, self.in_flight.get((app, org), 0) - 1)
            self.org_in_flight[org] = max(0, self.org_in_flight.get(org, 0) - 1)

    def used_today(self, org: str) -> int:
        with self.lock:
            return self._used(org, self.now().astimezone(ORG_TZ).date())

    def set_used(self, org: str, used: int) -> None:
        """Today's count of ``org`` becomes ``used``: other integrations' calls spending the same quota."""
        with self.lock:
            self.days[org] = (self.now().astimezone(ORG_TZ).date(), used)

    def snapshot(self) -> tuple[dict[str, dict], dict[str, int]]:
        """``(per app, organization)``, the simulator serving one organization: per app its minute
        window figures, ``limited`` (refused by the minute or the day), ``in_flight``,
        ``max_concurrent`` (most of its requests in flight at once) and ``concurrency_limited``;
        for the organization, ``in_flight``, ``max_concurrent`` (all apps together) and
        ``concurrency_limited``."""
        now = self.clock()
        apps: dict[str, dict] = {}
        with self.lock:
            for key in set(self.arrived) | set(self.in_flight):
                a = apps.setdefault(key[0], zero_app())
                q = self.arrived.get(key, deque())
                self._slide(q, now)
                a["window_now"] = max(a["window_now"], len(q))
                a["max_window"] = max(a["max_window"], self.max_arrived.get(key, 0))
                a["max_window_accepted"] = max(a["max_window_accepted"], self.max_accepted.get(key, 0))
                a["limited"] += self.limited.get(key, 0)
                a["in_flight"] += self.in_flight.get(key, 0)
                a["max_concurrent"] = max(a["max_concurrent"], self.max_in_flight.get(key, 0))
                a["concurrency_limited"] += self.concurrency_limited.get(key, 0)
            org = {"in_flight": sum(self.org_in_flight.values()),
                   "max_concurrent": max(self.org_max_in_flight.values(), default=0),
                   "concurrency_limited": sum(self.concurrency_limited.values())}
        return apps, org
