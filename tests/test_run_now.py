"""`POST /api/tds/monitoring/scheduler/jobs/{id}/run`: each scheduled job, run now from a real daemon as the
scheduler would run it, does its work against the simulator; the job's record says so."""

from __future__ import annotations

import json

import redis
from sqlalchemy import text
from support import start_daemon, wait_until
from support.sim import ADMIN

from tds_daemon import entities
from tds_daemon.care.jobs import JOBS


def count(engine, sql: str) -> int:
    with engine.connect() as c:
        return c.execute(text(sql)).scalar_one()


def runs_of(engine, kind: str) -> set[str]:
    with engine.connect() as c:
        return set(c.execute(text("SELECT entity_type FROM tds_sync_runs WHERE kind = :k AND origin = 'scheduler' "
                                  "AND status = 'succeeded'"), {"k": kind}).scalars())


def test_every_job_runs_now_as_the_scheduler_would(sim, pull_env, engine, processes):
    sim.reset(scale=0.01)
    # The backfill takes half of each app's minute: lift the pace, this test is about what each job does.
    daemon = start_daemon(processes, {**pull_env, "TDS_ZOHO_REQUESTS_PER_MINUTE": "2000"})
    http = daemon.http
    detail_key = f"{pull_env['TDS_REDIS_NAMESPACE']}:detail:last"
    rds = redis.Redis.from_url(pull_env["TDS_REDIS_URL"])
    tiers = {t: {e.name for e in entities.ENTITIES if e.pull_tier == t} for t in ("hot", "warm")}
    done = {
        "full_sync": lambda: runs_of(engine, "full") == {e.name for e in entities.ENTITIES},
        # An incremental with nothing to start from is done as a full pull, and recorded as one.
        "incremental_sync": lambda: runs_of(engine, "full") >= tiers["hot"],
        "incremental_sync_warm": lambda: runs_of(engine, "full") >= tiers["warm"],
        "stock_sync": lambda: runs_of(engine, "stock") == {"product"},
        "healing": lambda: count(engine, "SELECT count(*) FROM tds_healer_runs") == 1,
        "statistics": lambda: count(engine, "SELECT count(*) FROM tds_stats_runs") == 1,
        # The pulls above started a backfill by themselves; this one reads nothing or waits its turn.
        "detail_backfill": lambda: (rds.get(detail_key) or b"").find(b'"stopped": "done"') >= 0
        and count(engine, "SELECT count(*) FROM zoho.invoices WHERE detail_state <> 'current'") == 0,
    }
    assert set(done) == {j.id for j in JOBS}, "a job without a check here"
    order = ["incremental_sync", "incremental_sync_warm", "full_sync", "stock_sync", "detail_backfill", "healing",
             "statistics"]
    for job_id in order:
        r = http.post(f"/api/tds/monitoring/scheduler/jobs/{job_id}/run", headers=ADMIN)
        assert r.status_code == 202, r.text
        assert r.json()["job"] == job_id
        wait_until(done[job_id], 60, interval=0.2, message=f"{job_id} done")
    assert json.loads(rds.get(detail_key))["read"] >= 0
    jobs = {j["id"]: j for j in http.get("/api/tds/monitoring/scheduler/jobs", headers=ADMIN).json()["jobs"]}
    for job_id in order:
        assert jobs[job_id]["last_outcome"] == "ok" and jobs[job_id]["last_run"], jobs[job_id]
    metrics = http.get("/metrics").text
    assert 'tds_scheduler_job_runs_total{job="statistics",outcome="ok"} 1.0' in metrics
    assert http.post("/api/tds/monitoring/scheduler/jobs/nope/run", headers=ADMIN).status_code == 404
    assert http.post("/api/tds/monitoring/scheduler/jobs/healing/run").status_code == 401
    rds.close()
