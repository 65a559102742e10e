"""The healer, proven with real PostgreSQL, real Redis (a private redis-server where a test flushes it) and real
TDS processes: a flushed broker loses nothing, stuck items go again, the dead-letter policy, queue alerts, and
the stored report behind ``POST /api/tds/auto-healing/run``.

In-process runs call ``tds_daemon.care.healing.run`` with the configuration a TDS process would load; nothing
consumes their messages unless the test starts a worker, so what the healer sent is read back from Redis.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from support import (
    ADMIN_TOKEN,
    TDS,
    all_applied,
    free_port,
    queue_counts,
    start_daemon,
    start_private_redis,
    wait_until,
)
from support.making import made_by
from support.zoho_objects import make_object

from tds_daemon import entities
from tds_daemon.apply.broker import make_broker
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.care import healing
from tds_daemon.config import load
from tds_daemon.store.db import make_engine

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# --- helpers ---



_ADD = text("""
WITH ev AS (
    INSERT INTO tds_inbox_events (entity_type, zoho_id, event_type, idempotency_key, payload)
    SELECT :entity, o->>:id_field, 'updated', gen_random_uuid()::text, jsonb_build_object(:key, o)
    FROM jsonb_array_elements(CAST(:objects AS jsonb)) o
    RETURNING id, zoho_id
)
INSERT INTO tds_sync_queue (event_id, entity_type, zoho_id, status, attempt_count, dispatched_at, lease_until,
                            last_failed_at, error_code, error_message)
SELECT id, :entity, zoho_id, :status, :attempts,
       CASE WHEN :dispatched THEN now() END,
       CASE WHEN :status = 'processing' THEN now() + make_interval(secs => :lease_in_s) END,
       CASE WHEN :status = 'dead_letter' THEN now() - make_interval(secs => :failed_ago_s) END,
       CASE WHEN :status = 'dead_letter' THEN 'database_unavailable' END,
       CASE WHEN :status = 'dead_letter' THEN 'gave up' END
FROM ev
RETURNING id
""")


def add_items(engine, entity: str, n: int, *, status: str = "pending", dispatched: bool = False, attempts: int = 0,
              lease_in_s: int = 0, failed_ago_s: int = 0) -> list[int]:
    """``n`` accepted events of ``entity`` (real Zoho-shaped objects a worker can apply) and their items."""
    spec = entities.get(entity)
    objects = [make_object(entity) for _ in range(n)]
    with engine.begin() as c:
        return sorted(c.execute(_ADD, {
            "entity": entity, "id_field": spec.id_field, "key": spec.object_key, "objects": json.dumps(objects),
            "status": status, "attempts": attempts, "dispatched": dispatched, "lease_in_s": lease_in_s,
            "failed_ago_s": failed_ago_s}).scalars())


def item_states(engine, ids: list[int]) -> dict[int, str]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT id, status FROM tds_sync_queue WHERE id = ANY(:ids)"), {"ids": ids}).all())


def open_alerts(engine) -> dict[str, dict]:
    with engine.connect() as c:
        return {r["type"]: dict(r) for r in c.execute(text(
            "SELECT * FROM tds_alerts WHERE resolved_at IS NULL")).mappings()}


class Healer:
    """Healer runs in this process, with the configuration ``env`` gives a TDS process."""

    def __init__(self, env: dict[str, str], **overrides: str):
        self.config = load(environ={**env, **overrides})
        self.engine = make_engine(self.config, pool_size=2, application_name="tds-test-healer")
        self.dispatcher = Dispatcher(make_broker(self.config), origin="test")
        self.redis = self.dispatcher.broker.client

    def run(self) -> dict:
        return healing.run(self.engine, self.dispatcher, self.config, "cli")

    def sent(self, entity: str) -> list[int]:
        """Item ids of the messages Redis holds for the entity's queue."""
        ns, queue = self.config.redis.namespace, entities.get(entity).queue
        return sorted(i for v in self.redis.hvals(f"{ns}:{queue}.msgs") for i in json.loads(v)["args"][0])

    def close(self) -> None:
        self.redis.close()
        self.engine.dispose()


@pytest.fixture
def healers():
    yield from made_by(Healer, Healer.close)


# --- a lost Redis loses nothing ---

@pytest.mark.timeout(240)
def test_flushdb_with_500_pending_items_the_healer_restores_all_500(processes, env, engine, healers):
    port = free_port()
    start_private_redis(processes, port)
    env = {**env, "TDS_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    h = healers(env)
    # 500 accepted events, stored and sent as intake does it, while no worker runs.
    counts = {"product": 200, "customer": 150, "invoice": 150}
    ids = {entity: add_items(engine, entity, n, dispatched=True) for entity, n in counts.items()}
    for entity, item_ids in ids.items():
        assert h.dispatcher.send_items(engine, [(i, entity) for i in item_ids]) == []
        assert h.sent(entity) == item_ids
    h.redis.flushdb()  # Redis restarted empty: every message is gone
    assert all(h.sent(entity) == [] for entity in counts)

    # The workers run, but nothing reaches them: no message, and their own sweep would wait an hour.
    daemon = start_daemon(processes, env, TDS_WORKERS_REDISPATCH_AFTER_S="3600", TDS_WORKERS_LEASE_S="600")
    try:
        assert queue_counts(engine) == {"pending": 500}
        assert daemon.http.post("/api/tds/auto-healing/run").status_code == 401
        r = daemon.http.post("/api/tds/auto-healing/run", headers=ADMIN, timeout=60)
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["origin"] == "api" and report["lost_messages"] == {"items": 500, "runs": 0}, report
        assert report["redispatched"]["lost_pending"] == 500 and report["dispatch_failed"] == 0, report
        # (the workers start on them at once: some may be applied before the run counts the queue)
        assert report["errors"] == [] and report["queue"]["pending"] <= 500, report
        assert report["queue"]["failed"] == report["queue"]["dead_letter"] == 0, report

        # Every one of the 500 ends applied, once.
        wait_until(lambda: all_applied(engine, 500), 120, interval=0.5, message="500 items completed")
        with engine.connect() as c:
            for entity, n in counts.items():
                table = entities.get(entity).table
                assert c.execute(text(f"SELECT count(*) FROM zoho.{table}")).scalar_one() == n

        # The run's stored report is what the POST answered; a second run finds nothing lost.
        again = daemon.http.post("/api/tds/auto-healing/run", headers=ADMIN, timeout=60).json()
        assert again["lost_messages"] == {"items": 0, "runs": 0} and sum(again["redispatched"].values()) == 0
        runs = daemon.http.get("/api/tds/auto-healing/runs", headers=ADMIN, params={"limit": 5}).json()["runs"]
        assert [run["id"] for run in runs] == [again["id"], report["id"]]
        assert runs[1] == report
    finally:
        daemon.http.close()


@pytest.mark.timeout(120)
def test_an_item_stuck_in_processing_past_its_lease_is_dispatched_again(processes, env, engine, healers):
    h = healers(env)
    [stuck] = add_items(engine, "product", 1, status="processing", attempts=1, lease_in_s=-120, dispatched=True)
    [hopeless] = add_items(engine, "product", 1, status="processing", attempts=10, lease_in_s=-120, dispatched=True)
    [working] = add_items(engine, "product", 1, status="processing", attempts=1, lease_in_s=600, dispatched=True)
    report = h.run()
    assert report["redispatched"]["expired_leases"] == 1 and report["buried"] == 1, report
    assert item_states(engine, [stuck, hopeless, working]) == {
        stuck: "pending", hopeless: "dead_letter", working: "processing"}
    assert h.sent("product") == [stuck]

    # A worker applies it (its own sweep would wait an hour: the message the healer sent is what it gets).
    processes.start("worker", [*TDS, "worker"], env={**env, "TDS_WORKERS_REDISPATCH_AFTER_S": "3600"})
    wait_until(lambda: item_states(engine, [stuck])[stuck] == "completed", 60, interval=0.2,
               message="the stuck item applied")


def test_dead_letter_policy_old_enough_attempts_left_oldest_first_batch_per_run(env, engine, healers):
    h = healers(env, TDS_HEALER_DEAD_LETTER_BATCH="2")
    day = 86400
    [oldest] = add_items(engine, "customer", 1, status="dead_letter", attempts=2, failed_ago_s=day + 3 * 3600)
    [older] = add_items(engine, "customer", 1, status="dead_letter", attempts=2, failed_ago_s=day + 2 * 3600)
    [old] = add_items(engine, "customer", 1, status="dead_letter", attempts=9, failed_ago_s=day + 3600)
    [spent] = add_items(engine, "customer", 1, status="dead_letter", attempts=10, failed_ago_s=5 * day)
    [recent] = add_items(engine, "customer", 1, status="dead_letter", attempts=1, failed_ago_s=3600)

    first = h.run()
    assert first["dead_letters_retried"] == 2 and first["dispatch_failed"] == 0, first
    assert item_states(engine, [oldest, older, old]) == {oldest: "pending", older: "pending", old: "dead_letter"}
    assert h.sent("customer") == [oldest, older]
    second = h.run()
    assert second["dead_letters_retried"] == 1 and item_states(engine, [old]) == {old: "pending"}, second
    third = h.run()
    assert third["dead_letters_retried"] == 0, third
    # Ten attempts in all, or a last failure under 24 h ago: left alone.
    assert item_states(engine, [spent, recent]) == {spent: "dead_letter", recent: "dead_letter"}
    assert h.sent("customer") == [oldest, older, old]
    with engine.connect() as c:  # a retry keeps the count: the worker's claim adds the next attempt
        assert c.execute(text("SELECT attempt_count FROM tds_sync_queue WHERE id = :i"), {"i": old}).scalar_one() == 9


def test_queue_depth_and_dead_letter_alerts_raised_at_thresholds_and_resolved_when_cleared(env, engine, healers):
    h = healers(env, TDS_MONITORING_PENDING_WARNING="2", TDS_MONITORING_PENDING_CRITICAL="4",
                TDS_MONITORING_DEAD_LETTER_WARNING="0", TDS_MONITORING_DEAD_LETTER_CRITICAL="1")
    pending = add_items(engine, "product", 2)
    assert h.run()["alerts"] == {"raised": [], "resolved": []}  # 2 is not more than 2
    assert open_alerts(engine) == {}

    pending += add_items(engine, "product", 1)
    dead = add_items(engine, "invoice", 1, status="dead_letter", attempts=1, failed_ago_s=60)
    report = h.run()
    raised = {a["type"]: a for a in report["alerts"]["raised"]}
    assert (raised["queue_depth"]["severity"], raised["queue_depth"]["count"]) == ("warning", 3), report
    assert (raised["dead_letters"]["severity"], raised["dead_letters"]["count"]) == ("warning", 1), report

    pending += add_items(engine, "product", 2)
    dead += add_items(engine, "invoice", 1, status="dead_letter", attempts=1, failed_ago_s=60)
    report = h.run()
    assert {a["type"]: a["severity"] for a in report["alerts"]["raised"]} == {
        "queue_depth": "critical", "dead_letters": "critical"}, report
    alerts = open_alerts(engine)
    assert alerts["queue_depth"]["severity"] == "critical" and alerts["queue_depth"]["count"] == 2
    assert "5 pending sync items" in alerts["queue_depth"]["message"]
    assert alerts["dead_letters"]["details"] == {"count": 2, "warning": 0, "critical": 1}

    with engine.begin() as c:  # the workers catch up; the dead letters are replayed and applied
        c.execute(text("UPDATE tds_sync_queue SET status = 'completed', outcome = 'created', completed_at = now() "
                       "WHERE id = ANY(:ids)"), {"ids": pending + dead})
    report = h.run()
    assert report["alerts"] == {"raised": [], "resolved": ["queue_depth", "dead_letters"]}, report
    assert report["queue"] == {"pending": 0, "processing": 0, "failed": 0, "dead_letter": 0}
    assert open_alerts(engine) == {}
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM tds_alerts WHERE resolved_at IS NOT NULL")).scalar_one() == 2


def test_redis_down_during_a_run_items_stay_pending_and_the_report_says_so(env, engine, healers):
    h = healers(env, TDS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    never_sent = add_items(engine, "product", 3)
    lost = add_items(engine, "product", 2, dispatched=True)
    [stuck] = add_items(engine, "product", 1, status="processing", attempts=1, lease_in_s=-60, dispatched=True)
    report = h.run()
    assert report["dispatch_failed"] == 4 and report["redispatched"]["expired_leases"] == 1, report
    assert any("Redis unavailable" in e for e in report["errors"]), report
    assert any("dispatch failed for 4" in e for e in report["errors"]), report
    with engine.connect() as c:
        rows = dict(c.execute(text("SELECT id, (status, dispatched_at IS NULL)::text FROM tds_sync_queue")).all())
    # All in PostgreSQL, pending; the ones the run tried to send are marked unsent for the next sweep.
    assert {i: rows[i] for i in never_sent + [stuck]} == {i: "(pending,t)" for i in never_sent + [stuck]}
    assert {i: rows[i] for i in lost} == {i: "(pending,f)" for i in lost}  # not looked at: Redis did not answer
    with engine.connect() as c:
        stored = c.execute(text("SELECT origin, report FROM tds_healer_runs")).one()
    assert stored.origin == "cli" and stored.report == {k: v for k, v in report.items() if k != "id"}


def test_a_sync_run_left_running_by_a_dead_worker_is_failed_as_abandoned(env, engine, healers):
    from tds_daemon.pull import runs
    from tds_daemon.pull.pulls import ABANDONED_AFTER_S

    h = healers(env)
    dead, alive = (runs.create(engine, "product", "full", origin="cli") for _ in range(2))
    for run_id in (dead, alive):
        runs.start(engine, run_id)
    with engine.begin() as c:  # the dead one's worker was killed long enough ago; the live one beats
        c.execute(text("UPDATE tds_sync_runs SET started_at = now() - make_interval(secs => :s), "
                       "heartbeat_at = now() - make_interval(secs => :s) WHERE id = :id"),
                  {"s": ABANDONED_AFTER_S + 60, "id": dead})
    report = h.run()
    assert report["abandoned_runs"] == 1, report
    after = {r: runs.get(engine, r) for r in (dead, alive)}
    assert after[dead]["status"] == "failed" and after[dead]["error"].startswith("abandoned: no progress for")
    assert after[dead]["finished_at"] is not None
    assert after[alive]["status"] == "running"
    assert h.run()["abandoned_runs"] == 0


def test_retention_deletes_what_is_old_and_done_and_never_work_not_done(env, engine, healers):
    from tds_daemon.guard import alerts
    from tds_daemon.pull import runs

    h = healers(env, TDS_HEALER_RETAIN_DAYS="30")
    old_done = add_items(engine, "product", 3, status="completed")
    new_done = add_items(engine, "product", 2, status="completed")
    old_dead = add_items(engine, "product", 1, status="dead_letter", attempts=10, failed_ago_s=90 * 86400)
    old_run, new_run = (runs.create(engine, "product", "full", origin="cli") for _ in range(2))
    for run_id in (old_run, new_run):
        runs.finish(engine, run_id, "succeeded", {})
    alerts.raise_alert(engine, "queue_depth", "warning", "old condition")
    alerts.resolve(engine, "queue_depth")
    with engine.begin() as c:
        c.execute(text("UPDATE tds_sync_queue SET completed_at = now() - interval '31 days' WHERE id = ANY(:ids)"),
                  {"ids": old_done})
        c.execute(text("UPDATE tds_sync_queue SET completed_at = now() - interval '29 days' WHERE id = ANY(:ids)"),
                  {"ids": new_done})
        c.execute(text("UPDATE tds_sync_queue SET created_at = now() - interval '90 days' WHERE id = ANY(:ids)"),
                  {"ids": old_dead})
        c.execute(text("UPDATE tds_sync_runs SET finished_at = now() - interval '31 days' WHERE id = :id"),
                  {"id": old_run})
        c.execute(text("UPDATE tds_alerts SET resolved_at = now() - interval '31 days'"))
        events = dict(c.execute(text("SELECT id, event_id FROM tds_sync_queue WHERE id = ANY(:ids)"),
                                {"ids": old_done + new_done}).all())

    report = h.run()
    assert report["pruned"] == {"completed_items": 3, "sync_runs": 1, "healer_runs": 0, "resolved_alerts": 1,
                                "events": 0, "image_files": 0}, report
    with engine.connect() as c:
        left = set(c.execute(text("SELECT id FROM tds_sync_queue")).scalars())
        left_events = set(c.execute(text("SELECT id FROM tds_inbox_events")).scalars())
        left_runs = set(c.execute(text("SELECT id FROM tds_sync_runs")).scalars())
    assert left == set(new_done + old_dead)  # the dead letter stays, however old
    assert {events[i] for i in old_done}.isdisjoint(left_events) and {events[i] for i in new_done} <= left_events
    assert left_runs == {new_run}
    assert h.run()["pruned"]["completed_items"] == 0
