"""Running the pushers: a thread per subscriber, woken by ``NOTIFY tds_events``, until asked to stop.

Each subscriber is pushed by one process at a time, whichever TDS holds its PostgreSQL advisory lock, so
that two daemons on one database never post the same events twice over; the other waits to take over. The
lock lives as long as the connection that took it: that connection is checked before every post, so a
pusher whose connection dropped (PostgreSQL restarted, the backend terminated, the network cut) stops at
once, and pushes again only once it holds the lock anew.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from tds_daemon.apply.events import CHANNEL
from tds_daemon.oneline import described
from tds_daemon.publish.pusher import Pusher
from tds_daemon.subscribers import Subscriber

log = logging.getLogger(__name__)

IDLE_POLL_S = 1.0  # a notification normally wakes a pusher first; this bounds a lost one
ERROR_PAUSE_S = 5.0
GATHER_S = 0.1  # after a wake-up, commits that follow within this time are pushed in the same step
NICENESS = 10  # pushing yields the CPU to intake and applying when they need it


class LockLost(Exception):
    """The connection holding a subscriber's advisory lock is gone, and the lock with it."""


def lock_key(url: str) -> int:
    """A subscriber's advisory-lock key: 63 bits of its URL's hash."""
    return int.from_bytes(hashlib.sha256(f"tds-events:{url}".encode()).digest()[:8], "big") >> 1


def lower_priority() -> None:
    """Make the calling thread yield the CPU to the rest of TDS (Linux lets a thread have its own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except (AttributeError, OSError) as e:  # not Linux, or not allowed: pushing still works
        log.debug("events: pushing at normal priority: %s", e)


class Publisher:
    """The pushers of the configured subscribers; ``start`` returns at once, ``stop`` ends them."""

    def __init__(self, engine: Engine, subscribers: list[Subscriber], *, retry_s: float = ERROR_PAUSE_S):
        self.engine, self.subscribers, self.retry_s = engine, subscribers, retry_s
        self.stopping = threading.Event()
        self.wakes = [threading.Event() for _ in subscribers]
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        if not self.subscribers:
            return
        self.threads.append(threading.Thread(target=self._listen, name="tds-events-listen", daemon=True))
        for sub, wake in zip(self.subscribers, self.wakes, strict=True):
            self.threads.append(threading.Thread(target=self._push, args=(sub, wake), daemon=True,
                                                 name=f"tds-events-{sub.label}"))
        for t in self.threads:
            t.start()

    def stop(self, timeout: float = 15.0) -> bool:
        """Ask every thread to end and wait up to ``timeout`` in all; False if one is still in a push (it ends
        when that push times out, and holds its subscriber's lock until then, so nothing is sent twice)."""
        self.stopping.set()
        for wake in self.wakes:
            wake.set()
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def _push(self, sub: Subscriber, wake: threading.Event) -> None:
        lower_priority()
        waited = False  # refused the lock, or lost it: taking it is news for the log
        while not self.stopping.is_set():
            try:
                with self.engine.connect() as holder:
                    if not holder.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": lock_key(sub.url)}).scalar():
                        holder.rollback()
                        waited = True
                        self.stopping.wait(self.retry_s)  # another TDS pushes to this subscriber
                        continue
                    holder.commit()  # the session lock stays; no transaction stays open
                    if waited:
                        log.info("events: this TDS now pushes to %s", sub.label)
                    self._loop(sub, wake, lambda: _still_held(holder))
                    holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_key(sub.url)})
                    holder.commit()
            except Exception as e:  # PostgreSQL gone, or the lock with its connection: try again shortly
                waited = True
                log.warning("events: pushing to %s paused: %s", sub.label, described(e))
                self.stopping.wait(self.retry_s)

    def _loop(self, sub: Subscriber, wake: threading.Event, held: Callable[[], None]) -> None:
        pusher = Pusher(self.engine, sub, before_post=held)
        try:
            while not self.stopping.is_set():
                wait = pusher.step()
                if wait <= 0:
                    continue
                if wait > IDLE_POLL_S:  # a backoff: new events do not shorten it
                    self.stopping.wait(wait)
                elif wake.wait(wait):
                    self.stopping.wait(GATHER_S)  # one step for a burst of commits, not one for each
                    wake.clear()
        finally:
            pusher.close()

    def _listen(self) -> None:
        """Wake every pusher on each notification; while the listening connection is down they poll."""
        lower_priority()
        while not self.stopping.is_set():
            try:
                raw = self.engine.raw_connection()
                try:
                    raw.driver_connection.set_isolation_level(0)
                    with raw.driver_connection.cursor() as cur:
                        cur.execute(f"LISTEN {CHANNEL}")
                    conn = raw.driver_connection
                    while not self.stopping.is_set():
                        if select.select([conn], [], [], IDLE_POLL_S)[0]:
                            conn.poll()
                            if conn.notifies:
                                conn.notifies.clear()
                                for wake in self.wakes:
                                    wake.set()
                finally:
                    raw.invalidate()  # LISTEN and autocommit must not go back to the pool
            except Exception as e:
                log.warning("events: listening for new events paused: %s", described(e))
                self.stopping.wait(ERROR_PAUSE_S)


def _still_held(holder: Connection) -> None:
    """Return if the connection that took the lock still answers (the lock lives as long as it), else raise
    LockLost: another TDS may hold the lock by now."""
    try:
        holder.execute(text("SELECT 1"))
        holder.rollback()
    except Exception as e:
        raise LockLost(f"the connection holding its lock dropped ({described(e)}); pushing resumes once this "
                       "TDS holds the lock again") from None
