"""Entity actors applying a batch of sync items per message, proven with a real ``tds run``, real
PostgreSQL and real Redis.

Items are stored as intake stores them (``tds_daemon.intake.inbox``), marked dispatched, and the daemon's own
recovery sweep waits an hour before sending a pending item again: so the message the test sends by
hand is the only one the workers get, and what they do with its batch is what is observed. Every
item of a batch that commits in one transaction has the same ``completed_at`` (PostgreSQL's
transaction time), which is how a test sees that a batch was applied together.
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import text
from support import all_applied, free_port, queue_counts, start_daemon, wait_until
from support.zoho_objects import default_payload, make_object, new_id

from tds_daemon import entities
from tds_daemon.apply import syncqueue
from tds_daemon.apply.broker import make_broker
from tds_daemon.apply.dispatch import MAX_BATCH, Dispatcher
from tds_daemon.apply.items import Applier
from tds_daemon.config import load
from tds_daemon.guard.breakers import Breaker, Settings
from tds_daemon.intake import inbox, webhook
from tds_daemon.store.db import make_engine

TIMEOUT = 30
PRODUCT = entities.get("product")


@pytest.fixture(scope="module")
def batch_env(migrated, redis_namespace):
    """A Redis namespace of this module's own (queues and breakers), no re-sending of pending items by
    the sweep, and a short lock timeout for the test that holds a row lock."""
    return {**migrated, "TDS_REDIS_NAMESPACE": f"{redis_namespace}_batch_{uuid.uuid4().hex[:8]}",
            "TDS_WORKERS_REDISPATCH_AFTER_S": "3600", "TDS_DATABASE_STATEMENT_TIMEOUT_MS": "1000"}


@pytest.fixture(scope="module")
def batch_daemon(module_processes, batch_env):
    d = start_daemon(module_processes, batch_env)
    yield d
    d.http.close()


def make_dispatcher(env: dict[str, str], **overrides: str) -> Dispatcher:
    return Dispatcher(make_broker(load(environ={**env, **overrides})), origin="test")


@pytest.fixture(scope="module")
def dispatcher(batch_env):
    d = make_dispatcher(batch_env)
    yield d
    d.broker.client.close()


@pytest.fixture
def db(clean_db, batch_daemon):
    """A clean database, and the module's daemon running."""
    return clean_db


# --- helpers ---

def store(engine, entity: str, objects: list[dict], event: str | None = None) -> list[int]:
    """Accepted deliveries of ``objects``, stored as intake stores them and marked dispatched; their item ids."""
    spec = entities.get(entity)
    deliveries = []
    for obj in objects:
        body = default_payload(entity, obj)
        deliveries.append((webhook.read(spec, body, query_event=event), webhook.dump_body(body)))
    stored = inbox.store_many(engine, deliveries, will_dispatch=True)
    assert all(not s.duplicate for s in stored), stored
    return [s.item_id for s in stored]


def items(engine, ids: list[int]) -> dict[int, dict]:
    with engine.connect() as c:
        rows = c.execute(text("SELECT * FROM tds_sync_queue WHERE id = ANY(:ids)"), {"ids": ids}).mappings()
        return {r["id"]: dict(r) for r in rows}


def settled(engine, ids: list[int]) -> dict[int, dict] | None:
    """The items once none is pending or processing any more."""
    got = items(engine, ids)
    return got if len(got) == len(ids) and all(i["status"] not in ("pending", "processing") for i in got.values()) \
        else None


def wait_settled(engine, ids: list[int], timeout: float = TIMEOUT) -> dict[int, dict]:
    return wait_until(lambda: settled(engine, ids), timeout, interval=0.1,
                      message=f"{len(ids)} item(s) settled (queue: {queue_counts(engine)})")


def wait_completed(engine, ids: list[int], timeout: float = TIMEOUT) -> dict[int, dict]:
    def completed():
        got = items(engine, ids)
        return got if len(got) == len(ids) and all(i["status"] == "completed" for i in got.values()) else None

    return wait_until(completed, timeout, interval=0.1,
                      message=f"{len(ids)} item(s) completed (queue: {queue_counts(engine)})")


def unacked(dispatcher: Dispatcher, spec) -> int:
    """Messages of the entity's queue in Redis not yet acknowledged (a message is deleted when its actor returns)."""
    return dispatcher.broker.client.hlen(f"{dispatcher.broker.namespace}:{spec.queue}.msgs")


def entity_rows(engine, entity: str) -> dict[str, dict]:
    table = entities.get(entity).table
    with engine.connect() as c:
        return {r["zoho_id"]: dict(r) for r in c.execute(text(f"SELECT * FROM zoho.{table}")).mappings()}


# --- one message, many items ---

def test_one_message_with_20_items_applies_them_in_one_transaction(db, dispatcher):
    objects = [make_object("product") for _ in range(20)]
    ids = store(db, "product", objects)
    assert dispatcher.send_batch(PRODUCT, ids)

    done = wait_settled(db, ids)
    assert {i["status"] for i in done.values()} == {"completed"}, done
    assert {i["outcome"] for i in done.values()} == {"created"}
    assert {i["attempt_count"] for i in done.values()} == {1}
    assert len({i["completed_at"] for i in done.values()}) == 1, "one transaction for the batch"
    rows = entity_rows(db, "product")
    assert set(rows) == {o["item_id"] for o in objects}


def test_versions_of_one_object_in_a_batch_get_the_outcomes_of_one_after_another(db, dispatcher):
    # The newer version of `a` was stored first (the lower item id): the older one after it is stale.
    a, b, c = new_id(), new_id(), new_id()
    [a_new] = store(db, "product", [make_object("product", a, minutes=10, name="a newer")])
    [a_old] = store(db, "product", [make_object("product", a, minutes=0, name="a older")])
    b_ids = [store(db, "product", [make_object("product", b, minutes=m, name=f"b {m}")])[0] for m in (0, 5, 3)]
    [c_made] = store(db, "product", [make_object("product", c, minutes=0)])
    [c_gone] = store(db, "product", [make_object("product", c, minutes=5)], event="deleted")
    ids = [a_new, a_old, *b_ids, c_made, c_gone]
    assert dispatcher.send_batch(PRODUCT, list(reversed(ids)))  # the order in the message does not matter

    done = wait_settled(db, ids)
    assert {i: done[i]["outcome"] for i in ids} == {
        a_new: "created", a_old: "stale",
        b_ids[0]: "created", b_ids[1]: "updated", b_ids[2]: "stale",
        c_made: "created", c_gone: "deleted"}, done
    assert len({i["completed_at"] for i in done.values()}) == 1, "one transaction for the batch"
    rows = entity_rows(db, "product")
    assert rows[a]["name"] == "a newer" and rows[b]["name"] == "b 5"
    assert rows[a]["deleted_at"] is None and rows[c]["deleted_at"] is not None


@pytest.mark.parametrize("rate, shown", [
    ("abc", "abc"),  # not a number
    (10 ** 20, "too large"),  # a number the numeric(20, 6) column cannot hold: not PostgreSQL's overflow
])
def test_an_invalid_object_dead_letters_only_itself(db, dispatcher, rate, shown):
    objects = [make_object("product") for _ in range(5)]
    objects[2]["rate"] = rate
    bad = objects[2]["item_id"]
    ids = store(db, "product", objects)
    assert dispatcher.send_batch(PRODUCT, ids)

    done = wait_settled(db, ids)
    dead = done.pop(ids[2])
    assert dead["status"] == "dead_letter" and dead["error_code"] == "invalid_field", dead
    assert "rate" in dead["error_message"] and shown in dead["error_message"], dead["error_message"]
    assert dead["attempt_count"] == 1  # permanent: not retried; the batch attempt did not count twice
    assert {i["status"] for i in done.values()} == {"completed"}, done
    assert {i["attempt_count"] for i in done.values()} == {1}
    assert set(entity_rows(db, "product")) == {o["item_id"] for o in objects} - {bad}


_RECORD_TRANSITIONS = """
CREATE TABLE test_transitions (item_id bigint, was text, now text, tx bigint DEFAULT txid_current());
CREATE FUNCTION test_record_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO test_transitions (item_id, was, now) VALUES (OLD.id, OLD.status, NEW.status); RETURN NEW; END $$;
CREATE TRIGGER test_transitions AFTER UPDATE ON tds_sync_queue FOR EACH ROW EXECUTE FUNCTION test_record_transition();
"""
_FORGET_TRANSITIONS = """
DROP TRIGGER IF EXISTS test_transitions ON tds_sync_queue;
DROP FUNCTION IF EXISTS test_record_transition();
DROP TABLE IF EXISTS test_transitions;
"""


def test_fresh_items_are_applied_with_one_write_each_and_no_claim(db, dispatcher):
    ids = store(db, "product", [make_object("product") for _ in range(10)])
    with db.begin() as c:
        c.execute(text(_RECORD_TRANSITIONS))
    try:
        assert dispatcher.send_batch(PRODUCT, ids)
        done = wait_completed(db, ids)
        with db.connect() as c:
            transitions = c.execute(text("SELECT item_id, was, now, tx FROM test_transitions")).all()
    finally:
        with db.begin() as c:
            c.execute(text(_FORGET_TRANSITIONS))
    assert {(i["attempt_count"], i["error_code"]) for i in done.values()} == {(1, None)}, done
    # pending → completed in the apply's own transaction: the completion is the only write of each item
    # (the claiming way writes 'processing' first, in a transaction of its own).
    assert sorted((t.item_id, t.was, t.now) for t in transitions) == [(i, "pending", "completed") for i in ids]
    assert len({t.tx for t in transitions}) == 1, "one transaction"


def test_an_item_sent_again_by_the_sweep_goes_the_counted_way(db, dispatcher):
    """A worker killed inside the one-transaction apply leaves its items pending and untouched; the sweep
    sends them again marked, and a marked item is claimed first (its attempt counted), so an item that
    kills its worker every time is dead-lettered at last instead of being tried for ever."""
    [lost, unsent] = store(db, "product", [make_object("product"), make_object("product")])
    with db.begin() as c:
        # lost: sent long ago and not applied (its message lost, or its worker killed mid-apply);
        # unsent: never sent (Redis was down at intake).
        c.execute(text("UPDATE tds_sync_queue SET dispatched_at = now() - interval '2 hours' WHERE id = :i"),
                  {"i": lost})
        c.execute(text("UPDATE tds_sync_queue SET dispatched_at = NULL WHERE id = :i"), {"i": unsent})
        buried, recovered = syncqueue.recover(c, redispatch_after_s=60, max_attempts=10)
    assert sorted(r.id for r in recovered) == sorted([lost, unsent]) and buried == 0
    got = items(db, [lost, unsent])
    assert got[lost]["error_code"] == "redispatched" and "not applied within 60 s" in got[lost]["error_message"]
    assert got[unsent]["error_code"] is None  # never sent: nothing went wrong with it
    with db.begin() as c:
        assert [i.id for i in syncqueue.lock_fresh(c, [lost, unsent])] == [unsent]
        assert [(i.id, i.attempt_count) for i in syncqueue.claim_many(c, [lost], 60)] == [(lost, 1)]
        c.rollback()
    assert dispatcher.send_batch(PRODUCT, [lost, unsent])
    done = wait_completed(db, [lost, unsent])
    assert [done[i]["error_code"] for i in (lost, unsent)] == [None, None], done
    assert [done[i]["attempt_count"] for i in (lost, unsent)] == [1, 1], done


def test_a_locked_row_fails_only_its_item_and_it_is_retried(db, dispatcher):
    held = new_id()
    [first] = store(db, "product", [make_object("product", held, minutes=0, name="before")])
    assert dispatcher.send_batch(PRODUCT, [first])
    wait_settled(db, [first])

    with db.connect() as locker:
        tx = locker.begin()
        locker.execute(text("SELECT 1 FROM zoho.products WHERE zoho_id = :id FOR UPDATE"), {"id": held})
        try:
            others = store(db, "product", [make_object("product") for _ in range(3)])
            [blocked] = store(db, "product", [make_object("product", held, minutes=5, name="after")])
            assert dispatcher.send_batch(PRODUCT, [*others, blocked])

            def others_done_blocked_failed():
                got = items(db, [*others, blocked])
                return (all(got[i]["status"] == "completed" for i in others) and got[blocked]["error_code"]
                        and got) or None

            got = wait_until(others_done_blocked_failed, TIMEOUT, interval=0.1,
                             message="the other items completed, the locked one failed")
            assert got[blocked]["status"] in ("failed", "pending", "processing"), got[blocked]  # retried, not dead
            assert got[blocked]["error_code"] == "database_timeout", got[blocked]
        finally:
            tx.rollback()

    # Lock released: its retry (sent by the sweep when its backoff ends) succeeds.
    done = wait_completed(db, [blocked])
    assert done[blocked]["attempt_count"] >= 2, done
    assert entity_rows(db, "product")[held]["name"] == "after"


def test_a_message_of_the_previous_version_with_one_id_is_applied(db, dispatcher):
    [item_id] = store(db, "product", [make_object("product")])
    assert dispatcher.send_to(PRODUCT.queue, PRODUCT.actor_name, item_id)  # args (int,), not ([int],)
    done = wait_settled(db, [item_id])
    assert done[item_id]["status"] == "completed" and done[item_id]["outcome"] == "created", done


def test_a_redelivered_batch_does_nothing(db, dispatcher):
    ids = store(db, "product", [make_object("product") for _ in range(3)])
    assert dispatcher.send_batch(PRODUCT, ids)
    first = wait_completed(db, ids)
    assert dispatcher.send_batch(PRODUCT, ids)
    wait_until(lambda: unacked(dispatcher, PRODUCT) == 0, TIMEOUT, message="the redelivered message consumed")
    assert items(db, ids) == first


def test_an_open_breaker_defers_the_whole_batch_keeping_its_attempts(db, dispatcher, batch_env):
    config = load(environ=batch_env)
    breaker = Breaker(dispatcher.broker.client, config.redis.namespace, "entity:product",
                      Settings(50, 60, 4, 600, 3))
    breaker.trip("opened by the test")
    try:
        ids = store(db, "product", [make_object("product") for _ in range(4)])
        assert dispatcher.send_batch(PRODUCT, ids)
        deferred = wait_settled(db, ids)
        for i in deferred.values():
            assert i["status"] == "failed" and i["error_code"] == "breaker_open", i
            assert i["attempt_count"] == 0 and "is open until" in i["error_message"], i
    finally:
        breaker.reset()
    with db.begin() as c:
        assert syncqueue.undefer(c, "product") == 4
    # Due now: the sweep sends them again.
    done = wait_completed(db, ids)
    assert {i["attempt_count"] for i in done.values()} == {1}, done


def test_a_batch_is_one_breaker_call_and_on_a_half_open_trial_one_result_per_item(db, dispatcher, batch_env):
    config = load(environ=batch_env)
    assert config.breakers.half_open_calls == 3
    # open_s 0 for the trip: the next check is a half-open trial at once.
    breaker = Breaker(dispatcher.broker.client, config.redis.namespace, "entity:product", Settings(50, 60, 4, 0, 3))
    breaker.trip("opened by the test")
    try:
        ids = store(db, "product", [make_object("product") for _ in range(3)])
        assert dispatcher.send_batch(PRODUCT, ids)
        wait_completed(db, ids)
        # One permit, three trial results: closed, as three single-item messages would have closed it.
        # (Closed by the second result: the third counts as a call of the closed breaker.) The results are
        # recorded just after the items' commit: wait for the third.
        before = wait_until(lambda: (s := breaker.status()).state == "closed" and s.calls == 1 and s, 10,
                            message="the batch's three results recorded")

        ids = store(db, "product", [make_object("product") for _ in range(5)])
        assert dispatcher.send_batch(PRODUCT, ids)
        wait_completed(db, ids)
        after = breaker.status()
        assert after.state == "closed" and after.failures == 0, after
        assert after.calls == before.calls + 1, (before, after)  # closed: one transaction, one call
    finally:
        breaker.reset()


# --- sending ---

def test_send_items_sends_one_message_per_entity_and_max_batch_ids(db, dispatcher):
    objects = {"product": [make_object("product") for _ in range(150)],
               "customer": [make_object("customer") for _ in range(100)]}
    ids = {entity: store(db, entity, objs) for entity, objs in objects.items()}
    pairs = [(i, entity) for entity in ids for i in ids[entity]]
    pairs = pairs[::2] + pairs[1::2]  # interleaved: grouping by entity is send_items' job
    assert dispatcher.send_items(db, pairs) == []

    wait_until(lambda: all_applied(db, 250), 60, interval=0.2, message=f"250 items applied ({queue_counts(db)})")
    with db.connect() as c:
        batches = dict(c.execute(text("SELECT entity_type, count(DISTINCT completed_at) FROM tds_sync_queue "
                                      "GROUP BY 1")).all())
    assert batches == {"product": 2, "customer": 1}, batches  # one transaction per message
    for entity, objs in objects.items():
        assert len(entity_rows(db, entity)) == len(objs)


def test_send_items_chunks_by_entity_in_order(batch_env, engine):
    # A namespace nobody consumes: the messages stay in Redis to be read back.
    d = make_dispatcher(batch_env, TDS_REDIS_NAMESPACE=f"{batch_env['TDS_REDIS_NAMESPACE']}_idle")
    try:
        pairs = [(n, "product" if n % 3 else "customer") for n in range(1, 2 * MAX_BATCH + 60)]
        assert d.send_items(engine, pairs) == []
        sent = {}
        for entity in ("product", "customer"):
            spec = entities.get(entity)
            raw = d.broker.client.hvals(f"{d.broker.namespace}:{spec.queue}.msgs")
            messages = sorted((json.loads(m) for m in raw), key=lambda m: m["args"][0][0])
            assert all(m["actor_name"] == spec.actor_name and len(m["args"]) == 1 for m in messages)
            sent[entity] = [m["args"][0] for m in messages]
        products = [n for n, e in pairs if e == "product"]
        customers = [n for n, e in pairs if e == "customer"]
        assert sent["product"] == [products[:MAX_BATCH], products[MAX_BATCH:]], [len(m) for m in sent["product"]]
        assert sent["customer"] == [customers], [len(m) for m in sent["customer"]]
    finally:
        for key in d.broker.client.scan_iter(match=f"{d.broker.namespace}:*"):
            d.broker.client.delete(key)
        d.broker.client.close()


def test_send_items_with_redis_down_returns_every_id_and_marks_them_unsent(db, batch_env):
    products = store(db, "product", [make_object("product") for _ in range(3)])
    customers = store(db, "customer", [make_object("customer") for _ in range(2)])
    down = make_dispatcher(batch_env, TDS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    try:
        pairs = [(i, "product") for i in products] + [(i, "customer") for i in customers]
        # The first message fails, the second is skipped (the dispatcher pauses after a failure).
        assert down.send_items(db, pairs) == products + customers
    finally:
        down.broker.client.close()
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM tds_sync_queue WHERE dispatched_at IS NULL")).scalar_one() == 5
    # Unsent items are what the sweep sends at once, whatever its redispatch delay.
    wait_until(lambda: all_applied(db, 5), TIMEOUT, interval=0.2, message=f"5 items applied ({queue_counts(db)})")


def test_with_the_database_out_of_reach_fresh_items_stay_pending_untouched(db, dispatcher, batch_env):
    """The one-transaction apply against a database that does not answer: nothing is written, nothing
    raised to Dramatiq, and the items are as intake left them, for the recovery sweep to send again."""
    ids = store(db, "product", [make_object("product") for _ in range(3)])
    before = items(db, ids)
    dead = load(environ={**batch_env, "TDS_DATABASE_URL": "postgresql+psycopg2://root@127.0.0.1:9/none",
                         "TDS_DATABASE_CONNECT_TIMEOUT_S": "1"})
    engine = make_engine(dead, pool_size=1)
    try:
        Applier.from_config(dead, engine, None).apply(ids)  # returns: the failure is the database's, not the items'
    finally:
        engine.dispose()
    assert items(db, ids) == before
    assert {(i["status"], i["attempt_count"], i["error_code"]) for i in before.values()} == {("pending", 0, None)}
    # Sent again (as the sweep would), they are applied.
    assert dispatcher.send_batch(PRODUCT, ids)
    assert {i["outcome"] for i in wait_completed(db, ids).values()} == {"created"}
