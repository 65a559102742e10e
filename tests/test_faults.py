"""Fault injection with real processes: the promise is that every accepted (2xx) event ends applied.

Each test starts its own ``tds run`` (function-scoped ``processes``), so a daemon a fault leaves
broken cannot poison another test. Faults are real: a private ``redis-server`` stopped and started
again, PostgreSQL cut off behind a TCP proxy, a worker process SIGKILLed, a row lock held by the
test. Every wait is a condition with a deadline, never a sleep.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import support
from sqlalchemy import text
from sqlalchemy.engine import make_url
from support import (
    TWO_OF_EACH,
    WEBHOOK_TOKEN,
    all_applied,
    free_port,
    queue_counts,
    start_private_redis,
    wait_until,
    web,
)
from support.tcp_proxy import TcpProxy
from support.zoho_objects import default_payload, make_object, new_id

from tds_daemon import entities


def start_daemon(procs, env, **overrides):
    """A daemon of two API and two worker processes: this module's tests are about several of them."""
    return support.start_daemon(procs, {**env, **TWO_OF_EACH}, **overrides)


# Generous next to the configured 5 s lease / 5 s redispatch / 0.5 s sweep, far below the test limit.
RECOVERY_TIMEOUT = 45


# ---------------------------------------------------------------------------------------------- helpers

def post_accepted(daemon, entity: str, obj: dict) -> None:
    r = daemon.post(entity, default_payload(entity, obj))
    assert r.status_code == 202, f"{entity} {obj[entities.get(entity).id_field]}: {r.status_code} {r.text}"


def items(engine, where: str = "TRUE", **params) -> list:
    with engine.connect() as c:
        return c.execute(text(f"SELECT * FROM tds_sync_queue WHERE {where} ORDER BY id"), params).mappings().all()


def item_for(engine, entity: str, zoho_id: str):
    rows = items(engine, "entity_type = :e AND zoho_id = :z", e=entity, z=zoho_id)
    assert len(rows) == 1, rows
    return rows[0]


def entity_row(engine, entity: str, zoho_id: str):
    table = entities.get(entity).table
    with engine.connect() as c:
        return c.execute(text(f"SELECT * FROM zoho.{table} WHERE zoho_id = :id"), {"id": zoho_id}).mappings().first()


def missing_rows(engine, expected: dict[str, set[str]]) -> dict[str, set[str]]:
    """{entity: zoho ids that have no row in zoho.<table>}; empty when every one is there."""
    missing = {}
    with engine.connect() as c:
        for entity, ids in expected.items():
            table = entities.get(entity).table
            have = set(c.execute(text(f"SELECT zoho_id FROM zoho.{table} WHERE zoho_id = ANY(:ids)"),
                                 {"ids": list(ids)}).scalars())
            if ids - have:
                missing[entity] = ids - have
    return missing


def wait_all_applied(engine, expected_rows: dict[str, set[str]], expected_items: int,
                     timeout: float = RECOVERY_TIMEOUT) -> None:
    """The promise: every accepted event's item is completed and its row is in its table."""
    try:
        wait_until(lambda: all_applied(engine, expected_items), timeout,
                   message=f"{expected_items} accepted item(s) completed")
    except AssertionError as e:
        raise AssertionError(f"{e}; items now {queue_counts(engine)}") from None
    missing = missing_rows(engine, expected_rows)
    assert not missing, f"items completed but rows missing: {missing}"


def inbox_ids(engine) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(text("SELECT zoho_id FROM tds_inbox_events")).scalars())




def metric_value(body: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 if absent); labels in any order."""
    total = 0.0
    for line in body.splitlines():
        m = re.match(rf"^{re.escape(name)}\{{(.*)\}} (\S+)$", line)
        if not m:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(1)))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


# ---------------------------------------------------------------------------------------------- 1. Redis

@pytest.mark.timeout(90)
def test_redis_stopped_during_intake_every_accepted_event_is_applied(processes, clean_db, migrated):
    port = free_port()
    redis_proc = start_private_redis(processes, port)
    daemon = start_daemon(processes, migrated, TDS_REDIS_URL=f"redis://127.0.0.1:{port}/0")
    expected: dict[str, set[str]] = {"product": set(), "customer": set(), "invoice": set()}

    def post_batch(n: int) -> None:
        for i in range(n):
            entity = ("product", "customer", "invoice")[i % 3]
            obj = make_object(entity)
            post_accepted(daemon, entity, obj)
            expected[entity].add(obj[entities.get(entity).id_field])

    # Before the fault: accepted and sent; some messages may still sit in Redis when it goes.
    post_batch(15)
    processes.stop(redis_proc)  # SIGTERM to its own process group; it keeps nothing (no RDB, no AOF)
    assert redis_proc.returncode is not None

    # Redis is down: intake still answers 202 for every delivery, and says Redis is what is missing.
    post_batch(30)
    ready = daemon.http.get("/health/ready")
    assert ready.status_code == 503 and ready.json()["unavailable"] == ["redis"], ready.text
    # Nothing can have carried these to a worker: the fault is real, not absorbed by a lucky timing.
    down_items = items(clean_db, "id > 15")
    assert len(down_items) == 30 and all(i["status"] == "pending" for i in down_items), down_items

    # Redis comes back empty, on the same address: everything accepted gets applied, with no action.
    start_private_redis(processes, port)
    wait_all_applied(clean_db, expected, 45)
    assert daemon.http.get("/health/ready").status_code == 200


# ---------------------------------------------------------------------------------------------- 2. PostgreSQL

@pytest.mark.timeout(90)
def test_postgresql_unreachable_is_503_with_retry_after_and_nothing_stored(processes, clean_db, migrated, pg_url):
    proxy = TcpProxy("127.0.0.1", make_url(pg_url).port or 5432).start()
    try:
        proxied = make_url(pg_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        daemon = start_daemon(processes, migrated, TDS_DATABASE_URL=proxied)
        assert proxy.connections_total > 0  # the daemon really talks to PostgreSQL through the proxy

        accepted: dict[str, set[str]] = {"product": set(), "customer": set()}
        for entity in ("product", "customer") * 5:
            obj = make_object(entity)
            post_accepted(daemon, entity, obj)
            accepted[entity].add(obj[entities.get(entity).id_field])

        # PostgreSQL vanishes (listener and every open connection), maybe while those are being applied.
        proxy.stop()
        refused = [("product", make_object("product")), ("invoice", make_object("invoice")),
                   ("customer", make_object("customer"))]
        for entity, obj in refused:
            r = daemon.post(entity, default_payload(entity, obj))
            assert r.status_code == 503, r.text
            assert r.headers.get("Retry-After", "").isdigit() and int(r.headers["Retry-After"]) > 0, r.headers
            body = r.json()
            assert body["error"] == "database_unavailable" and body["message"], body
        ready = daemon.http.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["unavailable"] == ["postgresql"], ready.text
        # Nothing of the refused deliveries was stored (checked directly, not through the proxy).
        stored = inbox_ids(clean_db)
        assert not stored & {obj[entities.get(e).id_field] for e, obj in refused}
        assert len(stored) == 10

        # PostgreSQL is back: Zoho's retry of each refused delivery is a new acceptance (202, not a
        # duplicate, since nothing was stored), and everything accepted ends applied.
        proxy.start()
        wait_until(lambda: daemon.http.get("/health/ready").status_code == 200, 30, message="ready again")
        for entity, obj in refused:
            post_accepted(daemon, entity, obj)
            accepted.setdefault(entity, set()).add(obj[entities.get(entity).id_field])
        wait_all_applied(clean_db, accepted, 13)
    finally:
        proxy.stop()


# ---------------------------------------------------------------------------------------------- 3. kill -9

RECOVERY_KEYS = ("TDS_WORKERS_LEASE_S", "TDS_WORKERS_REDISPATCH_AFTER_S", "TDS_WORKERS_SWEEP_INTERVAL_S")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("timings", ["test", "default"])
def test_worker_killed_mid_burst_every_accepted_event_is_applied(processes, clean_db, migrated, timings):
    # "default": the shipped lease and redispatch settings, which promise recovery within 2 minutes.
    env = migrated if timings == "test" else {k: v for k, v in migrated.items() if k not in RECOVERY_KEYS}
    daemon = start_daemon(processes, env)
    workers_before = daemon.worker_pids()
    assert len(workers_before) == 2, workers_before
    kinds = ("product", "customer", "invoice", "sales_order")
    burst = [(kinds[i % len(kinds)], make_object(kinds[i % len(kinds)])) for i in range(400)]

    local = threading.local()
    done = []
    done_lock = threading.Lock()

    def send(entity_obj) -> int:
        entity, obj = entity_obj
        if not hasattr(local, "client"):
            local.client = web.Client(base_url=daemon.base_url, timeout=30)
        r = local.client.post(f"/api/tds/webhooks/{entity}", json=default_payload(entity, obj),
                              headers={"X-TDS-Webhook-Token": WEBHOOK_TOKEN})
        with done_lock:
            done.append(r.status_code)
        return r.status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(send, eo) for eo in burst]
        # Mid-burst: a third accepted, the rest still coming, the workers busy with a backlog.
        wait_until(lambda: len(done) >= len(burst) // 3, 60, message="a third of the burst sent")
        victim = workers_before[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        answered_at_kill = len(done)
        statuses = [f.result() for f in futures]
    assert answered_at_kill < len(burst), "the burst was over before the kill: it proves nothing"
    assert statuses.count(202) == len(burst), {s: statuses.count(s) for s in set(statuses)}

    expected: dict[str, set[str]] = {}
    for entity, obj in burst:
        expected.setdefault(entity, set()).add(obj[entities.get(entity).id_field])
    # No manual action: the supervisor replaces the dead worker, recovery re-dispatches what it held.
    wait_all_applied(clean_db, expected, len(burst), timeout=120 - (time.monotonic() - killed_at))
    workers_after = wait_until(lambda: (p := daemon.worker_pids()) and len(p) == 2 and p, 15,
                               message="the killed worker replaced")
    assert victim not in workers_after
    assert not items(clean_db, "status <> 'completed' OR error_code IS NOT NULL")
    # The outbox: each object's creation is one event, from the webhook, none lost and none twice, although
    # the killed worker's transactions were cut off and their items applied again by another.
    with clean_db.connect() as c:
        outbox = c.execute(text("SELECT entity, zoho_id, payload->>'action', payload->>'source' FROM tds_events "
                                "WHERE type = 'tds.zoho.entity.synced' ORDER BY id")).all()
    assert sorted((e, z) for e, z, _, _ in outbox) == sorted((e, z) for e, ids in expected.items() for z in ids)
    assert {(a, src) for _, _, a, src in outbox} == {("created", "webhook")}


# ---------------------------------------------------------------------------------------------- 4. dead letter

@pytest.mark.timeout(60)
def test_permanent_error_goes_to_dead_letter_with_its_message(processes, clean_db, migrated):
    daemon = start_daemon(processes, migrated)
    zoho_id = new_id()
    post_accepted(daemon, "product", make_object("product", zoho_id, minutes=0, rate="abc"))

    dead = wait_until(lambda: (i := item_for(clean_db, "product", zoho_id))["status"] == "dead_letter" and i,
                      30, message="the bad product in dead_letter")
    assert dead["error_code"] == "invalid_field"
    assert "rate" in dead["error_message"] and "abc" in dead["error_message"], dead["error_message"]
    assert dead["attempt_count"] == 1  # permanent: not retried
    assert entity_row(clean_db, "product", zoho_id) is None

    def dead_letter_counted():
        body = daemon.http.get("/metrics").text
        return metric_value(body, "tds_sync_items_total", entity="product", outcome="dead_letter") >= 1 and body

    body = wait_until(dead_letter_counted, 15, message="dead_letter counted in /metrics")
    assert metric_value(body, "tds_dead_letter_items", entity="product") == 1

    # The next, correct delivery of the same product is applied: a dead letter blocks nothing.
    post_accepted(daemon, "product", make_object("product", zoho_id, minutes=5, rate="12.50"))
    wait_until(lambda: queue_counts(clean_db).get("completed") == 1, 30, message="the good delivery applied")
    row = entity_row(clean_db, "product", zoho_id)
    assert row is not None and float(row["rate"]) == 12.5
    assert queue_counts(clean_db) == {"completed": 1, "dead_letter": 1}


# ---------------------------------------------------------------------------------------------- 5. retry

@pytest.mark.timeout(90)
def test_transient_error_is_retried_until_applied(processes, clean_db, migrated):
    # Every statement of the daemon gives up after 1 s of waiting for a lock (lock_timeout): a row
    # lock held by this test makes the upsert fail with a transient error (55P03), again and again.
    daemon = start_daemon(processes, migrated, TDS_DATABASE_STATEMENT_TIMEOUT_MS="1000")
    zoho_id = new_id()
    post_accepted(daemon, "product", make_object("product", zoho_id, minutes=0, name="before"))
    wait_until(lambda: all_applied(clean_db, 1), 30, message="first version applied")

    with clean_db.connect() as locker:
        tx = locker.begin()
        locker.execute(text("SELECT 1 FROM zoho.products WHERE zoho_id = :id FOR UPDATE"), {"id": zoho_id})
        try:
            post_accepted(daemon, "product", make_object("product", zoho_id, minutes=5, name="after"))

            def retried_or_dead():
                i = items(clean_db, "id = 2")[0]
                return (i["status"] == "dead_letter" or i["attempt_count"] >= 2 and i["error_code"] is not None) and i

            failing = wait_until(retried_or_dead, 30, message="the locked update failing and retried")
            assert failing["status"] != "dead_letter", dict(failing)  # transient: retried, not given up
            assert failing["error_code"] == "database_timeout", dict(failing)
            # lock_timeout or statement_timeout, whichever PostgreSQL notices first: both are transient.
            assert "timeout" in failing["error_message"], failing["error_message"]
            assert entity_row(clean_db, "product", zoho_id)["name"] == "before"
        finally:
            tx.rollback()

    # Lock released: the next retry succeeds, with no manual action.
    wait_until(lambda: all_applied(clean_db, 2), 30, message="the retried item completed")
    done = items(clean_db, "id = 2")[0]
    assert done["attempt_count"] > 1 and done["error_code"] is None, dict(done)
    assert entity_row(clean_db, "product", zoho_id)["name"] == "after"
