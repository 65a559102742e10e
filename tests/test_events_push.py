"""Pushing events to a subscriber: signed as Standard Webhooks say, in order, at least once, retried with
backoff, given up to the dead letters after three days, replayed on request.

Real PostgreSQL and a real HTTP subscriber on a local port; the pusher's clock is the test's, so that
backoffs and three days pass without waiting."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from sqlalchemy import select, text
from standardwebhooks import Webhook
from support import wait_until
from support.subscriber import Subscriber as Consumer
from support.zoho_objects import make_object

from tds_daemon import entities
from tds_daemon.apply import events, upsert
from tds_daemon.config import load
from tds_daemon.publish import pusher, runner
from tds_daemon.store.db import make_engine
from tds_daemon.store.schema import event_subscribers
from tds_daemon.subscribers import Subscriber

SECRET = "whsec_" + base64.b64encode(b"a key of thirty-two bytes, exact").decode()


class Clock:
    def __init__(self):
        self.t = dt.datetime.now(dt.UTC).timestamp()

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def consumer():
    c = Consumer()
    yield c
    c.close()


def write(engine, n: int, entity: str = "product") -> list[str]:
    spec = entities.get(entity)
    objs = [make_object(entity) for _ in range(n)]
    with engine.begin() as conn:
        upsert.apply(conn, spec, "zoho", [upsert.Change(o, dt.datetime.now(dt.UTC)) for o in objs], source="webhook")
    return [o[spec.id_field] for o in objs]


def started(engine, consumer, **kw) -> tuple[Clock, pusher.Pusher]:
    """A pusher on the test's clock that has taken its first step: a new subscriber starts at the newest
    event, so what is written after is its."""
    clock = Clock()
    sub = Subscriber(url=consumer.url, secret=SECRET, **kw)
    p = pusher.Pusher(engine, sub, clock=clock, rng=lambda: 1.0)
    p.step()
    return clock, p


def drain(p: pusher.Pusher, steps: int = 20) -> float:
    for _ in range(steps):
        wait = p.step()
        if wait > 0:
            return wait
    raise AssertionError("the pusher never became idle")


def test_pushes_are_signed_as_standard_webhooks_and_in_order(clean_db, consumer):
    _, p = started(clean_db, consumer)
    ids = write(clean_db, 3)
    assert drain(p) > 0
    assert [json.loads(b)["data"]["zoho_id"] for _, b in consumer.pushes] == ids
    for headers, body in consumer.pushes:
        verified = Webhook(SECRET).verify(body, headers)
        assert verified["type"] == events.ENTITY_SYNCED and verified["data"]["action"] == "created"
    sent = [int(h["webhook-id"]) for h, _ in consumer.pushes]
    assert sent == sorted(sent)
    write(clean_db, 1)
    drain(p)
    assert len(consumer.pushes) == 4  # nothing sent twice


def test_a_subscriber_down_for_a_while_gets_everything_after(clean_db, consumer):
    clock, p = started(clean_db, consumer)
    consumer.status = 503
    ids = write(clean_db, 5)
    waits = []
    for _ in range(4):
        waits.append(p.step())
        assert p.step() == pytest.approx(waits[-1], abs=1)  # not due yet: nothing is tried
        clock.t += waits[-1]
    assert waits == sorted(waits) and waits[-1] > waits[0]  # the backoff grows
    with clean_db.connect() as c:
        state = c.execute(select(event_subscribers)).one()
    assert state.attempts == 4 and "503" in state.last_error
    consumer.status = 200
    drain(p)
    assert [json.loads(b)["data"]["zoho_id"] for _, b in consumer.pushes] == ids


def test_after_three_days_the_events_go_to_the_dead_letters_and_replay_sends_them(clean_db, consumer):
    clock, p = started(clean_db, consumer)
    consumer.status = 500
    ids = write(clean_db, 3)
    p.step()
    clock.t += 3 * 24 * 3600 + 60
    p.step()  # the head fails again, now three days old: all that old are given up
    dead = pusher.dead_letters(clean_db, consumer.url)
    assert len(dead) == 3 and all("500" in d["last_error"] for d in dead)
    consumer.status = 204
    later = write(clean_db, 1)
    drain(p)
    assert [json.loads(b)["data"]["zoho_id"] for _, b in consumer.pushes] == later
    assert pusher.replay(clean_db, consumer.url) == 3
    drain(p)
    assert [json.loads(b)["data"]["zoho_id"] for _, b in consumer.pushes] == later + ids
    assert pusher.dead_letters(clean_db, consumer.url) == []


def test_filters_send_only_the_types_and_entities_asked_for(clean_db, consumer):
    _, p = started(clean_db, consumer, entities=("customer",))
    write(clean_db, 2, "product")
    wanted = write(clean_db, 1, "customer")
    drain(p)
    assert [json.loads(b)["data"]["zoho_id"] for _, b in consumer.pushes] == wanted
    with clean_db.connect() as c:
        cursor = c.execute(select(event_subscribers.c.cursor)).scalar_one()
    assert cursor == 3  # stepped over what it does not take


def test_an_event_committed_while_a_batch_is_read_is_not_passed_over(clean_db, consumer, monkeypatch):
    """A crash-at-a-line kind of race, made exact: another transaction commits an event just after the pusher
    has read its batch. The cursor must not move past it."""
    _, p = started(clean_db, consumer)
    first = write(clean_db, 1)
    real_rows, late = pusher.feed.rows, []

    def rows_then_a_commit(*args, **kw):
        found = real_rows(*args, **kw)
        if not late:
            late.extend(write(clean_db, 1))
        return found

    monkeypatch.setattr(pusher.feed, "rows", rows_then_a_commit)
    drain(p)
    drain(p)  # the next step, which its commit's notification would wake
    assert [json.loads(b)["data"]["zoho_id"] for _, b in consumer.pushes] == first + late


def lock_holder(engine, url: str) -> tuple[str, int] | None:
    """The application name and pid of the connection holding ``url``'s push lock in this database, if any."""
    key = runner.lock_key(url)
    with engine.connect() as c:
        return c.execute(text(
            "SELECT a.application_name, l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
            {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).one_or_none()


def test_a_pusher_whose_lock_connection_drops_stops_until_it_holds_the_lock_again(clean_db, consumer, pg_url,
                                                                                   caplog):
    """Two publishers (two daemons' worth: an engine each) on one subscriber: one pushes. When PostgreSQL
    terminates the holder's lock connection the lock is free for another daemon (the test takes it, as one
    would) and the first posts nothing more; once the lock is free again one of the two takes it and pushes
    on, and when that one stops the other takes over. No event is posted twice throughout."""
    config = load(environ={"TDS_DATABASE_URL": pg_url})
    engines = {n: make_engine(config, pool_size=3, application_name=f"tds-events-{n}") for n in ("a", "b")}
    sub = Subscriber(url=consumer.url, secret=SECRET)
    publishers = {n: runner.Publisher(e, [sub], retry_s=0.2) for n, e in engines.items()}
    written: list[str] = []

    def holder() -> str | None:
        found = lock_holder(clean_db, sub.url)
        return found and found[0].removeprefix("tds-events-")

    def started() -> bool:
        with clean_db.connect() as c:
            return c.execute(select(event_subscribers)).first() is not None

    def pushed() -> list[str]:
        with consumer.lock:
            return [json.loads(b)["data"]["zoho_id"] for _, b in consumer.pushes]

    def write_and_see_them_pushed(n: int) -> None:
        written.extend(write(clean_db, n))
        wait_until(lambda: len(pushed()) >= len(written), 20, message=f"{len(written)} events pushed")
        assert pushed() == written  # each once, in order

    try:
        publishers["a"].start()
        wait_until(lambda: holder() == "a", 10, message="a holds the lock")
        wait_until(started, 10, message="a's first step")
        publishers["b"].start()
        write_and_see_them_pushed(3)
        assert holder() == "a"
        assert publishers["b"].stop(10)  # until the lock is taken below, a is the only one that might want it

        other = clean_db.connect()  # another daemon, as far as the lock can tell
        try:
            with clean_db.connect() as c:  # what a PostgreSQL restart or a network cut does to a's lock
                assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": lock_holder(clean_db, sub.url)[1]}
                                 ).scalar()
            wait_until(lambda: other.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                             {"k": runner.lock_key(sub.url)}).scalar(), 10, message="the lock freed")
            other.commit()
            written.extend(write(clean_db, 3))
            wait_until(lambda: "connection holding its lock dropped" in caplog.text or len(pushed()) > 3, 10,
                       message="a noticed before posting")
            assert len(pushed()) == 3, "posted without the lock"  # b is stopped; a noticed and posted none
            publishers["b"] = runner.Publisher(engines["b"], [sub], retry_s=0.2)
            publishers["b"].start()
        finally:
            other.close()  # the lock is free again
        wait_until(lambda: len(pushed()) == len(written), 20, message="the three pushed by a lock holder")
        assert pushed() == written
        first = holder()
        assert first in ("a", "b")

        assert publishers[first].stop(10)
        second = "b" if first == "a" else "a"
        wait_until(lambda: holder() == second, 10, message=f"{second} took over")
        write_and_see_them_pushed(2)
    finally:
        for p in publishers.values():
            p.stop(10)
        for e in engines.values():
            e.dispose()
    ids = [int(h["webhook-id"]) for h, _ in consumer.pushes]
    assert ids == sorted(set(ids))
