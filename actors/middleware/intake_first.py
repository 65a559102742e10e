"""IntakeFirst: while the API is saturated, hold back the messages of new items, for a bounded time.

An API process that takes webhooks as fast as it can sets ``<namespace>:intake:saturated`` in Redis
(``tds_daemon.intake.pressure``; the key expires a second after the last saturated moment). Before a
message that intake sent is processed, this waits while the key is there, but never past
``workers.intake_first_s`` after the message was sent, and never once the worker is stopping. So at
saturation the CPU and the WAL flushes go to taking webhooks, and applying catches up when the burst
is over, or after ``intake_first_s`` at the latest. Messages sent by anything else (the recovery
sweep, the healer, a replay, a sync run) are never held. If Redis does not answer, nothing is held.
"""

from __future__ import annotations

import logging
import threading
import time

from dramatiq.middleware import Middleware

from tds_daemon.intake.pressure import KEY

log = logging.getLogger(__name__)
POLL_S = 0.1  # how often a held message looks at the key again
ORIGIN = "intake"


class IntakeFirst(Middleware):
    def __init__(self, namespace: str, max_hold_s: float):
        self.key = KEY.format(namespace=namespace)
        self.max_hold_s = max_hold_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._checked_at = -1.0
        self._saturated = False

    def before_worker_shutdown(self, broker, worker) -> None:
        self._stop.set()

    def before_process_message(self, broker, message) -> None:
        if self.max_hold_s <= 0 or message.options.get("tds_origin") != ORIGIN:
            return
        deadline = message.message_timestamp / 1000 + self.max_hold_s
        held = False
        while time.time() < deadline and not self._stop.is_set() and self._intake_saturated(broker):
            held = True
            self._stop.wait(POLL_S)
        if held:
            log.debug("held message %s for the API: %.1fs after it was sent", message.message_id,
                      time.time() - message.message_timestamp / 1000)

    def _intake_saturated(self, broker) -> bool:
        """The key, read at most every POLL_S by the whole process (not by each of its threads)."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked_at >= POLL_S:
                self._checked_at = now
                try:
                    self._saturated = bool(broker.client.exists(self.key))
                except Exception as e:  # Redis unavailable: hold nothing
                    log.debug("could not read intake pressure: %s", type(e).__name__)
                    self._saturated = False
            return self._saturated
