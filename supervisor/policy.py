"""The restart strategy: one-for-one, with backoff and an intensity limit (as in Erlang/OTP).

A child that dies is started again after a delay that grows with its recent restarts. If one child
needs more than ``max_restarts`` restarts within ``window_s``, restarting is not helping (a bad
configuration, a database that refuses us, a bug): the supervisor gives up, stops everything and
exits non-zero, so that systemd's ``Restart=on-failure`` and its own start limit take over.
"""

from __future__ import annotations

from collections import defaultdict, deque

BACKOFF_S = (0.5, 1, 2, 5, 10)


class GiveUp(Exception):
    """A child died too often; ``str()`` says which, how often and how it last ended."""


class RestartPolicy:
    def __init__(self, max_restarts: int, window_s: float):
        self.max_restarts, self.window_s = max_restarts, window_s
        self._restarts: dict[str, deque[float]] = defaultdict(deque)

    def delay(self, name: str, now: float, how: str) -> float:
        """Record a death of ``name``; the seconds to wait before starting it again, or GiveUp."""
        recent = self._restarts[name]
        while recent and now - recent[0] >= self.window_s:
            recent.popleft()
        if len(recent) >= self.max_restarts:
            raise GiveUp(f"{name} {how}; it was restarted {len(recent)} times in the last "
                         f"{self.window_s:g} s (supervisor.max_restarts = {self.max_restarts}): giving up")
        recent.append(now)
        return BACKOFF_S[min(len(recent) - 1, len(BACKOFF_S) - 1)]

    def update(self, max_restarts: int, window_s: float) -> None:
        self.max_restarts, self.window_s = max_restarts, window_s
