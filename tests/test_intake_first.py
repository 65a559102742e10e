"""Intake first: while the API is saturated the workers hold back new items, for a bounded time.

The API side (``tds_daemon.intake.pressure``) is tested with a clock of the test's own and with real
concurrent requests; the worker side against a real daemon, with the Redis key set by the test.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from dramatiq import Message
from support import WEBHOOK_TOKEN, all_applied, holds_for, start_daemon, wait_until, web
from support.zoho_objects import default_payload, make_object

from actors.middleware.intake_first import POLL_S, IntakeFirst
from tds_daemon import entities
from tds_daemon.apply.broker import make_broker
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.config import load
from tds_daemon.intake import inbox, webhook
from tds_daemon.intake.pressure import KEY, Announcer, Pressure

HOLD_S = 8


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def answer(p: Pressure, n: int) -> None:
    """``n`` requests answered at once: counted as answered, no time in flight."""
    for _ in range(n):
        p.enter()
        p.leave()


def spend(p: Pressure, clock: Clock, seconds: float, answered: int) -> None:
    """``seconds`` pass in steps of 1/8 s (exact in binary), with ``answered`` requests spread over them."""
    steps = round(seconds * 8)
    for i in range(steps):
        answer(p, answered * (i + 1) // steps - answered * i // steps)
        clock.now += 0.125


def test_pressure_is_the_mean_number_of_requests_in_flight_over_a_window():
    clock = Clock()
    p = Pressure(8, window_s=0.5, threshold=0.75, sustain_s=0, clock=clock)
    for _ in range(5):
        p.enter()
    spend(p, clock, 0.5, 20)
    assert not p.saturated and p.last_mean == pytest.approx(5)  # 5 of 8 threads: below 6
    p.enter()
    spend(p, clock, 0.5, 20)
    assert p.saturated and p.last_mean == pytest.approx(6)
    for _ in range(6):
        p.leave()
    spend(p, clock, 0.25, 0)  # the window is not over: the last verdict holds
    assert p.saturated
    spend(p, clock, 0.25, 0)
    assert not p.saturated and p.last_mean == 0


def test_a_stall_and_its_catch_up_are_not_saturation_a_sustained_burst_is():
    """A stall fills every thread for as long as it lasts, and its catch-up for a moment; holding the
    workers then only delays what arrives after it. Saturation is the threads full *and* requests
    answered, in every window of ``sustain_s``."""
    clock = Clock()
    p = Pressure(8, window_s=0.5, sustain_s=1.5, clock=clock)

    def window(in_flight: int, answered: int) -> bool:
        """A window with ``in_flight`` requests in the handler throughout and ``answered`` answered."""
        for _ in range(in_flight):
            p.enter()
        spend(p, clock, 0.5, answered)
        saturated = p.saturated
        for _ in range(in_flight):
            p.leave()  # at the start of the next window: what it answers first
        return saturated

    def stall(seconds: float, looked_at_every: float | None) -> list[bool]:
        """Every thread stuck in the handler, nothing answered; the verdicts of whoever looked."""
        for _ in range(8):
            p.enter()
        verdicts = []
        step = looked_at_every or seconds
        for _ in range(round(seconds / step)):
            clock.now += step
            if looked_at_every:
                verdicts.append(p.saturated)
        for _ in range(8):
            p.leave()
        return verdicts

    # Before: 300/s shared by two processes, about one request in the handler.
    assert not window(1, 75)
    # A 2 s stall, the verdict read every quarter second; then the catch-up: the threads full again for
    # a window or two while the backlog is answered, then back to normal.
    assert stall(2.0, 0.25) + [window(8, 600), window(8, 600), window(1, 75)] == [False] * 11
    # The same where nobody looks during the stall (no request can enter, none is answered): the
    # window that began before it ends after it, answers from its first moments and all.
    answer(p, 50)
    assert stall(2.0, None) + [window(8, 600), window(8, 600), window(1, 75)] == [False] * 3
    # A burst: the threads at the limit (4 of 8), hundreds answered, window after window.
    # Saturation from 1.5 s on, not before.
    verdicts = [window(5, 700) for _ in range(6)]
    assert verdicts == [False, False, True, True, True, True]
    # One window under the limit ends it; the next run must last sustain_s again.
    assert not window(1, 75)
    assert [window(8, 700) for _ in range(3)] == [False, False, True]


@pytest.fixture(scope="module")
def hold_env(migrated, redis_namespace):
    return {**migrated, "TDS_REDIS_NAMESPACE": f"{redis_namespace}_hold_{uuid.uuid4().hex[:8]}",
            "TDS_WORKERS_REDISPATCH_AFTER_S": "60", "TDS_WORKERS_INTAKE_FIRST_S": str(HOLD_S)}


@pytest.fixture(scope="module")
def daemon(module_processes, hold_env):
    d = start_daemon(module_processes, hold_env)
    yield d
    d.http.close()


@pytest.fixture
def saturated(hold_env):
    """Keeps the key an API process sets at saturation, until the test calls ``stop``."""
    client = redis.Redis.from_url(hold_env["TDS_REDIS_URL"])
    key = KEY.format(namespace=hold_env["TDS_REDIS_NAMESPACE"])
    stop = threading.Event()

    def keep():
        while not stop.is_set():
            client.set(key, "1", px=1000)
            stop.wait(0.2)

    thread = threading.Thread(target=keep, daemon=True)
    thread.start()
    wait_until(lambda: client.exists(key), 5, message="the saturation key set")
    # A worker process reads the key at most every POLL_S and keeps its verdict meanwhile: a read just
    # before the key was set (the previous test's last apply) would let the next message through. With
    # wake-up calls a message reaches a worker within milliseconds, so that window was hit.
    set_at = time.monotonic()
    wait_until(lambda: time.monotonic() - set_at > 2 * POLL_S, 1, message="every cached verdict stale")
    yield stop
    stop.set()
    thread.join(5)
    client.delete(key)
    client.close()


def post(daemon) -> None:
    r = daemon.post("items", default_payload("product", make_object("product")))
    assert r.status_code == 202, r.text


def not_applied_for(engine, seconds: float) -> bool:
    return holds_for(lambda: not all_applied(engine, 1), seconds, interval=0.1)


def test_new_items_wait_while_the_api_is_saturated_and_go_when_it_is_not(daemon, clean_db, saturated):
    post(daemon)
    assert not_applied_for(clean_db, 3), "applied while the API said it was saturated"
    saturated.set()  # the key expires within a second
    wait_until(lambda: all_applied(clean_db, 1), 10, message="the held item applied once the API was not saturated")


def test_the_hold_ends_after_intake_first_s_even_if_the_api_stays_saturated(daemon, clean_db, saturated):
    t0 = time.monotonic()
    post(daemon)
    wait_until(lambda: all_applied(clean_db, 1), HOLD_S + 15, message="the item applied at the end of its hold")
    assert time.monotonic() - t0 >= HOLD_S - 1.5, "not held"


def test_items_sent_by_anyone_but_intake_are_never_held(daemon, clean_db, hold_env, saturated):
    spec = entities.get("product")
    body = default_payload("product", make_object("product"))
    [stored] = inbox.store_many(clean_db, [(webhook.read(spec, body), webhook.dump_body(body))], will_dispatch=True)
    dispatcher = Dispatcher(make_broker(load(environ=hold_env)), origin="recovery")
    try:
        assert dispatcher.send_batch(spec, [stored.item_id])
        wait_until(lambda: all_applied(clean_db, 1), HOLD_S - 3, message="the recovery's message applied at once")
    finally:
        dispatcher.broker.client.close()


def test_a_saturated_api_says_so(daemon, clean_db, hold_env):
    client = redis.Redis.from_url(hold_env["TDS_REDIS_URL"])
    key = KEY.format(namespace=hold_env["TDS_REDIS_NAMESPACE"])
    client.delete(key)
    stop = threading.Event()

    def hammer():
        with web.Client(base_url=daemon.base_url, timeout=10,
                          headers={"X-TDS-Webhook-Token": WEBHOOK_TOKEN}) as http:
            while not stop.is_set():
                http.post("/api/tds/webhooks/items", json=default_payload("product", make_object("product")))

    try:
        # Three connections per request thread of the API (2 processes × 8 threads): requests queue.
        with ThreadPoolExecutor(48) as pool:
            for _ in range(48):
                pool.submit(hammer)
            wait_until(lambda: client.exists(key), 30, interval=0.05, message="the saturated key set")
            stop.set()
        # And the operator is told why rows lag (once a minute at most).
        wait_until(lambda: "intake saturated" in daemon.output(), 10, message="the log line")
        # Once the load is gone, the key expires by itself.
        wait_until(lambda: not client.exists(key), 10, message="the key gone after the load")
    finally:
        stop.set()
        client.close()


def test_with_redis_out_of_reach_nothing_is_held(hold_env):
    """The key cannot be read: the worker holds nothing (and the API's announcer does not fail)."""
    down = load(environ={**hold_env, "TDS_REDIS_URL": "redis://127.0.0.1:9/0", "TDS_REDIS_SOCKET_TIMEOUT_S": "0.5"})
    broker = make_broker(down)
    message = Message(queue_name="tds.product", actor_name="apply_product", args=([1],), kwargs={},
                      options={"tds_origin": "intake"})
    t0 = time.monotonic()
    IntakeFirst(down.redis.namespace, HOLD_S).before_process_message(broker, message)
    assert time.monotonic() - t0 < HOLD_S / 2, "held although the key could not be read"
    clock = Clock()
    pressure = Pressure(1, window_s=0.5, sustain_s=0, clock=clock)
    pressure.enter()
    spend(pressure, clock, 0.5, 2)  # a whole window with its one thread in the handler
    assert pressure.saturated
    Announcer(pressure, broker.client, down.redis.namespace).tick()  # logs at DEBUG, raises nothing
