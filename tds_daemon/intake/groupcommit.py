"""Group commit: the webhooks one API process receives at the same time share one transaction.

Each request still answers only after the commit that holds its delivery, and the messages are
still sent after that commit (by the process's ``Outbox``, which gathers the items of several groups
into one message). What is shared is the cost: one statement and one WAL flush for the whole group,
instead of one each. At low load a group is one request.

One writer thread per process (started on first use, after gunicorn forked) takes every delivery
waiting, writes them, wakes their requests, and takes the next group at once: no request thread has to
be woken and scheduled to lead the next write, a hand-off that would delay every group at saturation.
"""

from __future__ import annotations

import logging
import queue
import threading

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.intake import inbox
from tds_daemon.intake.sender import Outbox
from tds_daemon.intake.webhook import Delivery
from tds_daemon.metrics import webhooks_received
from tds_daemon.store.db import is_transient

log = logging.getLogger(__name__)
MAX_GROUP = 100


class _Slot:
    __slots__ = ("delivery", "payload", "stored", "error", "done")

    def __init__(self, delivery: Delivery, payload: str):
        self.delivery, self.payload = delivery, payload
        self.stored: inbox.Stored | None = None
        self.error: BaseException | None = None
        # Held until the writer has written this delivery's group: the request blocks on acquiring it.
        # A bare lock, not an Event: an Event's wait builds a Condition and a waiter lock per call, on the
        # path of every webhook.
        self.done = threading.Lock()
        self.done.acquire()


def _count(group: list[_Slot]) -> None:
    """``tds_webhooks_received_total`` for the stored deliveries of a group, once per entity and outcome:
    counted here, before their requests answer, so that a scrape after a 2xx finds it. (Refused ones
    are counted by the request, with their error code.)"""
    tally: dict[tuple[str, str], int] = {}
    for slot in group:
        if slot.stored is not None:
            key = (slot.delivery.spec.name, "duplicate" if slot.stored.duplicate else "accepted")
            tally[key] = tally.get(key, 0) + 1
    for (entity, outcome), n in tally.items():
        webhooks_received.labels(entity, outcome).inc(n)


class GroupCommit:
    def __init__(self, engine: Engine, dispatcher: Dispatcher, *, send_interval_s: float = 0.02,
                 max_group: int = MAX_GROUP, announcer=None):
        self.engine, self.dispatcher, self.max_group = engine, dispatcher, max_group
        self.outbox = Outbox(engine, dispatcher, send_interval_s, announcer)
        # The deliveries waiting for the writer. A SimpleQueue: putting and taking are single C calls,
        # where a list under a Condition cost a notify in Python per request.
        self._queue: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        self.writing = False  # a group is being written
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None  # the writer's own, kept between groups

    @property
    def waiting(self) -> int:
        """Deliveries queued for the next group."""
        return self._queue.qsize()

    def store(self, delivery: Delivery, payload_json: str) -> inbox.Stored:
        """Store one delivery durably; returns once committed. Raises what storing it raised."""
        if self._thread is None:
            self._start()
        slot = _Slot(delivery, payload_json)
        self._queue.put(slot)
        slot.done.acquire()  # released by the writer once the group holding this delivery is written
        if slot.error is not None:
            raise slot.error
        return slot.stored

    def _start(self) -> None:
        # On first use: in the process that serves requests, after gunicorn forked it.
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tds-group-commit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        take = self._queue.get_nowait
        while True:
            group = [self._queue.get()]
            try:
                while len(group) < self.max_group:
                    group.append(take())
            except queue.Empty:
                pass
            self.writing = True
            try:
                self._write_group(group)
            except BaseException:  # the thread must live on: each request of the group has its error
                log.exception("writing a group of %d failed", len(group))
            finally:
                self.writing = False

    def _write_group(self, group: list[_Slot]) -> None:
        """Write one group, answer its requests, hand its new items to the outbox."""
        will_dispatch = self.dispatcher.available
        try:
            self._write(group, will_dispatch)
            _count(group)
        finally:
            for slot in group:
                if slot.error is None and slot.stored is None:
                    slot.error = RuntimeError("the group holding this delivery was not written")
                slot.done.release()
        if will_dispatch:
            # After the requests are woken: they answer while the outbox takes these.
            new = [(s.stored.item_id, s.delivery.spec.name) for s in group if s.stored and not s.stored.duplicate]
            if new:
                self.outbox.add(new)

    def _store(self, deliveries, will_dispatch: bool) -> list[inbox.Stored]:
        """Store on the writer's connection, kept from one group to the next: checking a connection
        out of the pool and back for every group is work on the writer thread, through which every
        webhook of the process passes. After any error it is given up, so the
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
