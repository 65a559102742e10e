"""Pulls in /metrics and in the alerts: runs and objects by outcome, the last success, and `sync_failed`
after consecutive failed pulls of an entity (resolved by a success), named in monitoring/health."""

from __future__ import annotations

from sqlalchemy import text
from support import free_port, start_daemon, wait_until
from support.pull import Tds
from support.sim import ADMIN

from tds_daemon.care import monitoring
from tds_daemon.pull import runs


def open_alerts(engine, type_: str) -> list[dict]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(text("SELECT * FROM tds_alerts WHERE type = :t AND resolved_at IS NULL"),
                                           {"t": type_}).mappings()]


def test_consecutive_failed_pulls_raise_sync_failed_and_a_success_resolves_it(sim, pull_env, engine):
    sim.reset(counts={"product": 30})
    dead = Tds({**pull_env, "TDS_ZOHO_INVENTORY_URL": f"http://127.0.0.1:{free_port()}/inventory/v1",
                "TDS_ZOHO_MAX_ATTEMPTS": "1"})
    try:
        for attempt in range(runs.FAILURES_BEFORE_ALERT):
            assert open_alerts(engine, "sync_failed") == [], attempt
            assert dead.sync("product", "full")["status"] == "failed"
        [alert] = open_alerts(engine, "sync_failed")
        assert alert["entity"] == "product" and "pulls of product failed 3 times in a row" in alert["message"]
        assert "could not connect to Zoho" in alert["message"]
        health = monitoring.assess(engine, dead.config)
        assert alert["message"] in health["reasons"] and health["status"] == "warning", health["reasons"]
    finally:
        dead.close()
    live = Tds(pull_env)
    try:
        assert live.sync("product", "full")["status"] == "succeeded"
        assert open_alerts(engine, "sync_failed") == []
    finally:
        live.close()


def test_metrics_count_pulls_by_outcome_and_say_when_each_last_succeeded(sim, pull_env, engine, processes):
    sim.reset(counts={"product": 30})
    daemon = start_daemon(processes, pull_env)
    run_id = daemon.http.post("/api/tds/sync/product", params={"full": 1}, headers=ADMIN).json()["runs"][0]["id"]
    wait_until(lambda: daemon.http.get(f"/api/tds/runs/{run_id}", headers=ADMIN).json()["status"] == "succeeded",
               30, message="the pull")
    text_ = daemon.http.get("/metrics").text
    assert 'tds_sync_runs_total{entity="product",kind="full",outcome="succeeded"} 1.0' in text_
    assert 'tds_sync_objects_total{entity="product",outcome="created"} 30.0' in text_
    with engine.connect() as c:
        finished = c.execute(text("SELECT finished_at FROM tds_sync_runs WHERE id = :i"), {"i": run_id}).scalar_one()
    line = next(x for x in text_.splitlines()
                if x.startswith('tds_sync_last_success_timestamp_seconds{entity="product",kind="full"}'))
    assert abs(float(line.split()[1]) - finished.timestamp()) < 1
