"""Waking the listeners of ``NOTIFY tds_events`` without slowing the transactions that write events.

PostgreSQL serialises the commits of all transactions that send a NOTIFY (each holds one lock on the
notification queue until it ends), so applying transactions send none. A commit that wrote events hands
the newest id to its process's notifier thread (``send``), which sends one NOTIFY, in a transaction of its
own on a connection of its own, for every id handed to it meanwhile. A notice may arrive before the commit
it announces has ended: readers wait for such writers anyway (``tds_daemon.publish.feed.horizon``). A lost
notice costs a listener its next poll, never an event.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from sqlalchemy.engine import Engine

from tds_daemon.oneline import described

log = logging.getLogger(__name__)

CHANNEL = "tds_events"
IDLE_S = 30.0  # a notifier with nothing to send for this long closes its connection and ends
RETRY_S = 5.0  # after a failed NOTIFY, the earliest next one (on a new connection)

_notifiers: dict[Engine, _Notifier] = {}
_guard = threading.Lock()


def send(engine: Engine, newest_id: int) -> None:
    """Have the listeners woken with ``newest_id`` (or a newer id) soon; never blocks on the database."""
    with _guard:
        notifier = _notifiers.get(engine)
        if notifier is None or not notifier.offer(newest_id):
            _notifiers[engine] = _Notifier(engine, newest_id)


class _Notifier:
    """One process's NOTIFY sender for one engine: a daemon thread, gone after ``IDLE_S`` without work."""

    def __init__(self, engine: Engine, newest_id: int):
        self.pid = os.getpid()
        self.engine = engine
        self.newest, self.pending, self.ended = newest_id, True, False
        self.cond = threading.Condition()
        threading.Thread(target=self._run, name="tds-events-notify", daemon=True).start()

    def offer(self, newest_id: int) -> bool:
        """Take an id to announce; False if this notifier can no longer send (ended, or of a parent process)."""
        with self.cond:
            if self.ended or self.pid != os.getpid():
                return False
            # The greatest id since the last notice (ids start again after a TRUNCATE ... RESTART IDENTITY).
            self.newest = max(self.newest, newest_id) if self.pending else newest_id
            self.pending = True
            self.cond.notify()
            return True

    def _run(self) -> None:
        raw = None
        try:
            while True:
                with self.cond:
                    if not self.cond.wait_for(lambda: self.pending, IDLE_S):
                        self.ended = True
                        break
                    newest, self.pending = self.newest, False
                try:
                    if raw is None:
                        pooled = self.engine.raw_connection()
                        raw = pooled.dbapi_connection
                        pooled.detach()  # its own, for as long as this thread lives: not a slot of the pool
                        raw.autocommit = True
                    with raw.cursor() as cur:
                        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(newest)))
                except Exception as e:  # this notice is dropped: listeners find its events at their next poll
                    log.warning("events: could not wake listeners: %s; the next commit tries again, in %.0f s at "
                                "the earliest", described(e), RETRY_S)
                    _close(raw)
                    raw = None
                    time.sleep(RETRY_S)
        finally:
            _close(raw)
        with _guard:
            if _notifiers.get(self.engine) is self:
                del _notifiers[self.engine]


def _close(raw) -> None:
    if raw is not None:
        try:
            raw.close()
        except Exception:  # already broken: nothing more to release
            pass
