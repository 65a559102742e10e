"""Group commit in the API (``tds_daemon.intake.groupcommit``) and its outbox, with real PostgreSQL and Redis:
deliveries that arrive together share a transaction, and each still gets its own answer: stored, duplicate, or
its error; their messages leave at once when idle, gathered under load, and at the latest when the process exits.

The groups are made deterministic by holding the first delivery's insert on a row lock the test owns, so
that the others queue up behind it and are written as one group when the lock goes.
"""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from sqlalchemy import exc, text
from support import TDS, WEBHOOK_TOKEN, free_port, wait_until, web

from tds_daemon import entities
from tds_daemon.api.app import intake_engine
from tds_daemon.apply.broker import make_broker
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.config import load
from tds_daemon.intake import webhook
from tds_daemon.intake.groupcommit import GroupCommit
from tds_daemon.intake.sender import Outbox
from tds_daemon.store.db import make_engine

PRODUCT = entities.get("product")


def delivery(item_id: str, name: str = "Widget", modified: str = "2026-11-25T10:00:00+0000"):
    body = {"item": {"item_id": item_id, "name": name, "last_modified_time": modified}}
    return webhook.read(PRODUCT, body), webhook.dump_body(body)


@pytest.fixture
def committer(migrated, clean_db):
    config = load(environ=migrated)
    engine = intake_engine(config)  # as the API stores webhooks: autocommit, no ping
    # Redis is real; nothing consumes these messages, which is fine: only storing is under test.
    yield GroupCommit(engine, Dispatcher(make_broker(config), origin="test"))
    engine.dispose()


def counts(engine) -> tuple[int, int]:
    with engine.connect() as c:
        return (c.execute(text("SELECT count(*) FROM tds_inbox_events")).scalar_one(),
                c.execute(text("SELECT count(*) FROM tds_sync_queue")).scalar_one())


class HeldGroup:
    """Blocks the next group on a row lock: a transaction of the test's inserts the first delivery's key,
    uncommitted, so that delivery's INSERT ... ON CONFLICT waits; later deliveries queue behind it."""

    def __init__(self, engine, committer: GroupCommit, first):
        self.engine, self.committer, self.first = engine, committer, first

    def __enter__(self):
        d, _ = self.first
        self.conn = self.engine.connect()
        self.tx = self.conn.begin()
        self.conn.execute(text("INSERT INTO tds_inbox_events (entity_type, zoho_id, event_type, idempotency_key, "
                               "payload) VALUES ('product', :z, 'updated', :k, '{}')"),
                          {"z": d.zoho_id, "k": d.idempotency_key})
        return self

    def release(self):
        self.tx.rollback()  # the held delivery is then stored as new
        self.conn.close()

    def __exit__(self, *exc_info):
        if self.tx.is_active:
            self.release()


def test_concurrent_deliveries_are_stored_each_with_its_own_item(committer, clean_db):
    batch = [delivery(f"9{i:04d}") for i in range(200)]
    with ThreadPoolExecutor(16) as pool:
        stored = list(pool.map(lambda d: committer.store(*d), batch))
    assert all(not s.duplicate for s in stored)
    assert len({s.event_id for s in stored}) == 200 and len({s.item_id for s in stored}) == 200
    assert counts(clean_db) == (200, 200)
    with clean_db.connect() as c:
        pairs = c.execute(text("SELECT e.zoho_id, q.zoho_id FROM tds_sync_queue q "
                               "JOIN tds_inbox_events e ON e.id = q.event_id")).all()
    assert all(a == b for a, b in pairs) and len(pairs) == 200


def test_a_group_of_three_shares_one_write_and_duplicates_in_it_are_recognised(committer, clean_db):
    held = delivery("1")
    twice = delivery("2")
    other = delivery("3")
    with HeldGroup(clean_db, committer, held) as hold, ThreadPoolExecutor(4) as pool:
        first = pool.submit(committer.store, *held)
        wait_until(lambda: committer.writing, 10, message="the held delivery's write started")
        rest = [pool.submit(committer.store, *d) for d in (twice, other, twice)]
        wait_until(lambda: committer.waiting == 3, 10, message="three deliveries queued behind it")
        hold.release()
        results = [f.result(timeout=30) for f in rest]
        assert not first.result(timeout=30).duplicate
    # Both copies of the same delivery name one event; only one of them is new.
    assert results[0].event_id == results[2].event_id
    assert [r.duplicate for r in results] == [False, False, True]
    assert counts(clean_db) == (3, 3)
    # Sent again later, it is a duplicate of the stored event.
    again = committer.store(*twice)
    assert again.duplicate and again.event_id == results[0].event_id


def test_one_unstorable_body_in_a_group_fails_alone(committer, clean_db):
    held = delivery("1")
    good_a, good_b = delivery("2"), delivery("4")
    bad = delivery("3", name="nul \u0000 inside")  # valid JSON, which jsonb refuses
    with HeldGroup(clean_db, committer, held) as hold, ThreadPoolExecutor(4) as pool:
        pool.submit(committer.store, *held)
        wait_until(lambda: committer.writing, 10, message="the held delivery's write started")
        futures = [pool.submit(committer.store, *d) for d in (good_a, bad, good_b)]
        wait_until(lambda: committer.waiting == 3, 10, message="three deliveries queued behind it")
        hold.release()
        with pytest.raises(exc.DataError):
            futures[1].result(timeout=30)
        assert not futures[0].result(timeout=30).duplicate
        assert not futures[2].result(timeout=30).duplicate
    assert counts(clean_db) == (3, 3)
    with clean_db.connect() as c:
        stored = set(c.execute(text("SELECT zoho_id FROM tds_inbox_events")).scalars())
    assert stored == {"1", "2", "4"}


def test_database_unavailable_fails_every_delivery_of_the_group(migrated, clean_db):
    # A port nothing listens on: the write fails as transient, and every waiting request gets that error.
    config = load(environ={**migrated, "TDS_DATABASE_URL": "postgresql+psycopg2://root@127.0.0.1:9/none",
                           "TDS_DATABASE_CONNECT_TIMEOUT_S": "1"})
    engine = make_engine(config, pool_size=1)
    committer = GroupCommit(engine, Dispatcher(make_broker(config), origin="test"))
    errors = []
    barrier = threading.Barrier(4)

    def store(d):
        barrier.wait(10)
        try:
            committer.store(*d)
        except exc.OperationalError as e:
            errors.append(e)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(store, [delivery(str(i)) for i in range(4)]))
    engine.dispose()
    assert len(errors) == 4
    # and nothing is left stuck: the writer thread is idle again, ready for the next group
    wait_until(lambda: not committer.writing and not committer.waiting, 5, message="the writer idle")


def test_a_connection_the_server_closed_is_replaced_without_failing_the_webhook(committer, clean_db):
    # The intake engine does not ping before each write; after a PostgreSQL restart its pooled
    # connections are dead, and the first write on one must not turn into a 503.
    assert not committer.store(*delivery("1")).duplicate
    with clean_db.connect() as c:
        killed = c.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE application_name = 'tds-api-intake' AND datname = current_database()"))
        assert killed.scalar_one() >= 1
    second = committer.store(*delivery("2"))
    assert not second.duplicate
    assert counts(clean_db) == (2, 2)


def test_the_outbox_sends_at_once_when_idle_and_sends_what_is_left_when_closed(migrated):
    # A namespace of its own: no worker of another test may take these messages.
    config = load(environ={**migrated, "TDS_REDIS_NAMESPACE": f"tds_test_outbox_{uuid.uuid4().hex[:8]}"})
    broker = make_broker(config)
    client = redis.Redis.from_url(config.redis.url)
    msgs = f"{config.redis.namespace}:{PRODUCT.queue}.msgs"

    def messages() -> list[list[int]]:
        return sorted(json.loads(v)["args"][0] for v in client.hvals(msgs))

    outbox = Outbox(make_engine(config, pool_size=1), Dispatcher(broker, origin="test"), linger_s=600)
    try:
        outbox.add([(10**12 + 1, "product")])
        wait_until(lambda: messages() == [[10**12 + 1]], 10, message="the first items sent at once")
        # The thread now lingers (600 s here): later items gather ...
        outbox.add([(10**12 + 2, "product")])
        outbox.add([(10**12 + 3, "product")])
        assert messages() == [[10**12 + 1]]
        # ... and closing (gunicorn's worker_exit) sends them, as one message.
        outbox.close()
        assert messages() == [[10**12 + 1], [10**12 + 2, 10**12 + 3]]
    finally:
        for key in client.scan_iter(match=f"{config.redis.namespace}*"):
            client.delete(key)
        client.close()


def test_a_stopping_api_process_sends_what_its_outbox_holds(processes, migrated, clean_db):
    # One gunicorn process gathering for a second, no workers: the second webhook's item is still in the
    # outbox when the API is told to stop, and only gunicorn's worker_exit hook can send it.
    ns = f"tds_test_exit_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**migrated, "TDS_REDIS_NAMESPACE": ns, "TDS_API_BIND": f"127.0.0.1:{port}", "TDS_API_PROCESSES": "1",
           "TDS_API_SEND_INTERVAL_MS": "1000"}
    base = f"http://127.0.0.1:{port}"
    api = processes.start("tds-api", [*TDS, "api"], env=env,
                          ready=lambda: web.get(f"{base}/health/live", timeout=2).status_code == 200)
    client = redis.Redis.from_url(migrated["TDS_REDIS_URL"])
    msgs = f"{ns}:{PRODUCT.queue}.msgs"
    try:
        headers = {"X-TDS-Webhook-Token": WEBHOOK_TOKEN, "Content-Type": "application/json"}
        for zoho_id in ("1", "2"):
            body = {"item": {"item_id": zoho_id, "name": "Widget", "last_modified_time": "2026-11-25T10:00:00+0000"}}
            assert web.post(f"{base}/api/tds/webhooks/items", json=body, headers=headers,
                              timeout=10).status_code == 202
        assert processes.stop(api) == 0
        sent = sorted(i for v in client.hvals(msgs) for i in json.loads(v)["args"][0])
        with clean_db.connect() as c:
            items = sorted(c.execute(text("SELECT id FROM tds_sync_queue")).scalars())
        assert len(items) == 2 and sent == items
    finally:
        for key in client.scan_iter(match=f"{ns}*"):
            client.delete(key)
        client.close()
