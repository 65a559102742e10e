"""The daily budget of Zoho calls and Zoho's concurrency cap, held by real processes against the simulator.

The simulator counts what reached it (its ``/_sim/stats``): that is what these tests hold TDS to, not
TDS's own count.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text
from sqlalchemy.engine import make_url
from support import TDS, start_daemon, wait_until, web
from support.pull import cli
from support.sim import ADMIN, ALL
from support.tcp_proxy import TcpProxy

from tds_daemon.apply.broker import redis_client
from tds_daemon.config import load
from tds_daemon.pull.zoho import budget as budget_module
from tds_daemon.pull.zoho.budget import Budget
from tds_daemon.pull.zoho.slots import Slots
from tds_daemon.simulator.zohotime import ORG_TZ
from tds_daemon.store.db import make_engine


def api_requests(sim) -> int:
    stats = sim.stats()["apps"]
    return stats["books"]["requests"] + stats["inventory"]["requests"]


def metric(daemon, name: str) -> float:
    for line in daemon.http.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_a_budget_of_n_is_never_exceeded_by_the_daemon(sim, pull_env, engine, processes):
    sim.reset()  # 13 entities, 30-odd pages in all: far more than the budget
    budget = 12
    daemon = start_daemon(processes, {**pull_env, "TDS_ZOHO_DAILY_BUDGET": str(budget)})
    r = daemon.http.post("/api/tds/sync/all", params={"full": 1}, headers=ADMIN)
    assert r.status_code == 202, r.text

    def all_done():
        with engine.connect() as c:
            return c.execute(text("SELECT count(*) FROM tds_sync_runs WHERE status IN ('queued', 'running')")
                             ).scalar_one() == 0
    wait_until(all_done, 90, interval=0.2, message="every run to end")
    assert api_requests(sim) == budget, "exactly the budget reached Zoho: no call past it"
    with engine.connect() as c:
        runs = c.execute(text("SELECT entity_type, status, error FROM tds_sync_runs")).all()
        alert = c.execute(text("SELECT message FROM tds_alerts WHERE type = 'budget_spent' AND resolved_at IS NULL")
                          ).scalar_one()
    refused = [r for r in runs if r.status in ("failed", "skipped")]
    assert refused and all("daily Zoho budget spent" in r.error for r in refused), runs
    assert any(r.status == "skipped" for r in refused), "a run refused before its first call never began"
    assert "zoho.daily_budget=12" in alert
    assert metric(daemon, "tds_zoho_calls_today") == budget
    assert metric(daemon, "tds_zoho_budget_remaining") == 0
    status = cli(daemon.env, "status")
    assert status.returncode == 0 and "Zoho calls today: 12 of 12" in status.stdout, status.stdout
    # A new day (here: a larger budget after a reload) lets scheduled work spend again: the healer resolves it.
    from tds_daemon.care import healing

    assert not healing.resolve_budget_alert(engine, load(environ=daemon.env))
    assert healing.resolve_budget_alert(engine, load(environ={**daemon.env, "TDS_ZOHO_DAILY_BUDGET": "13"}))


def test_zoho_remaining_lower_than_the_local_count_wins(sim, tds):
    sim.reset()
    # Other integrations of the company spent 995 of the organization's 1,000 calls today.
    sim.faults(daily_limit=1000, daily_used=995)
    for name in ALL:
        tds.sync(name, "full")
    stats = sim.stats()
    assert api_requests(sim) == 5, "TDS stopped when Zoho said nothing was left"
    assert stats["apps"]["books"]["limited"] == stats["apps"]["inventory"]["limited"] == 0, "never refused by Zoho"
    state = Budget.from_config(tds.config, redis_client(tds.config)).state()
    assert state.used == 5 and state.budget == 1000
    assert state.zoho_remaining == 0 and state.remaining == 0


def test_a_manual_sync_is_counted_and_allowed_past_the_budget_with_a_warning(sim, pull_env):
    sim.reset(counts={"product": 700})  # 4 pages
    r = cli({**pull_env, "TDS_ZOHO_DAILY_BUDGET": "2"}, "sync", "product", "--full")
    assert r.returncode == 0, r.stderr
    assert "past the daily Zoho budget" in r.stderr and r.stderr.count("past the daily") == 1
    config = load(environ=pull_env)
    assert Budget.from_config(config, redis_client(config)).state().by_purpose["manual"] == api_requests(sim) >= 4


def test_the_backfill_leaves_the_scheduled_jobs_their_reserve(pull_env):
    config = load(environ={**pull_env, "TDS_ZOHO_DAILY_BUDGET": "10"})
    budget = Budget.from_config(config, redis_client(config))
    # No yesterday: half the budget is kept for scheduled work.
    granted = sum(budget.spend("backfill").granted for _ in range(8))
    assert granted == 5 and budget.state().backfill_left == 0
    assert sum(budget.spend("scheduled").granted for _ in range(8)) == 5
    assert budget.state().remaining == 0 and not budget.spend("scheduled").granted
    assert budget.spend("manual").granted


def test_the_concurrency_cap_holds_across_two_processes(sim, pull_env, engine, processes):
    sim.reset(scale=0.01, counts={"customer": 2000, "product": 2000})  # 10 pages each, Books and Inventory
    # Zoho enforces 2 in flight too: a TDS that sent a third would be answered 429.
    sim.faults(latency_ms=150, max_concurrency=2)
    env = {**pull_env, "TDS_ZOHO_MAX_CONCURRENCY": "2"}
    procs = [processes.start(f"sync-{e}", [*TDS, "sync", e, "--full"], env=env) for e in ("customer", "product")]
    for proc in procs:
        proc.wait(timeout=120)
        assert proc.returncode == 0, processes.output(proc)
    stats = sim.stats()
    assert stats["max_concurrent"] == 2, stats  # both processes kept it full, and never past it
    assert stats["concurrency_limited"] == 0, stats


def test_a_killed_process_holds_its_slot_only_until_the_lease_ends(pull_env):
    config = load(environ=pull_env)
    client = redis_client(config)
    slots = Slots(client, config.redis.namespace, 1, lease_s=0.5)
    assert slots.try_acquire() is not None  # never released: its process "died"
    assert slots.try_acquire() is None
    started = time.monotonic()
    with slots.slot(timeout=5):
        waited = time.monotonic() - started
    assert waited < 2, waited
    assert slots.in_flight() == 0


def test_metrics_name_the_budget(sim, pull_env, processes):
    daemon = start_daemon(processes, {**pull_env, "TDS_ZOHO_DAILY_BUDGET": "777"})
    text_ = web.get(f"{daemon.base_url}/metrics", timeout=10).text
    assert "tds_zoho_calls_today 0.0" in text_ and "tds_zoho_budget_remaining 777.0" in text_


# --------------------------------------------------------------- the day's count where Redis cannot lose it

def forget_redis(config) -> None:
    """What a Redis restart or ``FLUSHDB`` does to this TDS: every key of its namespace gone (the server is
    shared with other test sessions, so never FLUSHDB itself)."""
    client = redis_client(config)
    try:
        keys = list(client.scan_iter(match=f"{config.redis.namespace}:*", count=1000))
        assert keys, "there was something to lose"
        client.delete(*keys)
    finally:
        client.close()


def saved_calls(engine) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT purpose, sum(calls) FROM tds_zoho_calls GROUP BY 1")).all())


def test_a_flush_of_redis_gives_no_second_days_budget(pull_env, engine, api):
    config = load(environ={**pull_env, "TDS_ZOHO_DAILY_BUDGET": "5"})
    budget = Budget.from_config(config, redis_client(config), engine)
    assert all(budget.spend("scheduled").granted for _ in range(3))
    forget_redis(config)
    other = Budget.from_config(config, redis_client(config), engine)  # another process's, after the flush
    assert other.state().used == 3 and other.state().remaining == 2
    assert [other.spend("scheduled").granted for _ in range(4)] == [True, True, False, False]
    forget_redis(config)
    state = budget.state()
    assert (state.used, state.remaining, state.backfill_left) == (5, 0, 0)
    assert not budget.spend("scheduled").granted and not budget.spend("backfill").granted
    assert budget.spend("manual").granted, "an operator's call is still allowed, and counted"
    assert budget.state().by_purpose == {"scheduled": 5, "backfill": 0, "manual": 1} == {**saved_calls(engine),
                                                                                          "backfill": 0}
    forget_redis(config)
    metrics = api().simulate_get("/metrics").text
    assert "tds_zoho_calls_today 6.0" in metrics, "what /metrics, the dashboard and tds status show"


def test_postgresql_unreachable_redis_decides_and_the_calls_are_saved_later(pull_env, engine, pg_url, monkeypatch):
    monkeypatch.setattr(budget_module, "DB_RETRY_S", 0.0)  # ask PostgreSQL again at the next call
    with TcpProxy("127.0.0.1", make_url(pg_url).port or 5432) as proxy:
        proxied = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
        config = load(environ={**pull_env, "TDS_ZOHO_DAILY_BUDGET": "3", "TDS_DATABASE_URL": proxied})
        cut = make_engine(config, pool_size=1)
        try:
            budget = Budget.from_config(config, redis_client(config), cut)
            assert budget.spend("scheduled").granted and saved_calls(engine) == {"scheduled": 1}
            proxy.stop()
            assert [budget.spend("scheduled").granted for _ in range(3)] == [True, True, False]
            assert budget.state().used == 3, "Redis's figure stands while PostgreSQL cannot be read"
            assert saved_calls(engine) == {"scheduled": 1}
            proxy.start()
            assert budget.spend("manual").granted
            assert saved_calls(engine) == {"scheduled": 3, "manual": 1}, "the calls Redis alone counted, saved"
        finally:
            cut.dispose()


# --------------------------------------------------------------------------------- Zoho's 429s

def test_a_call_zoho_answers_429_costs_one_unit_however_often_it_waits(sim, tds):
    sim.faults(latency_ms=400, max_concurrency=1)  # the second of two calls at once is answered 429 code 1070
    client = tds.client()
    client.tokens.token()  # both calls start at once: neither waits for the token
    start = threading.Barrier(2)

    def call(_):
        start.wait(timeout=10)
        return client.get("books", "/users")

    with ThreadPoolExecutor(2) as pool:
        assert all(body["code"] == 0 for body in pool.map(call, range(2)))
    stats = sim.stats()
    assert stats["concurrency_limited"] == 1 and api_requests(sim) == 3, stats
    state = Budget.from_config(tds.config, redis_client(tds.config), tds.engine).state()
    assert state.used == 2 and saved_calls(tds.engine) == {"scheduled": 2}, "two calls, one of them waited out"


def next_midnight(tz) -> dt.datetime:
    now = dt.datetime.now(tz)
    return dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tz)


def test_zohos_daily_quota_refusal_stops_background_work_until_its_reset(sim, tds):
    sim.faults(daily_limit=50, daily_used=50)  # the company's other integrations spent the day
    run = tds.sync("customer", "full")
    assert run["status"] == "failed" and "daily API quota for the organization is spent" in run["error"], run
    assert "resets at" in run["error"]
    assert api_requests(sim) == 1, "refused once, then stopped: no wait, no retry"
    budget = Budget.from_config(tds.config, redis_client(tds.config), tds.engine)
    assert budget.state().used == 1, "one HTTP call, counted once"
    with tds.engine.connect() as c:
        until = c.execute(text("SELECT max(until) FROM tds_zoho_quota_stops")).scalar_one()
    assert abs((until - next_midnight(ORG_TZ)).total_seconds()) < 5, "the stop lasts until Zoho's reset"
    forget_redis(tds.config)  # a flush does not lift it
    skipped = tds.sync("invoice", "full")
    assert skipped["status"] == "skipped" and "daily Zoho budget spent" in skipped["error"], skipped
    assert not budget.spend("backfill").granted and not budget.spend("scheduled").granted
    assert api_requests(sim) == 1, "no background call reached Zoho after its refusal"
    state = budget.state()
    assert (state.used, state.zoho_remaining, state.remaining) == (1, 0, 0)


def test_tds_sync_says_in_one_line_when_zohos_daily_quota_resets(sim, pull_env):
    sim.faults(daily_limit=50, daily_used=50)
    r = cli(pull_env, "sync", "product")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert "daily API quota for the organization is spent" in line and "resets at" in line, line
    utc = re.search(r"\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\)", line)
    assert utc, line
    resets = dt.datetime.strptime(utc.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs((resets - next_midnight(ORG_TZ)).total_seconds()) < 5, line
    r = cli(pull_env, "sync", "all")  # every entity refused for one reason: said once
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert line.count("daily API quota for the organization is spent") == 1 and "resets at" in line, line
