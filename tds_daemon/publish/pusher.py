"""Pushing the outbox to one subscriber: each event by HTTP POST, in id order, at least once.

The subscriber's row in ``tds_event_subscribers`` holds its cursor (the last event it has had, or that was
filtered out or given up on) and the delivery being retried. A failed delivery is tried again after an
exponential backoff with jitter; an event that still fails once it is older than ``give_up_s`` (three days)
goes, with every other event that old, to the subscriber's dead letters, from which ``replay`` sends them
again. The cursor is written after each batch: a crash between a delivery and its record sends that event
again, which the ``webhook-id`` header lets the consumer recognise.

A pusher reads the outbox and posts; it never touches the tables that intake and apply write, so a slow
or dead subscriber slows nothing but its own pushes.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable

import httpx
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine

from tds_daemon import jsoncodec, metrics, tls
from tds_daemon.oneline import described
from tds_daemon.publish import feed, signing
from tds_daemon.store.schema import event_dead_letters, event_subscribers, events
from tds_daemon.subscribers import Subscriber

log = logging.getLogger(__name__)

BATCH = 100
GIVE_UP_S = 3 * 24 * 3600
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 3600.0
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class DeliveryFailed(Exception):
    """The subscriber did not take an event (no answer in time, or not a 2xx)."""


def backoff_s(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential in the attempts made, capped, with jitter so that retries of many events spread out."""
    ceiling = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** max(0, attempts - 1))
    return ceiling * (0.5 + rng() / 2)


class Pusher:
    """One subscriber's pushes. ``step`` does what is due now and says how long to wait before the next."""

    def __init__(self, engine: Engine, subscriber: Subscriber, *, http: httpx.Client | None = None,
                 give_up_s: float = GIVE_UP_S, clock: Callable[[], float] = time.time,
                 rng: Callable[[], float] = random.random, before_post: Callable[[], None] = lambda: None):
        """``before_post`` runs before each POST and raises to stop the step there (the runner's check that
        this process still holds the subscriber's lock); what was delivered until then is recorded."""
        self.engine, self.sub, self.before_post = engine, subscriber, before_post
        self.http = http or httpx.Client(timeout=TIMEOUT, follow_redirects=False, verify=tls.context())
        self.give_up_s, self.clock, self.rng = give_up_s, clock, rng
        self.delivered = metrics.events_delivered.labels(subscriber.label)
        self.failed = metrics.events_failed.labels(subscriber.label)

    def close(self) -> None:
        self.http.close()

    def step(self) -> float:
        """Deliver what is due (replays first, then new events); seconds until more is due (0: at once)."""
        state = self._state()
        now = self._now()
        if state.next_attempt_at is not None and state.next_attempt_at > now:
            return (state.next_attempt_at - now).total_seconds()
        try:
            if self._replay():
                return 0.0
            return self._push(state.cursor)
        except DeliveryFailed as e:
            return self._failed(state.attempts, str(e))

    # -- new events
    def _push(self, cursor: int) -> float:
        with self.engine.connect() as conn:
            # The horizon first: every event up to it is visible, so a batch shorter than BATCH holds every
            # event up to it that this subscriber takes, and the cursor may pass the rest. Read the other way
            # round, an event committed in between would be passed over.
            newest = feed.horizon(conn)
            if newest is None or newest <= cursor:
                return 1.0
            batch = feed.rows(conn, cursor, BATCH, types=self.sub.types, entities=self.sub.entities, upto=newest)
        scanned = newest if len(batch) < BATCH else batch[-1].id
        done = cursor
        try:
            for row in batch:
                try:
                    self._post(feed.as_json(row))
                except DeliveryFailed:
                    if (self._now() - row.created_at).total_seconds() <= self.give_up_s:
                        raise
                    self._give_up(done)
                    return 0.0  # what is younger is tried at once
                done = row.id
            done = scanned  # and the events this subscriber does not take
        finally:
            if done != cursor:
                self._advance(done, delivered=bool(batch))
        return 0.0 if len(batch) == BATCH else 1.0

    def _post(self, event: dict) -> None:
        self.before_post()
        body = jsoncodec.dumpb(event)
        headers = signing.headers(self.sub.secret, str(event["id"]), int(self.clock()), body)
        headers["content-type"] = "application/json"
        try:
            r = self.http.post(self.sub.url, content=body, headers=headers)
        except httpx.HTTPError as e:
            self.failed.inc()
            raise DeliveryFailed(f"no answer: {described(e)}") from None
        if not 200 <= r.status_code < 300:
            self.failed.inc()
            raise DeliveryFailed(f"HTTP {r.status_code}")
        self.delivered.inc()

    # -- bookkeeping
    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    def _state(self):
        """The subscriber's row; a subscriber seen for the first time starts after the newest event."""
        mine = select(event_subscribers).where(event_subscribers.c.url == self.sub.url)
        with self.engine.begin() as conn:
            state = conn.execute(mine).one_or_none()
            if state is None:
                conn.execute(pg_insert(event_subscribers).values(url=self.sub.url, cursor=feed.newest(conn))
                             .on_conflict_do_nothing(index_elements=[event_subscribers.c.url]))
                state = conn.execute(mine).one()
            return state

    def _advance(self, cursor: int, *, delivered: bool) -> None:
        """The cursor moves up to ``cursor`` (never back) and any failure is cleared."""
        values = {"cursor": func.greatest(event_subscribers.c.cursor, cursor), "attempts": 0, "failing_since": None,
                  "next_attempt_at": None, "last_error": None}
        if delivered:
            values["delivered_at"] = self._now()
        with self.engine.begin() as conn:
            conn.execute(update(event_subscribers).where(event_subscribers.c.url == self.sub.url).values(**values))

    def _failed(self, attempts: int, error: str) -> float:
        wait = backoff_s(attempts + 1, self.rng)
        now = self._now()
        with self.engine.begin() as conn:
            conn.execute(update(event_subscribers).where(event_subscribers.c.url == self.sub.url).values(
                attempts=attempts + 1, last_error=error, next_attempt_at=now + dt.timedelta(seconds=wait),
                failing_since=func.coalesce(event_subscribers.c.failing_since, now)))
        log.warning("events: push to %s failed (attempt %d): %s; next try in %.0f s", self.sub.label, attempts + 1,
                    error, wait)
        return wait

    def _give_up(self, cursor: int) -> None:
        """Every event after ``cursor`` older than the give-up age goes to the dead letters; the cursor passes them."""
        cutoff = self._now() - dt.timedelta(seconds=self.give_up_s)
        with self.engine.begin() as conn:
            state = conn.execute(select(event_subscribers).where(event_subscribers.c.url == self.sub.url)
                                 .with_for_update()).one()
            old = select(events.c.id).where(events.c.id > cursor, events.c.created_at < cutoff,
                                            *feed.matching(self.sub.types, self.sub.entities))
            ids = conn.execute(old.order_by(events.c.id)).scalars().all()
            if not ids:
                return
            conn.execute(pg_insert(event_dead_letters).values([
                {"url": self.sub.url, "event_id": i, "attempts": state.attempts + 1,
                 "first_failed_at": state.failing_since or self._now(), "last_error": state.last_error or "failed"}
                for i in ids]).on_conflict_do_nothing())
            conn.execute(update(event_subscribers).where(event_subscribers.c.url == self.sub.url)
                         .values(cursor=ids[-1], attempts=0, failing_since=None, next_attempt_at=None))
        log.error("events: %s has not taken %d events for %.0f hours; they are in its dead letters "
                  "(tds events replay)", self.sub.label, len(ids), self.give_up_s / 3600)

    # -- dead letters asked for again
    def _replay(self) -> bool:
        """Send the dead letters an operator asked to replay; True if there were any (all taken)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(event_dead_letters.c.id, events).join(events, events.c.id == event_dead_letters.c.event_id)
                .where(event_dead_letters.c.url == self.sub.url, event_dead_letters.c.replay_requested_at.isnot(None))
                .order_by(events.c.id).limit(BATCH)).all()
        for row in rows:
            self._post(feed.as_json(row))
            with self.engine.begin() as conn:
                conn.execute(delete(event_dead_letters).where(event_dead_letters.c.id == row[0]))
        if rows:
            self._advance(0, delivered=True)  # clears a pending backoff; the cursor stays
        return bool(rows)


def replay(engine: Engine, url: str | None = None, event_ids: list[int] | None = None) -> int:
    """Ask for dead letters to be pushed again (all of a subscriber's, or these events'); how many."""
    where = [event_dead_letters.c.replay_requested_at.is_(None)]
    if url:
        where.append(event_dead_letters.c.url == url)
    if event_ids:
        where.append(event_dead_letters.c.event_id.in_(event_ids))
    with engine.begin() as conn:
        return conn.execute(update(event_dead_letters).where(and_(*where))
                            .values(replay_requested_at=func.now())).rowcount


def dead_letters(engine: Engine, url: str | None = None, limit: int = 100) -> list[dict]:
    q = select(event_dead_letters).order_by(event_dead_letters.c.id).limit(limit)
    if url:
        q = q.where(event_dead_letters.c.url == url)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]
