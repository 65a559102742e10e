"""Group commit: the webhooks one API process receives at the same time share one transaction.

Each request still answers only after the commit that holds its delivery, and the messages are
still sent after that commit (by the process's ``Outbox``, which gathers the items of several groups
into one message). What is shared is the cost: one statement and one WAL flush for the whole group,
instead of one each. At low load a group is one request.

One writer thread per process (started on first use, after gunicorn forked) takes every delivery
waiting, writes them, wakes their requests, and takes the next group at once: no request thread has to
be woken and scheduled to lead the next write (that hand-off cost about 1 ms per group at saturation,
docs/PERFORMANCE.md).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from .. import inbox
from ..db import is_transient
from ..dispatch import Dispatcher
from ..intake import Delivery
from .outbox import Outbox

log = logging.getLogger(__name__)
MAX_GROUP = 100


class _Slot:
    __slots__ = ("delivery", "payload", "stored", "error", "wake")

    def __init__(self, delivery: Delivery, payload: str):
        self.delivery, self.payload = delivery, payload
        self.stored: inbox.Stored | None = None
        self.error: BaseException | None = None
        self.wake = threading.Event()


class GroupCommit:
    def __init__(self, engine: Engine, dispatcher: Dispatcher, *, send_interval_s: float = 0.02,
                 max_group: int = MAX_GROUP, announcer=None):
        self.engine, self.dispatcher, self.max_group = engine, dispatcher, max_group
        self.outbox = Outbox(engine, dispatcher, send_interval_s, announcer)
        self._cond = threading.Condition()
        self._waiting: list[_Slot] = []
        self._writing = False  # a group is being written
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None  # the writer's own, kept between groups

    def store(self, delivery: Delivery, payload_json: str) -> inbox.Stored:
        """Store one delivery durably; returns once committed. Raises what storing it raised."""
        slot = _Slot(delivery, payload_json)
        with self._cond:
            self._waiting.append(slot)
            if self._thread is None:
                # Started on first use: in the process that serves requests, after gunicorn forked it.
                self._thread = threading.Thread(target=self._run, name="tds-group-commit", daemon=True)
                self._thread.start()
            self._cond.notify()
        # Woken once, by the writer, when the group holding this delivery is written (one event per
        # request, not one condition for all: a write wakes only the requests it holds).
        slot.wake.wait()
        if slot.error is not None:
            raise slot.error
        return slot.stored

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                group = self._waiting[:self.max_group]
                del self._waiting[:self.max_group]
                self._writing = True
            try:
                self._write_group(group)
            except BaseException:  # the thread must live on: each request of the group has its error
                log.exception("writing a group of %d failed", len(group))
            finally:
                with self._cond:
                    self._writing = False

    def _write_group(self, group: list[_Slot]) -> None:
        """Write one group, answer its requests, hand its new items to the outbox."""
        will_dispatch = self.dispatcher.available
        try:
            self._write(group, will_dispatch)
        finally:
            for slot in group:
                if slot.error is None and slot.stored is None:
                    slot.error = RuntimeError("the group holding this delivery was not written")
                slot.wake.set()
        if will_dispatch:
            # After the requests are woken: they answer while the outbox takes these.
            new = [(s.stored.item_id, s.delivery.spec.name) for s in group if s.stored and not s.stored.duplicate]
            if new:
                self.outbox.add(new)

    def _store(self, deliveries, will_dispatch: bool) -> list[inbox.Stored]:
        """Store on the writer's connection, kept from one group to the next: checking a connection
        out of the pool and back for every group cost the writer thread, through which every webhook
        of the process passes, about 5% of its time (py-spy). After any error it is given up, so the
        next group starts on a connection of the pool's choosing."""
        if self._conn is None:
            self._conn = self.engine.connect()
        try:
            return inbox.store_many(self._conn, deliveries, will_dispatch)
        except BaseException:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except exc.SQLAlchemyError:
                pass
            raise

    def _write(self, group: list[_Slot], will_dispatch: bool) -> None:
        deliveries = [(s.delivery, s.payload) for s in group]
        try:
            try:
                stored = self._store(deliveries, will_dispatch)
            except exc.DBAPIError as e:
                if not e.connection_invalidated:
                    raise
                # A connection the server had closed (a restart): no ping before each write, so try
                # once more on a new one. Had the first write committed, this finds them as duplicates.
                log.info("database connection lost (%s); writing the group again", type(e.orig).__name__)
                stored = self._store(deliveries, will_dispatch)
        except exc.SQLAlchemyError as e:
            if len(group) == 1 or is_transient(e):
                # The database is unavailable (every delivery gets its 503), or the one delivery is at fault.
                for slot in group:
                    slot.error = e
                return
            # A permanent error in a group (PostgreSQL refused one body): write each on its own, so
            # that only the delivery at fault gets its error.
            log.info("group of %d refused (%s); storing each delivery alone", len(group),
                     type(getattr(e, "orig", e)).__name__)
            for slot in group:
                self._write([slot], will_dispatch)
            return
        for slot, result in zip(group, stored, strict=True):
            slot.stored = result
