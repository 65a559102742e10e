"""Intake pressure: whether an API process takes webhooks as fast as it can, and telling the workers.

While an API process is saturated it sets ``<namespace>:intake:saturated`` in Redis (a key that expires by
itself), and the workers hold back new items' messages for at most ``workers.intake_first_s``
(``actors/middleware/intake_first.py``): Zoho does not send a missed webhook again, so taking them comes
first. Saturated: in every window of the last ``SUSTAIN_S``, on average half the request threads or more
in the webhook handler *and* at least as many requests answered. A stall fills the threads but answers
nothing, so it breaks the run instead of holding the workers. The figures: docs/PERFORMANCE.md,
"Figures behind choices in the code"; the setting: docs/OPERATIONS.md, "Capacity and tuning".
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)
WINDOW_S = 0.5
THRESHOLD = 0.5  # of the process's threads
SUSTAIN_S = 1.5  # saturated windows in a row before the workers are told: three, more than a stall can make
KEY_TTL_MS = 1000  # the workers' hold ends at most this long after the last saturated window
KEY = "{namespace}:intake:saturated"
LOG_EVERY_S = 60


class Pressure:
    """The time-weighted mean number of webhook requests in flight in this process and the number
    answered, per window, and whether both have stayed at the limit for ``sustain_s``."""

    def __init__(self, threads: int, *, window_s: float = WINDOW_S, threshold: float = THRESHOLD,
                 sustain_s: float = SUSTAIN_S, clock=time.monotonic):
        self.limit = max(1.0, threads * threshold)
        self.window_s, self.sustain_s, self.clock = window_s, sustain_s, clock
        self._lock = threading.Lock()
        self._inflight = 0
        self._area = 0.0
        self._answered = 0
        self._start = self._last = clock()
        self._saturated_until = 0.0
        self._run_start: float | None = None  # start of the saturated windows in a row, if the last was
        self.last_mean = 0.0

    def enter(self) -> None:
        self._change(+1)

    def leave(self) -> None:
        self._change(-1)

    @property
    def saturated(self) -> bool:
        """The windows of the last ``sustain_s`` up to the last full one were all at the limit, in
        requests in flight and answered (and that one ended less than a window ago)."""
        with self._lock:
            self._advance(self.clock())
            return self.clock() < self._saturated_until

    def _change(self, delta: int) -> None:
        with self._lock:
            self._advance(self.clock())
            self._inflight += delta
            if delta < 0:
                self._answered += 1

    def _advance(self, now: float) -> None:
        # Every answer calls this, and so does a new request: a whole window without a call answered
        # nothing, whatever the window's first moments answered (a stall closes one long window).
        quiet = now - self._last >= self.window_s
        self._area += self._inflight * (now - self._last)
        self._last = now
        elapsed = now - self._start
        if elapsed >= self.window_s:
            self.last_mean = self._area / elapsed
            if quiet or self.last_mean < self.limit or self._answered < self.limit:
                self._run_start = None
            else:
                if self._run_start is None:
                    self._run_start = self._start
                if now - self._run_start >= self.sustain_s:
                    self._saturated_until = now + self.window_s
            self._area, self._answered, self._start = 0.0, 0, now


class Announcer:
    """Sets the Redis key while ``pressure`` is saturated, at most every quarter of its lifetime."""

    def __init__(self, pressure: Pressure, client, namespace: str):
        self.pressure, self.client = pressure, client
        self.key = KEY.format(namespace=namespace)
        self._next = 0.0
        self._logged_at = -LOG_EVERY_S

    def tick(self) -> None:
        if not self.pressure.saturated:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + KEY_TTL_MS / 4000
        if now - self._logged_at >= LOG_EVERY_S:
            # What explains rows lagging during a burst; once a minute at most.
            self._logged_at = now
            log.info("intake saturated (on average %.1f requests in the handler at once): workers hold back "
                     "new items for up to workers.intake_first_s", self.pressure.last_mean)
        try:
            self.client.set(self.key, "1", px=KEY_TTL_MS)
        except Exception as e:  # Redis down: the workers simply do not hold back
            log.debug("could not announce intake pressure: %s", type(e).__name__)
