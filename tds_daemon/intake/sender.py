"""Sending the "apply these items" messages of an API process from a thread of its own.

The request that wrote a group hands its new items here instead of sending them itself. The thread
sends what has gathered (one message per entity), then waits ``linger_s`` (``api.send_interval_ms``)
before it looks again: a message after a quiet spell leaves at once; under load each carries the items
of many groups, which saves Redis round trips in the API and, above all, transactions in the workers:
a little latency traded for much less CPU (docs/PERFORMANCE.md). A message lost with the process
(killed before it sent) is sent again by the recovery sweep: the items are in PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Engine

from tds_daemon.apply.dispatch import Dispatcher

log = logging.getLogger(__name__)
_open: list[Outbox] = []  # of this process, for close_all at exit


def close_all() -> None:
    """Send what every outbox of this process holds (gunicorn's worker_exit): a graceful stop or reload
    then leaves nothing for the recovery sweep to find."""
    for outbox in list(_open):
        outbox.close()


class Outbox:
    def __init__(self, engine: Engine, dispatcher: Dispatcher, linger_s: float, announcer=None):
        self.engine, self.dispatcher, self.linger_s = engine, dispatcher, linger_s
        self.announcer = announcer  # tells the workers when this process is saturated (tds_daemon/pressure.py)
        self._cond = threading.Condition()
        self._items: list[tuple[int, str]] = []
        self._thread: threading.Thread | None = None
        self._closed = False
        _open.append(self)

    def add(self, items: list[tuple[int, str]]) -> None:
        """Queue committed (item id, entity) pairs for sending."""
        with self._cond:
            self._items.extend(items)
            if self._closed:
                return  # close() sends them
            if self._thread is None:
                # Started on first use: in the process that serves requests, after gunicorn forked it.
                self._thread = threading.Thread(target=self._run, name="tds-outbox", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        """Stop the thread and send what is left, here and now."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._send()

    def _run(self) -> None:
        while not self._closed:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
            self._send()
            if self.announcer is not None:
                self.announcer.tick()
            time.sleep(self.linger_s)

    def _send(self) -> None:
        with self._cond:
            items, self._items = self._items, []
        if not items:
            return
        try:
            self.dispatcher.send_items(self.engine, items)
        except Exception:  # the thread must live on; these items are sent again by the recovery sweep
            log.exception("sending %d item(s) failed; the recovery sweep will send them", len(items))
