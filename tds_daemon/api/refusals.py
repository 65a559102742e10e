"""Refused webhooks in the log: one WARNING per reason at most every ``interval_s``, with a count of those
not logged since. Entity and client address only: never the token, the query string or the body."""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("tds_daemon.api.webhooks")
INTERVAL_S = 60.0


def _clean(value: str | None, limit: int = 60) -> str:
    """A request-supplied string fit for one log line: printable, short."""
    text = "".join(c if c.isprintable() and not c.isspace() else "?" for c in (value or "-")[:limit])
    return text or "-"


class RefusalLog:
    def __init__(self, interval_s: float = INTERVAL_S, clock=time.monotonic):
        self.interval_s, self.clock = interval_s, clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # reason -> when it was last logged
        self._suppressed: dict[str, int] = {}

    def note(self, status: int, reason: str, entity: str | None, client: str | None, forwarded: str | None = None,
             detail: str | None = None) -> bool:
        """Log this refusal unless its reason was logged within ``interval_s``; whether it was logged."""
        now = self.clock()
        with self._lock:
            last = self._last.get(reason)
            if last is not None and now - last < self.interval_s:
                self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
                return False
            self._last[reason] = now
            suppressed = self._suppressed.pop(reason, 0)
        extra = f" forwarded_for={_clean(forwarded.split(',')[0].strip(), 45)}" if forwarded else ""
        if detail:
            extra += f" error={_clean(detail)}"
        if suppressed:
            extra += f" (and {suppressed} more for this reason since its last line, not logged)"
        log.warning("webhook refused: status=%d reason=%s entity=%s client=%s%s", status, reason, _clean(entity),
                    _clean(client, 45), extra)
        return True
