"""Pushing events to a subscriber: signed as Standard Webhooks say, in order, at least once, retried with
backoff, given up to the dead letters after three days, replayed on request.

Real PostgreSQL and a real HTTP subscriber on a local port; the pusher's clock is the test's, so that
backoffs and three days pass without waiting."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook
from support.subscriber import Subscriber as Consumer
from support.zoho_objects import make_object

from tds_daemon import entities
from tds_daemon.apply import events, upsert
from tds_daemon.publish import pusher
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
