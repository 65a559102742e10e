"""Zoho's API limits: requests per minute (and optionally per day) per app per organization.

Books and Inventory are counted separately (ZOHO.md). The minute is a sliding 60-second window over
the requests that were let through; a request past the limit gets HTTP 429 with Zoho's code 44 and
a ``Retry-After`` (seconds until the oldest request in the window leaves it). Whether Zoho's window
is sliding or a fixed clock minute, and whether it sends ``Retry-After``, is *unconfirmed*: a
sliding window is the stricter reading, so a client that passes here passes there.

Counted: API requests that passed the token and organization checks (whether Zoho counts refused
ones too is *unconfirmed*). Every such arrival is recorded, let through or not, so the stats can
prove a client never sent more than the limit in any 60 seconds (``max_window``), not only that it
was never refused (``max_window_accepted`` counts only those let through).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import deque

from . import errors
from .zohotime import ORG_TZ

WINDOW_S = 60.0


class RateLimiter:
    def __init__(self, per_minute: int, per_day: int = 0, clock=time.monotonic):
        self.per_minute, self.per_day, self.clock = per_minute, per_day, clock
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.accepted: dict[tuple[str, str], deque[float]] = {}
            self.arrived: dict[tuple[str, str], deque[float]] = {}
            self.max_accepted: dict[tuple[str, str], int] = {}
            self.max_arrived: dict[tuple[str, str], int] = {}
            self.limited: dict[tuple[str, str], int] = {}
            self.days: dict[tuple[str, str], tuple[dt.date, int]] = {}

    def configure(self, per_minute: int | None = None, per_day: int | None = None) -> None:
        with self.lock:
            if per_minute is not None:
                self.per_minute = per_minute
            if per_day is not None:
                self.per_day = per_day

    @staticmethod
    def _slide(q: deque[float], now: float) -> None:
        while q and q[0] <= now - WINDOW_S:
            q.popleft()

    def check(self, app: str, org: str) -> None:
        """Count one request; raise the ZohoError to answer instead when it is over a limit."""
        key, now = (app, org), self.clock()
        with self.lock:
            arrived = self.arrived.setdefault(key, deque())
            self._slide(arrived, now)
            arrived.append(now)
            self.max_arrived[key] = max(self.max_arrived.get(key, 0), len(arrived))
            accepted = self.accepted.setdefault(key, deque())
            self._slide(accepted, now)
            if self.per_minute and len(accepted) >= self.per_minute:
                self.limited[key] = self.limited.get(key, 0) + 1
                raise errors.per_minute(max(1, math.ceil(accepted[0] + WINDOW_S - now)))
            if self.per_day:
                today = dt.datetime.now(ORG_TZ)
                day, used = self.days.get(key, (today.date(), 0))
                used = used if day == today.date() else 0
                if used >= self.per_day:
                    self.limited[key] = self.limited.get(key, 0) + 1
                    midnight = dt.datetime.combine(today.date() + dt.timedelta(days=1), dt.time(), ORG_TZ)
                    raise errors.per_day(self.per_day, max(1, math.ceil((midnight - today).total_seconds())))
                self.days[key] = (today.date(), used + 1)
            accepted.append(now)
            self.max_accepted[key] = max(self.max_accepted.get(key, 0), len(accepted))

    def snapshot(self) -> dict[str, dict]:
        """Per app (all organizations together: the simulator serves one)."""
        now = self.clock()
        out: dict[str, dict] = {}
        with self.lock:
            for (app, _org), q in self.arrived.items():
                a = out.setdefault(app, {"max_window": 0, "max_window_accepted": 0, "window_now": 0, "limited": 0})
                self._slide(q, now)
                a["window_now"] = max(a["window_now"], len(q))
                a["max_window"] = max(a["max_window"], self.max_arrived.get((app, _org), 0))
                a["max_window_accepted"] = max(a["max_window_accepted"], self.max_accepted.get((app, _org), 0))
                a["limited"] += self.limited.get((app, _org), 0)
        return out
