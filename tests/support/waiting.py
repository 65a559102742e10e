"""Waiting for something to happen, or showing that it does not, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

SLOWEST_POLL_S = 0.5  # a wait without an interval of its own polls ever less often, down to this


def wait_until(condition: Callable[[], object], timeout: float, interval: float | None = None,
               message: str = "condition") -> object:
    """Poll ``condition`` until it returns something truthy; fail the test at the deadline.

    Without ``interval`` it polls every 0.05 s at first and less often the longer it waits (up to every
    SLOWEST_POLL_S), so a long wait does not keep a core busy asking; a condition that holds only for a
    moment passes its own ``interval``."""
    started = time.monotonic()
    deadline = started + timeout
    delay = interval or 0.05
    last_error: Exception | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as e:  # the thing waited for may not answer yet
            last_error = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}"
                                 + (f" (last error: {last_error!r})" if last_error else ""))
        time.sleep(delay)
        if interval is None and time.monotonic() - started > 1.0:
            delay = min(SLOWEST_POLL_S, delay * 1.5)


def holds_for(condition: Callable[[], object], seconds: float, interval: float = 0.05) -> bool:
    """Whether ``condition`` stays truthy for ``seconds`` (checked every ``interval``): the bounded way to
    show that something does *not* happen, which a wait-until cannot express. False at the first miss."""
    deadline = time.monotonic() + seconds
    while True:
        if not condition():
            return False
        if time.monotonic() >= deadline:
            return True
        time.sleep(interval)
