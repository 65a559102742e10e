"""Circuit breakers: their Lua semantics on real Redis, the Zoho client against the simulator over real
HTTP, sync runs skipped while a breaker is open, and webhooks deferred (not failed) through a real
``tds run`` and applied after recovery with their retries intact.

Each test has a Redis namespace of its own, so no breaker state crosses tests.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
import uuid

import httpx
import pytest
import redis as redis_lib
from sqlalchemy import create_engine, text
from support import ADMIN_TOKEN, free_port, start_daemon, wait_until, web
from support.pull import Tds
from support.sim import ORG, Sim
from support.zoho_objects import default_payload, make_object

from tds_daemon import entities
from tds_daemon.config import load
from tds_daemon.guard import breakers
from tds_daemon.guard.breakers import Breaker, Breakers, Settings
from tds_daemon.pull.zoho import ZohoClient, ZohoError, ZohoUnavailable
from tds_daemon.pull.zoho.errors import ZohoBreakerOpen

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FAST = Settings(failure_rate=50, window_s=60, min_calls=4, open_s=0.3, half_open_calls=3)


@pytest.fixture
def rds(redis_url):
    client = redis_lib.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=5)
    yield client
    client.close()


@pytest.fixture
def ns(redis_namespace, rds):
    name = f"{redis_namespace}_bk_{uuid.uuid4().hex[:8]}"
    yield name
    for key in rds.scan_iter(match=f"{name}:*", count=1000):
        rds.delete(key)


def breaker(rds, ns, settings: Settings = FAST, name: str = "entity:product", **kw) -> Breaker:
    return Breaker(rds, ns, name, settings, **kw)


def replace(settings: Settings, **changes) -> Settings:
    return Settings(**{**settings.__dict__, **changes})


def record(b: Breaker, *results: bool) -> None:
    for ok in results:
        assert b.allow()
        b.record(ok)


def transitions(caplog, to: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "tds_daemon.guard.breakers" and re.search(rf"-> {to}\b", r.getMessage())]


# ------------------------------------------------------------------------------------ the Lua semantics

def test_names_come_from_the_registry():
    assert "entity:product" in breakers.NAMES and "entity:branch" in breakers.NAMES
    assert {n for n in breakers.NAMES if n.startswith("zoho:")} == {"zoho:books", "zoho:inventory"}
    assert len(breakers.NAMES) == len(entities.ENTITIES) + 2


def test_opens_only_after_min_calls_and_at_the_failure_rate(rds, ns, caplog):
    caplog.set_level(logging.INFO, logger="tds_daemon.guard.breakers")
    b = breaker(rds, ns)
    record(b, False, False, False)  # 100 % failed, but 3 calls < min_calls 4
    st = b.status()
    assert (st.state, st.calls, st.failures, st.failure_rate) == ("closed", 3, 3, 100.0)
    record(b, True)  # 4 calls, 75 % failed
    st = b.status()
    assert st.state == "open" and st.reason == "failure rate 75% of 4 calls", st
    assert st.retry_at - st.opened_at == dt.timedelta(milliseconds=300)
    assert len(transitions(caplog, "open")) == 1

    # Below the rate it stays closed however many calls; exactly at the rate it opens.
    below = breaker(rds, ns, name="entity:customer")
    record(below, *([True, True, False] * 10))  # 33 %
    assert below.status().state == "closed" and below.status().calls == 30
    at = breaker(rds, ns, name="entity:vendor")
    record(at, True, False, True, False)
    assert at.status().state == "open"


def test_open_refuses_then_exactly_half_open_calls_trials(rds, ns):
    short = breaker(rds, ns)  # trips for 0.3 s
    patient = breaker(rds, ns, replace(FAST, open_s=60))  # same breaker; its trial round lasts 60 s
    short.trip("test")
    d = patient.check()
    assert not d and d.state == "open" and d.retry_at is not None
    assert not patient.allow() and not short.allow()
    wait_until(patient.allow, 10, interval=0.02, message="the first trial after open_s")
    assert patient.status().state == "half_open"
    assert [patient.allow() for _ in range(4)] == [True, True, False, False], "three trials in all"
    st = patient.status()
    assert (st.trials_given, st.trials_ok, st.trials_failed) == (3, 0, 0)

    # A trial that made no call gives its permit back; permits nobody answered are given again
    # after open_s (their callers died).
    patient.release()
    assert patient.allow() and not patient.allow()
    wait_until(short.allow, 10, interval=0.02, message="a new round of trials")
    assert short.status().state == "half_open"


def test_trials_close_or_reopen_on_their_failure_rate(rds, ns, caplog):
    caplog.set_level(logging.INFO, logger="tds_daemon.guard.breakers")

    def half_open(name: str) -> Breaker:
        b = breaker(rds, ns, name=name)
        b.trip("test")
        wait_until(b.allow, 10, interval=0.02, message=f"{name} half-open")
        return b

    # 3 trials at 50 %: two successes close it (even a third failure would leave 33 %) ...
    b = half_open("entity:invoice")
    b.record(True)
    assert b.status().state == "half_open"
    b.record(False)
    assert b.status().state == "half_open"
    b.record(True)
    st = b.status()
    assert st.state == "closed" and st.calls == 0 and st.reason is None, st
    assert b.allow()
    # ... two failures re-open it for another open_s.
    b = half_open("entity:bill")
    b.record(False)
    b.record(False)
    st = b.status()
    assert st.state == "open" and st.reason == "failure rate 100% of 2 trial calls", st
    assert not b.allow()

    # One trial: its success closes, its failure re-opens.
    one = replace(FAST, half_open_calls=1)
    b = breaker(rds, ns, one, name="entity:user")
    b.trip("test")
    wait_until(b.allow, 10, interval=0.02, message="half-open")
    assert not b.allow()
    b.record(False)
    assert b.status().state == "open"
    wait_until(b.allow, 10, interval=0.02, message="half-open again")
    b.record(True)
    assert b.status().state == "closed"
    assert len(transitions(caplog, "closed")) == 2 and len(transitions(caplog, "open")) == 5  # 3 trips, 2 re-opens


def test_the_window_slides(rds, ns):
    b = breaker(rds, ns, replace(FAST, window_s=1, min_calls=2))
    record(b, False)
    assert b.status().calls == 1
    wait_until(lambda: b.status().calls == 0, 10, interval=0.1, message="the failure to leave the window")
    record(b, True)  # alone in the window: 1 call, 0 failures
    st = b.status()
    assert (st.state, st.calls, st.failures) == ("closed", 1, 0)
    ttl = rds.pttl(b.window_key)
    assert 0 < ttl <= 2000, "the window's key expires one second after the window"


def test_reset_and_trip(rds, ns, caplog):
    caplog.set_level(logging.INFO, logger="tds_daemon.guard.breakers")
    b = breaker(rds, ns, replace(FAST, open_s=60))
    record(b, False, False)
    assert b.reset() == "closed"
    assert b.status().calls == 0, "a reset empties the window"
    assert b.trip("maintenance") == "closed"
    assert b.status().reason == "maintenance" and not b.allow()
    assert b.reset() == "open"
    assert b.allow() and b.status().state == "closed"
    assert transitions(caplog, "closed") == ["breaker entity:product: open -> closed (reset by an operator)"]


def test_two_processes_share_one_breaker_and_only_one_reports_a_transition(rds, ns, redis_url, caplog):
    caplog.set_level(logging.INFO, logger="tds_daemon.guard.breakers")
    clients = [redis_lib.Redis.from_url(redis_url, socket_timeout=5) for _ in range(8)]
    try:
        many = [breaker(c, ns, replace(FAST, min_calls=8, open_s=60)) for c in clients]
        barrier = threading.Barrier(len(many))

        def fail(b: Breaker) -> None:
            barrier.wait()
            for _ in range(3):
                if b.allow():
                    b.record(False)

        threads = [threading.Thread(target=fail, args=(b,)) for b in many]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert all(not b.allow() for b in many), "every process sees it open"
        assert len(transitions(caplog, "open")) == 1, transitions(caplog, "open")
        # A second "process" resets it; the first sees it closed at once.
        many[1].reset()
        assert many[0].status().state == "closed" and many[0].allow()
    finally:
        for c in clients:
            c.close()


def test_redis_unreachable_fails_open(caplog):
    caplog.set_level(logging.INFO, logger="tds_daemon.guard.breakers")
    started = time.monotonic()
    config = load(environ={"TDS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "TDS_REDIS_SOCKET_TIMEOUT_S": "1"})
    dead = breakers.redis_for_breakers(config)
    b = Breaker(dead, "nowhere", "zoho:books", FAST)
    d = b.check()
    assert d and d.state == "closed"
    for _ in range(5):
        b.record(False)  # never raises
    b.release()
    assert b.allow()
    complaints = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(complaints) == 1, "logged, but not once per call"
    with pytest.raises(redis_lib.RedisError):
        b.status()  # the operators' side says it cannot know
    assert time.monotonic() - started < 5, "each call failed at once: no retries of its own"


def test_transitions_raise_and_resolve_the_alert(rds, ns, clean_db):
    def open_alerts():
        with clean_db.connect() as c:
            return c.execute(text("SELECT entity, severity, message, resolved_at FROM tds_alerts "
                                  "WHERE type = 'breaker_open' ORDER BY id")).mappings().all()

    settings = replace(FAST, min_calls=2, half_open_calls=1)
    entity = breaker(rds, ns, settings, alerts=clean_db)
    app = breaker(rds, ns, settings, name="zoho:inventory", alerts=clean_db)
    record(entity, False, False)
    record(app, False, False)
    rows = open_alerts()
    assert [(r["entity"], r["severity"]) for r in rows] == [("entity:product", "warning"),
                                                            ("zoho:inventory", "critical")]
    assert "entity:product opened (failure rate 100% of 2 calls" in rows[0]["message"]
    assert all(r["resolved_at"] is None for r in rows)
    wait_until(entity.allow, 10, interval=0.02, message="half-open")
    entity.record(True)
    rows = open_alerts()
    assert rows[0]["resolved_at"] is not None and rows[1]["resolved_at"] is None
    app.reset()
    assert all(r["resolved_at"] is not None for r in open_alerts())

    # An alert that cannot be written changes nothing for the calls.
    nowhere = create_engine(f"postgresql+psycopg2://127.0.0.1:{free_port()}/none",
                            connect_args={"connect_timeout": 2})
    b = breaker(rds, ns, settings, name="entity:branch", alerts=nowhere)
    record(b, False, False)
    assert b.status().state == "open" and not b.allow()
    nowhere.dispose()


# ------------------------------------------------------------------- the Zoho client (HTTP classification)

def daemon_config(ns, **env):
    return load(environ={"TDS_REDIS_NAMESPACE": ns, "TDS_ZOHO_CLIENT_ID": "c", "TDS_ZOHO_CLIENT_SECRET": "s",
                         "TDS_ZOHO_REFRESH_TOKEN": "r", "TDS_ZOHO_ORGANIZATION_ID": ORG,
                         "TDS_ZOHO_ACCOUNTS_URL": "http://zoho.test", "TDS_ZOHO_BOOKS_URL": "http://zoho.test/b",
                         **env})


def client_with(answer, rds, ns, **env) -> ZohoClient:
    """A Zoho client of ``daemon_config(ns, **env)`` whose token requests succeed and whose API requests
    ``answer(request)`` answers."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600, "api_domain": "x"})
        return answer(request)

    http = web.Client(transport=httpx.MockTransport(handler), timeout=5)
    return ZohoClient(daemon_config(ns, **env), rds, http=http)


def test_what_each_answer_tells_the_app_breaker(rds, ns):
    answers: list = []
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = client_with(handler, rds, ns, TDS_ZOHO_MAX_ATTEMPTS="1", TDS_BREAKERS_MIN_CALLS="100")
    b = client.breakers.app("books")
    ok = httpx.Response(200, json={"code": 0, "message": "success", "contacts": []})

    answers.append(ok)
    client.get("books", "/contacts")
    assert (b.status().calls, b.status().failures) == (1, 0)
    answers.append(httpx.Response(429, headers={"Retry-After": "0.5"}, json={"code": 44}))
    answers.append(ok)
    client.get("books", "/contacts")
    assert (b.status().calls, b.status().failures) == (2, 0), "a 429 is our own pace: not counted"
    answers.append(httpx.Response(400, json={"code": 2, "message": "Invalid value"}))
    with pytest.raises(ZohoError):
        client.get("books", "/contacts")
    answers.append(httpx.Response(404, json={"code": 1002, "message": "does not exist"}))
    with pytest.raises(ZohoError):
        client.get("books", "/contacts/1")
    assert (b.status().calls, b.status().failures) == (4, 0), "Zoho answered: available"
    answers.append(httpx.Response(500, json={"code": 1000, "message": "Internal error"}))
    with pytest.raises(ZohoUnavailable):
        client.get("books", "/contacts")
    answers.append(httpx.ConnectError("refused"))
    with pytest.raises(ZohoUnavailable):
        client.get("books", "/contacts")
    answers.append(httpx.ReadTimeout("slow"))
    with pytest.raises(ZohoUnavailable):
        client.get("books", "/contacts")
    assert (b.status().calls, b.status().failures) == (7, 3)
    assert not answers and len(sent) == 8, sent


def test_retries_stop_once_the_app_breaker_opens(rds, ns):
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(503, text="<html>down</html>")

    client = client_with(handler, rds, ns, TDS_ZOHO_MAX_ATTEMPTS="6", TDS_BREAKERS_MIN_CALLS="2",
                         TDS_BREAKERS_OPEN_S="60")
    with pytest.raises(ZohoBreakerOpen) as e:
        client.get("books", "/contacts")
    assert len(sent) == 2, "two failures opened it; the other four attempts were not made"
    assert re.search(r"circuit breaker zoho:books is open until \d\d:\d\d:\d\d UTC; no request sent for GET "
                     r"/contacts \(last error: GET /contacts: ", e.value.message), e.value.message
    assert e.value.breaker == "zoho:books" and e.value.transient


def test_a_breaker_opened_for_another_url_or_organization_leaves_the_configured_one_alone(rds, ns, caplog):
    """A one-off run with a mistyped URL (or another organization) moves a breaker of its own, same name."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "wrong.test" or request.url.params.get("organization_id") == "999":
            raise httpx.ConnectError("no such host")
        return httpx.Response(200, json={"code": 0, "message": "success", "contacts": []})

    fast = {"TDS_ZOHO_MAX_ATTEMPTS": "3", "TDS_BREAKERS_MIN_CALLS": "2", "TDS_BREAKERS_OPEN_S": "60"}
    daemon = client_with(handler, rds, ns, **fast)
    for wrong in ({"TDS_ZOHO_BOOKS_URL": "http://wrong.test/b"}, {"TDS_ZOHO_ORGANIZATION_ID": "999"}):
        one_off = client_with(handler, rds, ns, **fast, **wrong)
        with caplog.at_level(logging.WARNING, logger="tds_daemon.guard.breakers"), pytest.raises(ZohoBreakerOpen):
            one_off.get("books", "/contacts")
        theirs = one_off.breakers.app("books")
        assert theirs.name == "zoho:books" and theirs.state() == "open"
        assert daemon.breakers.app("books").state() == "closed"
        assert daemon.get("books", "/contacts")["code"] == 0, "the daemon's calls still go"
        assert [s.state for s in Breakers.from_config(daemon_config(ns, **fast), rds).statuses()
                if s.name == "zoho:books"] == ["closed"], "what the API and tds status show"
    opened = transitions(caplog, "open")
    assert "[http://wrong.test/b, organization " in opened[0] and "organization 999]" in opened[1], opened


def test_a_call_waits_for_the_verdict_of_trials_in_flight(rds, ns):
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json={"code": 0, "message": "success", "contacts": []})

    client = client_with(handler, rds, ns, TDS_BREAKERS_OPEN_S="60", TDS_BREAKERS_HALF_OPEN_CALLS="2")
    scope = client.breakers.scopes["books"]
    breaker(rds, ns, replace(FAST, open_s=0.05), name="zoho:books", scope=scope).trip("test")
    other = breaker(rds, ns, replace(FAST, open_s=60, half_open_calls=2), name="zoho:books",
                    scope=scope)  # another process
    wait_until(other.allow, 10, interval=0.02, message="half-open")
    assert other.allow() and not other.allow(), "both trials are out, in the other process"

    def trials_succeed() -> None:
        time.sleep(0.5)  # the other process's trial requests take a while
        other.record(True)
        other.record(True)

    t = threading.Thread(target=trials_succeed)
    t.start()
    client.get("books", "/contacts")  # waits for the verdict instead of failing at once
    t.join()
    assert sent == ["/b/contacts"] and other.status().state == "closed"


# ------------------------------------------------------------------------- Zoho simulator over real HTTP

def api_requests(sim: Sim, app: str) -> int:
    return sim.stats()["apps"][app]["requests"]


def test_zoho_failing_every_call_opens_the_breaker_then_a_trial_then_closed(sim, pull_env):
    pull_env.update(TDS_BREAKERS_MIN_CALLS="4", TDS_BREAKERS_OPEN_S="2", TDS_BREAKERS_HALF_OPEN_CALLS="1",
               TDS_ZOHO_MAX_ATTEMPTS="2")
    tds = Tds(pull_env)
    try:
        client = tds.client()
        b = client.breakers.app("inventory")
        client.get("inventory", "/items")  # one success in the window
        sim.faults(error_rate=1.0)

        def call() -> str:
            try:
                client.get("inventory", "/items")
                return "ok"
            except ZohoBreakerOpen:
                return "refused"
            except ZohoUnavailable:
                return "failed"

        outcomes = [call() for _ in range(3)]
        # 1 success + 3 failures = 75 % of 4 calls: open at the 4th call, within one get's retries.
        assert outcomes == ["failed", "refused", "refused"], outcomes
        st = b.status()
        assert st.state == "open" and st.reason == "failure rate 75% of 4 calls", st
        assert b.status().opened_at - st.opened_at == dt.timedelta(0)

        # While open: not one request reaches Zoho.
        sent = api_requests(sim, "inventory")
        assert sent == 4
        assert [call() for _ in range(5)] == ["refused"] * 5
        assert api_requests(sim, "inventory") == sent

        # After open_s: one trial (half_open_calls = 1) goes out; Zoho still fails, so open again.
        opened_at = st.opened_at
        wait_until(lambda: call() and api_requests(sim, "inventory") > sent, 15, interval=0.1,
                   message="the half-open trial")
        assert api_requests(sim, "inventory") == sent + 1, "exactly one trial"
        st = b.status()
        assert st.state == "open" and st.opened_at > opened_at, st

        # Zoho recovers: the next trial succeeds and closes the breaker; calls flow again.
        sim.faults(error_rate=0)
        wait_until(lambda: call() == "ok", 15, interval=0.1, message="a successful trial")
        assert b.status().state == "closed"
        assert [call() for _ in range(3)] == ["ok"] * 3
    finally:
        tds.close()


def test_sync_runs_skip_an_entity_whose_breaker_is_open(sim, pull_env, engine):
    pull_env.update(TDS_ZOHO_MAX_ATTEMPTS="2", TDS_BREAKERS_MIN_CALLS="100")
    tds = Tds(pull_env)
    try:
        client = tds.client()
        entity, books = client.breakers.entity("product"), client.breakers.app("books")
        entity.trip("test")
        before = api_requests(sim, "inventory")
        run = tds.sync("product", "full", client=client)
        assert run["status"] == "skipped" and run["finished_at"] is not None, run
        assert re.fullmatch(r"circuit breaker entity:product is open until \d\d:\d\d:\d\d UTC; run skipped",
                            run["error"]), run["error"]
        assert api_requests(sim, "inventory") == before, "nothing was asked of Zoho"
        entity.reset()
        assert tds.sync("product", "full", client=client)["status"] == "succeeded"

        # The app's breaker: every entity of the app is skipped, the other app's are not.
        books.trip("test")
        before = api_requests(sim, "books")
        run = tds.sync("customer", "full", client=client)
        assert run["status"] == "skipped", run
        assert "circuit breaker zoho:books is open until" in run["error"] and "run skipped" in run["error"], run
        assert api_requests(sim, "books") == before
        assert tds.sync("sales_order", "full", client=client)["status"] == "succeeded"
        books.reset()

        # Zoho failing during a sync counts against the entity's breaker, as pages fetched count for it.
        sim.faults(error_rate=1.0)
        run = tds.sync("invoice", "full", client=client)
        assert run["status"] == "failed", run
        st = client.breakers.entity("invoice").status()
        assert st.failures >= 1 and st.state == "closed", st
        assert client.breakers.entity("sales_order").status().calls >= 1
    finally:
        tds.close()


# ------------------------------------------------------------------------ webhooks through a real tds run

def items(engine, entity: str) -> list[dict]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(text(
            "SELECT id, status, attempt_count, error_code, error_message, next_attempt_at FROM tds_sync_queue "
            "WHERE entity_type = :e ORDER BY id"), {"e": entity}).mappings()]


def breaker_json(daemon, name: str) -> dict:
    r = daemon.http.get("/api/tds/circuit-breakers", headers=ADMIN)
    assert r.status_code == 200, r.text
    return next(b for b in r.json()["breakers"] if b["name"] == name)


def metric(body: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    m = re.search(rf"^{re.escape(name)}\{{{re.escape(want)}\}} (\S+)$", body, re.M)
    return float(m.group(1)) if m else None


@pytest.mark.timeout(150)
def test_webhooks_for_an_open_breaker_are_deferred_then_applied_with_their_retries(
        processes, clean_db, migrated, rds, ns):
    daemon = start_daemon(processes, migrated, TDS_REDIS_NAMESPACE=ns, TDS_BREAKERS_OPEN_S="3",
                          TDS_BREAKERS_HALF_OPEN_CALLS="2", TDS_WORKERS_MAX_ATTEMPTS="3")
    product = breaker(rds, ns, replace(FAST, open_s=10), alerts=clean_db)
    product.trip("opened by the test")

    listed = breaker_json(daemon, "entity:product")
    assert listed["state"] == "open" and listed["retry_at"] and listed["reason"] == "opened by the test", listed
    assert breaker_json(daemon, "zoho:books")["state"] == "closed"
    body = daemon.http.get("/metrics").text
    assert metric(body, "tds_breaker_state", breaker="entity:product") == 2
    assert metric(body, "tds_breaker_state", breaker="entity:customer") == 0
    assert metric(body, "tds_breaker_state", breaker="zoho:inventory") == 0

    for _ in range(4):
        assert daemon.post("product", default_payload("product", make_object("product"))).status_code == 202
    assert daemon.post("customer", default_payload("customer", make_object("customer"))).status_code == 202

    def deferred() -> list[dict] | None:
        rows = items(clean_db, "product")
        return rows if len(rows) == 4 and all(r["error_code"] == "breaker_open" for r in rows) else None

    rows = wait_until(deferred, 9, message="the product items deferred")
    for r in rows:
        assert r["status"] in ("failed", "pending"), r  # deferred, or just dispatched again: never dead
        assert r["attempt_count"] == 0, r
        assert "circuit breaker entity:product is open until" in r["error_message"], r
    assert [r["status"] for r in items(clean_db, "customer")] == ["completed"] or wait_until(
        lambda: [r["status"] for r in items(clean_db, "customer")] == ["completed"], 15,
        message="the customer applied: its breaker is closed")

    # After open_s the worker's next try is a half-open trial; two successes close it; the rest follow.
    def applied() -> list[dict] | None:
        rows = items(clean_db, "product")
        return rows if all(r["status"] == "completed" for r in rows) else None

    rows = wait_until(applied, 60, interval=0.2, message="the deferred items applied after recovery")
    assert [r["attempt_count"] for r in rows] == [1, 1, 1, 1], rows  # no retry was used up
    assert all(r["error_code"] is None for r in rows), rows
    assert breaker_json(daemon, "entity:product")["state"] == "closed"
    with clean_db.connect() as c:
        alert = c.execute(text("SELECT resolved_at FROM tds_alerts WHERE type = 'breaker_open' "
                               "AND entity = 'entity:product'")).one()
    assert alert.resolved_at is not None, "the worker that closed it resolved the alert"

    # An operator's reset: deferred items become due at once instead of when the breaker would retry.
    breaker(rds, ns, replace(FAST, open_s=600)).trip("opened by the test")
    for _ in range(2):
        assert daemon.post("product", default_payload("product", make_object("product"))).status_code == 202
    wait_until(lambda: [r["error_code"] for r in items(clean_db, "product")[4:]] == ["breaker_open"] * 2, 15,
               message="the new items deferred")
    r = daemon.http.post("/api/tds/circuit-breakers/entity:product/reset", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["previous_state"] == "open" and r.json()["breaker"]["state"] == "closed", r.json()
    assert r.json()["deferred_items_released"] == 2, r.json()
    rows = wait_until(applied, 20, interval=0.2, message="the deferred items applied after the reset")
    assert [r["attempt_count"] for r in rows] == [1] * 6, rows

    r = daemon.http.post("/api/tds/circuit-breakers/entity:nothing/reset", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "unknown_breaker", r.text
    assert daemon.http.post("/api/tds/circuit-breakers/zoho:books/reset").status_code == 401
    assert daemon.http.get("/api/tds/circuit-breakers").status_code == 401
    assert daemon.http.post("/api/tds/circuit-breakers/zoho:books/reset", headers=ADMIN).json()[
        "previous_state"] == "closed"


def test_registry_builds_every_breaker_from_config(rds, ns):
    reg = Breakers.from_config(load(environ={"TDS_REDIS_NAMESPACE": ns, "TDS_BREAKERS_OPEN_S": "2.5",
                                             "TDS_BREAKERS_MIN_CALLS": "3"}), rds)
    assert reg.settings == Settings(50.0, 60, 3, 2.5, 3)
    assert [s.name for s in reg.statuses()] == list(breakers.NAMES)
    assert reg.entity("product") is reg.get("entity:product")
    assert reg.app("books").key.startswith(f"{ns}:breaker:zoho:books@")
    assert reg.entity("product").key == f"{ns}:breaker:entity:product"
    with pytest.raises(KeyError):
        reg.get("entity:nothing")
