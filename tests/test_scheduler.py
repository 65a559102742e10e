"""The scheduler of ``tds run``: one leader by a Redis lease, jobs that only send messages, their state.

Schedulers run in this process against the real Redis and the scratch database, each test in a Redis
namespace of its own, with the shortest lease the configuration allows (5 s). Every scheduler a test
makes is stopped by the ``schedulers`` fixture, so no thread outlives its test.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
import uuid

import falcon.testing
import pytest
import redis as redis_lib
from prometheus_client import REGISTRY
from sqlalchemy import text
from support import ADMIN_TOKEN, ROOT, TDS, free_port, holds_for, wait_until
from support.making import made_by

from actors import healer, runtime, worker
from supervisor.scheduler import Scheduler
from tds_daemon import entities
from tds_daemon.api.app import create_app
from tds_daemon.apply.broker import make_broker
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.care.jobs import JOBS, leader_key, read_status
from tds_daemon.config import ConfigError, load

LEASE_S = 5
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
JOBS_PATH = "/api/tds/monitoring/scheduler/jobs"


@pytest.fixture
def make_config(pg_url, redis_url, redis_namespace):
    """Configurations sharing one fresh Redis namespace; keyword arguments set scheduler.* keys."""
    namespace = f"{redis_namespace}_{uuid.uuid4().hex[:8]}"

    def make(redis_url_=redis_url, **scheduler):
        env = {"TDS_DATABASE_URL": pg_url, "TDS_REDIS_URL": redis_url_, "TDS_REDIS_NAMESPACE": namespace,
               "TDS_REDIS_SOCKET_TIMEOUT_S": "1", "TDS_DATABASE_CONNECT_TIMEOUT_S": "2",
               "TDS_API_ADMIN_TOKEN": ADMIN_TOKEN, "TDS_SCHEDULER_LEASE_S": str(LEASE_S)}
        env.update({f"TDS_SCHEDULER_{k.upper()}": str(v) for k, v in scheduler.items()})
        return load(environ=env)

    return make


@pytest.fixture
def rds(redis_url):
    client = redis_lib.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


def _joined(s: Scheduler) -> None:
    assert s._thread is None  # stop() joined its lease thread


@pytest.fixture
def schedulers():
    yield from made_by(Scheduler, Scheduler.stop, _joined)


def leader_of(scheds) -> Scheduler:
    leaders = wait_until(lambda: [s for s in scheds if s.is_leader()], LEASE_S + 2, message="a leader")
    assert len(leaders) == 1, "two leaders"
    return leaders[0]


def dead_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def job_runs(job: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("tds_scheduler_job_runs_total", {"job": job, "outcome": outcome}) or 0.0


def status(config) -> dict[str, dict]:
    client = redis_lib.Redis.from_url(config.redis.url)
    try:
        return read_status(client, config.redis.namespace)
    finally:
        client.close()


def fire(sched: Scheduler, config, job_id: str) -> dict:
    """Run a job now through APScheduler and wait for the run it records."""
    before = status(config).get(job_id, {}).get("last_run")
    assert sched.run_now(job_id)
    return wait_until(lambda: (r := status(config).get(job_id, {})).get("last_run") not in (None, before) and r,
                      10, message=f"{job_id} to record a run")


# --- the lease ---

def test_exactly_one_leader_and_a_dead_leaders_lease_is_taken_over(make_config, schedulers, rds):
    config = make_config()
    a, b = schedulers(config), schedulers(config)
    a.start()
    b.start()
    leader = leader_of([a, b])
    other = b if leader is a else a
    assert rds.get(leader_key(config.redis.namespace)).decode() == leader.instance_id
    assert a.alive() and b.alive()
    # Over more than one renewal the roles hold.
    assert holds_for(lambda: leader.is_leader() and not other.is_leader(), LEASE_S / 3 + 0.5), "the roles changed"

    died = time.monotonic()
    leader.stop(release=False)  # as if killed: the lease stays until it expires
    assert not leader.is_leader()
    wait_until(other.is_leader, LEASE_S + 2, message="the follower to take over")
    took = time.monotonic() - died
    # Within the lease time of its last renewal, plus thread wake-up delays on a busy shared machine.
    assert took <= LEASE_S + 2, took
    assert rds.get(leader_key(config.redis.namespace)).decode() == other.instance_id


def test_a_released_lease_is_taken_at_once(make_config, schedulers, rds):
    config = make_config()
    first = schedulers(config)
    first.start()
    wait_until(first.is_leader, 5, message="the first to lead")
    second = schedulers(config)
    second.start()
    first.stop()
    holder = rds.get(leader_key(config.redis.namespace))
    assert holder in (None, second.instance_id.encode()), (holder, first.instance_id, second.instance_id)
    wait_until(second.is_leader, LEASE_S / 3 + 1, message="the second to lead after a release")


def test_disabled_scheduler_never_leads(make_config, schedulers, rds):
    s = schedulers(make_config(enabled="false"))
    s.start()
    assert s.alive() and not s.is_leader()
    assert rds.get(leader_key(s.config.redis.namespace)) is None


def test_reload_turns_the_scheduler_off_and_on(make_config, schedulers, rds):
    s = schedulers(make_config())
    s.start()
    wait_until(s.is_leader, 5, message="leader")
    s.reschedule(make_config(enabled="false"))
    assert not s.is_leader() and s.alive()
    assert rds.get(leader_key(s.config.redis.namespace)) is None
    s.reschedule(make_config())
    wait_until(s.is_leader, 5, message="leader again")
    assert s.alive()


# --- jobs ---

def test_fired_jobs_queue_runs_and_send_messages_and_are_recorded(make_config, schedulers, clean_db, rds):
    config = make_config()
    s = schedulers(config)
    s.start()
    wait_until(s.is_leader, 5, message="leader")
    ns = config.redis.namespace
    ok_before = job_runs("incremental_sync", "ok")

    record = fire(s, config, "incremental_sync")
    assert record["outcome"] == "ok" and record["error"] is None
    assert dt.datetime.fromisoformat(record["next_run"]) > dt.datetime.fromisoformat(record["last_run"])
    assert job_runs("incremental_sync", "ok") == ok_before + 1
    with clean_db.connect() as c:
        rows = c.execute(text("SELECT entity_type, kind, origin, status, dispatched_at FROM tds_sync_runs")).all()
    # The hourly incremental pulls the often-changing entities (pull_tier "hot"); the others have their jobs.
    assert sorted(r.entity_type for r in rows) == sorted(e.name for e in entities.ENTITIES if e.pull_tier == "hot")
    assert {(r.kind, r.origin, r.status) for r in rows} == {("incremental", "scheduler", "queued")}
    assert all(r.dispatched_at is not None for r in rows)
    assert rds.llen(f"{ns}:tds.sync") == len(rows)

    fire(s, config, "stock_sync")
    fire(s, config, "stock_sync")  # the first is still queued (no worker here): not queued twice
    with clean_db.connect() as c:
        stock = c.execute(text("SELECT entity_type FROM tds_sync_runs WHERE kind = 'stock'")).scalars().all()
    assert stock == ["product"]

    assert fire(s, config, "healing")["outcome"] == "ok"
    assert fire(s, config, "statistics")["outcome"] == "ok"
    assert rds.llen(f"{ns}:tds.healer") == 1 and rds.llen(f"{ns}:tds.stats") == 1


def test_a_send_failure_is_an_error_outcome_and_the_scheduler_goes_on(make_config, schedulers, clean_db):
    config = make_config()
    down = Dispatcher(make_broker(make_config(redis_url_=dead_port_url())), origin="scheduler")
    s = schedulers(config, dispatcher=down)
    s.start()
    wait_until(s.is_leader, 5, message="leader")
    errors_before = job_runs("healing", "error")

    record = fire(s, config, "healing")
    assert record["outcome"] == "error" and "broker unavailable" in record["error"]
    assert job_runs("healing", "error") == errors_before + 1

    record = fire(s, config, "stock_sync")
    assert record["outcome"] == "error" and "not sent" in record["error"]
    with clean_db.connect() as c:  # the run is kept; the workers' recovery sends it
        assert c.execute(text("SELECT dispatched_at FROM tds_sync_runs WHERE kind = 'stock'")).all() == [(None,)]
    assert s.alive() and s.is_leader()


def test_disabled_jobs_and_reschedule(make_config, schedulers, rds):
    config = make_config(healing="off", statistics="30 4 * * *")
    s = schedulers(config)
    s.start()
    wait_until(s.is_leader, 5, message="leader")
    jobs = wait_until(lambda: len(r := status(config)) == len(JOBS) and r, 5, message="job records")
    assert jobs["healing"] == {"trigger": "off", "next_run": None}
    assert not s.run_now("healing")
    stats_next = dt.datetime.fromisoformat(jobs["statistics"]["next_run"])
    assert (stats_next.hour, stats_next.minute, stats_next.utcoffset()) == (4, 30, dt.timedelta(0))

    s.reschedule(make_config(healing="*/5 * * * *", statistics="45 5 * * *", full_sync="off",
                             timezone="Europe/Berlin", lease_s=LEASE_S + 3))
    jobs = status(config)
    stats_next = dt.datetime.fromisoformat(jobs["statistics"]["next_run"])
    assert (stats_next.hour, stats_next.minute) == (5, 45)
    assert stats_next.utcoffset() in (dt.timedelta(hours=1), dt.timedelta(hours=2))  # Berlin
    assert jobs["healing"]["trigger"] == "*/5 * * * *"
    assert dt.datetime.fromisoformat(jobs["healing"]["next_run"]).minute % 5 == 0
    assert jobs["full_sync"] == {"trigger": "off", "next_run": None}
    assert s.run_now("healing") and not s.run_now("full_sync")
    # The new lease time applies at once.
    wait_until(lambda: rds.pttl(leader_key(config.redis.namespace)) > LEASE_S * 1000, 5, message="longer lease")
    assert s.is_leader()


def test_a_new_leader_runs_once_what_fell_due_during_the_takeover(make_config, schedulers):
    config = make_config()
    s = schedulers(config)
    s.start()
    wait_until(s.is_leader, 5, message="leader")
    wait_until(lambda: len(status(config)) == len(JOBS), 5, message="job records")
    s.stop(release=True)
    # The previous leader recorded a next run that is now past: it died just before running it.
    client = redis_lib.Redis.from_url(config.redis.url)
    due = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)).isoformat()
    client.hset(f"{config.redis.namespace}:scheduler:jobs", "statistics",
                f'{{"trigger": "0 3 * * *", "next_run": "{due}"}}')
    client.close()

    successor = schedulers(config)
    successor.start()
    record = wait_until(lambda: (r := status(config)["statistics"]).get("last_run") and r, 10,
                        message="the missed run")
    assert record["outcome"] == "ok"
    assert dt.datetime.fromisoformat(record["next_run"]).hour == 3


# --- the API ---

@pytest.fixture
def app_for(engine, tmp_path, monkeypatch):
    """The API's Falcon app in this process (its /metrics resource wants a multiprocess directory)."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return lambda config: falcon.testing.TestClient(create_app(config, engine=engine))


def test_jobs_endpoint(make_config, schedulers, app_for):
    config = make_config(healing="off")
    client = app_for(config)
    assert client.simulate_get(JOBS_PATH).status_code == 401

    r = client.simulate_get(JOBS_PATH, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json["leader"] is None and r.json["timezone"] == "UTC"
    by_id = {j["id"]: j for j in r.json["jobs"]}
    assert list(by_id) == [j.id for j in JOBS]
    assert by_id["full_sync"] == {"id": "full_sync", "name": JOBS[0].name, "trigger": "0 2 * * *", "enabled": True,
                                  "next_run": None, "last_run": None, "last_outcome": None, "last_error": None}
    assert by_id["healing"]["trigger"] == "off" and by_id["healing"]["enabled"] is False

    s = schedulers(config)
    s.start()
    wait_until(s.is_leader, 5, message="leader")
    fire(s, config, "statistics")
    r = client.simulate_get(JOBS_PATH, headers=ADMIN)
    assert r.json["leader"] == s.instance_id
    stats_job = next(j for j in r.json["jobs"] if j["id"] == "statistics")
    assert stats_job["last_outcome"] == "ok" and stats_job["last_run"] and stats_job["next_run"]
    assert stats_job["enabled"] is True and stats_job["last_error"] is None


def test_jobs_endpoint_without_redis_is_503(make_config, app_for):
    client = app_for(make_config(redis_url_=dead_port_url()))
    r = client.simulate_get(JOBS_PATH, headers=ADMIN)
    assert r.status_code == 503 and r.json["error"] == "redis_unavailable" and r.headers["Retry-After"]


# --- configuration ---

@pytest.mark.parametrize("key,value,why", [
    ("full_sync", "0 25 * * *", "higher than the maximum"),
    ("stock_sync", "*/15 * *", "Wrong number of fields"),
    ("statistics", "0 3 * * 0", "by name"),  # APScheduler 3 would read 0 as Monday
    ("healing", "0 0 31 2 *", "never fires"),
    ("timezone", "Mars/Olympus", "IANA time zone"),
    ("lease_s", "2", "between 5 and 600"),
])
def test_bad_scheduler_settings_are_refused_by_name(key, value, why):
    with pytest.raises(ConfigError) as info:
        load(environ={f"TDS_SCHEDULER_{key.upper()}": value})
    [(name, reason)] = info.value.problems
    assert name == f"scheduler.{key}" and why in reason


def test_off_and_names_are_accepted_and_check_config_names_a_bad_crontab(tmp_path):
    c = load(environ={"TDS_SCHEDULER_HEALING": "off", "TDS_SCHEDULER_STOCK_SYNC": "",
                      "TDS_SCHEDULER_FULL_SYNC": "30 1 * * mon-fri"})
    assert (c.scheduler.healing, c.scheduler.full_sync) == ("off", "30 1 * * mon-fri")
    path = tmp_path / "tds.toml"
    path.write_text('[scheduler]\nenabled = true\nincremental_sync = "every hour"\n')
    bad = subprocess.run([*TDS, "check-config", "--config", str(path)], capture_output=True, text=True, cwd=ROOT,
                         env={"PATH": "/usr/bin:/bin"}, timeout=30)
    assert bad.returncode == 1 and "scheduler.incremental_sync" in bad.stderr and "Traceback" not in bad.stderr


# --- the actors the jobs send to ---

def test_worker_declares_the_healer_and_stats_actors(make_config, monkeypatch):
    monkeypatch.setattr(runtime, "_current", None)
    broker, _ = worker.build(make_config())
    try:
        assert {"heal", "collect_stats"} <= set(broker.get_declared_actors())
        assert {"tds.healer", "tds.stats"} <= set(broker.get_declared_queues())
    finally:
        runtime.get().engine.dispose()
        broker.client.close()


def test_healer_actor_redispatches_a_lost_item_and_stores_its_report(make_config, clean_db, rds, monkeypatch):
    config = make_config()
    rt = runtime.Runtime(config, clean_db, Dispatcher(make_broker(config), origin="recovery"))
    monkeypatch.setattr(runtime, "_current", rt)
    with clean_db.begin() as c:  # an accepted item whose message never reached Redis
        event_id = c.execute(text(
            "INSERT INTO tds_inbox_events (entity_type, zoho_id, event_type, idempotency_key, payload) "
            "VALUES ('product', '1', 'updated', :key, '{}') RETURNING id"), {"key": uuid.uuid4().hex}).scalar_one()
        c.execute(text("INSERT INTO tds_sync_queue (event_id, entity_type, zoho_id) VALUES (:e, 'product', '1')"),
                  {"e": event_id})
    try:
        healer.heal()  # as the scheduler sends it: no arguments
    finally:
        rt.dispatcher.broker.client.close()
    with clean_db.connect() as c:
        assert c.execute(text("SELECT dispatched_at IS NOT NULL FROM tds_sync_queue")).scalar_one()
        origin, report = c.execute(text("SELECT origin, report FROM tds_healer_runs")).one()
    assert rds.llen(f"{config.redis.namespace}:{entities.BY_NAME['product'].queue}") == 1
    assert origin == "scheduler" and report["redispatched"]["lost_pending"] == 1, report
