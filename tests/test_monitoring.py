"""``GET /api/tds/monitoring/health``, the alerts API and the alerts in ``tds status``.

The API runs in this process (``falcon.testing``) against the scratch database and the test Redis;
queue rows are inserted directly, since what is tested is how they are counted and judged.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from sqlalchemy import text
from support import ADMIN_TOKEN, ROOT, TDS, free_port
from support.db import Sql, add_items

from tds_daemon import entities
from tds_daemon.config import ConfigError, load
from tds_daemon.guard import alerts

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HEALTH = "/api/tds/monitoring/health"


def health(client) -> dict:
    r = client.simulate_get(HEALTH, headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json


# ---------------------------------------------------------------------------------------------- health

def test_health_needs_the_admin_token(api, clean_db):
    assert api().simulate_get(HEALTH).status_code == 401


def test_healthy_on_an_empty_queue(api, clean_db):
    h = health(api())
    assert h["status"] == "healthy" and h["reasons"] == []
    assert h["queue"] == {"pending": 0, "processing": 0, "completed": 0, "failed": 0, "dead_letter": 0}
    assert h["by_entity"]["product"] == h["queue"] and len(h["by_entity"]) == len(entities.ENTITIES)
    assert h["success_rate_24h"] is None
    assert h["alerts"] == {"open": 0, "critical": 0, "warning": 0, "info": 0, "items": []}
    assert h["thresholds"]["pending"] == {"warning": 1000, "critical": 5000}
    assert h["thresholds"]["dead_letter"] == {"warning": 50, "critical": 100}
    assert h["checked_at"]


def test_dead_letter_thresholds(api, clean_db):
    client = api(dead_letter_warning=1, dead_letter_critical=3)
    add_items(clean_db, "completed", 40)
    add_items(clean_db, "dead_letter", 1, entity="invoice")
    h = health(client)
    assert h["status"] == "healthy", h["reasons"]  # 1 is not more than 1; 40 of 41 is 97.6 %
    assert h["queue"]["dead_letter"] == 1 and h["by_entity"]["invoice"]["dead_letter"] == 1
    assert h["success_rate_24h"] == round(40 / 41, 4)

    add_items(clean_db, "dead_letter", 1)
    h = health(client)
    assert h["status"] == "warning" and h["queue"]["dead_letter"] == 2
    assert any("2 dead letters" in r and "monitoring.dead_letter_warning" in r for r in h["reasons"]), h["reasons"]

    add_items(clean_db, "dead_letter", 2)
    h = health(client)
    assert h["status"] == "critical" and h["queue"]["dead_letter"] == 4
    assert "monitoring.dead_letter_critical" in h["reasons"][0]
    assert h["thresholds"]["dead_letter"] == {"warning": 1, "critical": 3}


def test_pending_thresholds(api, clean_db):
    client = api(pending_warning=2, pending_critical=4)
    add_items(clean_db, "pending", 3)
    add_items(clean_db, "processing", 5)  # not pending: not counted against the pending thresholds
    h = health(client)
    assert h["status"] == "warning" and h["queue"]["pending"] == 3 and h["queue"]["processing"] == 5
    add_items(clean_db, "pending", 2, entity="customer")
    h = health(client)
    assert h["status"] == "critical" and h["queue"]["pending"] == 5
    assert h["by_entity"]["customer"]["pending"] == 2 and h["by_entity"]["product"]["pending"] == 3


def test_degraded_by_success_rate_and_by_retries(api, clean_db):
    client = api()
    add_items(clean_db, "completed", 19)
    add_items(clean_db, "dead_letter", 1)
    assert health(client)["status"] == "healthy"  # exactly 95 %
    # A failure older than 24 h does not count against today's rate.
    add_items(clean_db, "dead_letter", 3, last_failed_at=Sql("now() - interval '25 hours'"))
    assert health(client)["success_rate_24h"] == 0.95

    add_items(clean_db, "dead_letter", 1)
    h = health(client)
    assert h["status"] == "degraded" and h["success_rate_24h"] == round(19 / 21, 4)
    assert h["reasons"] == ["success rate of the last 24 h is 90.5%, below 95% (21 items finished)"]

    with clean_db.begin() as c:
        c.execute(text("UPDATE tds_sync_queue SET status = 'completed', completed_at = now() "
                       "WHERE status = 'dead_letter'"))
    add_items(clean_db, "failed", 1)
    h = health(client)
    assert h["status"] == "degraded" and h["queue"]["failed"] == 1
    assert h["reasons"] == ["1 item(s) failed and waiting for a retry"]


def test_open_alerts_set_the_status_until_resolved(api, clean_db):
    client = api()
    alerts.raise_alert(clean_db, "queue_depth", "warning", "1,200 pending items", entity="product")
    h = health(client)
    assert h["status"] == "warning" and h["alerts"]["open"] == 1 and h["alerts"]["warning"] == 1
    assert h["alerts"]["items"][0]["type"] == "queue_depth" and h["alerts"]["items"][0]["entity"] == "product"

    critical = alerts.raise_alert(clean_db, "dead_letters", "critical", "120 dead letters")
    h = health(client)
    assert h["status"] == "critical" and h["alerts"]["critical"] == 1 and h["alerts"]["open"] == 2
    assert h["reasons"][0] == "1 open critical alert(s)"

    alerts.acknowledge(clean_db, critical)
    assert health(client)["status"] == "critical"  # acknowledged is not resolved
    alerts.resolve(clean_db, "dead_letters")
    alerts.resolve(clean_db, "queue_depth", entity="product")
    h = health(client)
    assert h["status"] == "healthy" and h["alerts"]["open"] == 0


def test_redis_down_is_critical(api, clean_db):
    h = health(api(redis_url_=f"redis://127.0.0.1:{free_port()}/0"))
    assert h["status"] == "critical"
    assert any(r.startswith("Redis does not answer") for r in h["reasons"]), h["reasons"]


def test_thresholds_are_checked_in_pairs():
    with pytest.raises(ConfigError) as e:
        load(environ={"TDS_MONITORING_PENDING_WARNING": "5000", "TDS_MONITORING_DEAD_LETTER_WARNING": "200"})
    assert [k for k, _ in e.value.problems] == ["monitoring.pending_warning", "monitoring.dead_letter_warning"]
    assert "must be below monitoring.pending_critical" in e.value.problems[0][1]
    config = load(environ={"TDS_MONITORING_DEAD_LETTER_WARNING": "0", "TDS_MONITORING_DEAD_LETTER_CRITICAL": "1"})
    assert config.monitoring.dead_letter_warning == 0 and config.monitoring.pending_critical == 5000


# ---------------------------------------------------------------------------------------------- alerts API

def test_alerts_list_newest_first_by_status(api, clean_db):
    client = api()
    assert client.simulate_get("/api/tds/alerts").status_code == 401
    assert client.simulate_get("/api/tds/alerts", headers=ADMIN).json == {"alerts": [], "count": 0}

    first = alerts.raise_alert(clean_db, "queue_depth", "warning", "many pending", entity="product",
                               details={"pending": 1200})
    second = alerts.raise_alert(clean_db, "dead_letters", "critical", "many dead letters")
    gone = alerts.raise_alert(clean_db, "config_reload_refused", "warning", "bad file")
    alerts.resolve(clean_db, "config_reload_refused")
    alerts.raise_alert(clean_db, "queue_depth", "critical", "more pending", entity="product")  # same condition

    r = client.simulate_get("/api/tds/alerts", headers=ADMIN)
    assert r.status_code == 200 and r.json["count"] == 2
    newest = r.json["alerts"][0]
    assert [a["id"] for a in r.json["alerts"]] == [first, second]  # first was seen again last
    assert newest == {**newest, "type": "queue_depth", "severity": "critical", "entity": "product",
                      "message": "more pending", "details": None, "count": 2, "acknowledged_at": None,
                      "resolved_at": None}
    assert newest["first_seen_at"] <= newest["last_seen_at"]
    assert set(newest) == {"id", "type", "severity", "entity", "message", "details", "count", "first_seen_at",
                           "last_seen_at", "acknowledged_at", "resolved_at"}

    resolved = client.simulate_get("/api/tds/alerts", params={"status": "resolved"}, headers=ADMIN).json
    assert [a["id"] for a in resolved["alerts"]] == [gone] and resolved["alerts"][0]["resolved_at"]
    everything = client.simulate_get("/api/tds/alerts", params={"status": "all"}, headers=ADMIN).json
    assert {a["id"] for a in everything["alerts"]} == {first, second, gone}
    one = client.simulate_get("/api/tds/alerts", params={"status": "all", "limit": "1"}, headers=ADMIN).json
    assert [a["id"] for a in one["alerts"]] == [first]

    bad = client.simulate_get("/api/tds/alerts", params={"status": "closed"}, headers=ADMIN)
    assert bad.status_code == 400 and bad.json["error"] == "invalid_status"
    assert client.simulate_get("/api/tds/alerts", params={"limit": "0"}, headers=ADMIN).status_code == 400


def test_acknowledge_is_idempotent_and_404_for_unknown(api, clean_db):
    client = api()
    alert_id = alerts.raise_alert(clean_db, "dead_letters", "warning", "60 dead letters")
    path = f"/api/tds/alerts/{alert_id}/acknowledge"
    assert client.simulate_post(path).status_code == 401

    r = client.simulate_post(path, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json["id"] == alert_id and r.json["acknowledged_at"] and r.json["resolved_at"] is None
    again = client.simulate_post(path, headers=ADMIN)
    assert again.status_code == 200 and again.json["acknowledged_at"] == r.json["acknowledged_at"]
    listed = client.simulate_get("/api/tds/alerts", headers=ADMIN).json["alerts"]
    assert listed[0]["id"] == alert_id and listed[0]["acknowledged_at"] == r.json["acknowledged_at"]

    for unknown in (alert_id + 1000, 2**63 + 5):
        r = client.simulate_post(f"/api/tds/alerts/{unknown}/acknowledge", headers=ADMIN)
        assert r.status_code == 404 and r.json["error"] == "unknown_alert", r.text
    r = client.simulate_post("/api/tds/alerts/abc/acknowledge", headers=ADMIN)
    assert r.status_code == 404 and "error" in r.json


# ---------------------------------------------------------------------------------------------- tds status

def tds_status(env: dict[str, str], *args: str) -> str:
    r = subprocess.run([*TDS, "status", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_status_shows_open_alerts(migrated, clean_db):
    assert "open alerts: none" in tds_status(migrated)
    alerts.raise_alert(clean_db, "dead_letters", "critical", "120 dead letters")
    alerts.raise_alert(clean_db, "queue_depth", "warning", "1,200 pending items", entity="product")
    alerts.raise_alert(clean_db, "queue_depth", "warning", "1,300 pending items", entity="product")
    out = tds_status(migrated)
    assert "open alerts: 2 (critical 1, warning 1, info 0)" in out
    assert "warning  queue_depth [product]: 1,300 pending items (x2," in out
    assert "critical dead_letters: 120 dead letters (x1," in out
    doc = json.loads(tds_status(migrated, "--json"))
    assert doc["alerts"]["open"] == 2 and doc["alerts"]["critical"] == 1
    assert [a["type"] for a in doc["alerts"]["items"]] == ["queue_depth", "dead_letters"]
    assert doc["entities"]["product"]["queue"]["pending"] == 0


def test_status_shows_circuit_breakers(migrated, clean_db):
    from tds_daemon.config import load
    from tds_daemon.guard.breakers import NAMES, Breakers, redis_for_breakers

    config = load(environ=migrated)
    client = redis_for_breakers(config)
    breaker = Breakers.from_config(config, client).get("entity:product")
    try:
        breaker.trip("test: tripped by hand")
        out = tds_status(migrated)
        assert f"circuit breakers: {len(NAMES) - 1} of {len(NAMES)} closed" in out
        assert "entity:product: open until " in out and "test: tripped by hand" in out
        states = {b["name"]: b["state"] for b in json.loads(tds_status(migrated, "--json"))["breakers"]}
        assert states["entity:product"] == "open" and states["zoho:books"] == "closed"
    finally:
        breaker.reset()
        client.close()
    # Redis gone: the rest of the status still shows, and says it does not know the breakers.
    env = {**migrated, "TDS_REDIS_URL": "redis://127.0.0.1:1/0"}
    assert "circuit breakers: unknown (Redis does not answer)" in tds_status(env)


def test_status_shows_the_last_healer_and_stats_runs(migrated, clean_db):
    with clean_db.begin() as c:
        c.execute(text("DELETE FROM tds_healer_runs"))
        c.execute(text("DELETE FROM tds_stats_runs"))
    out = tds_status(migrated)
    assert "last healer run: never" in out and "last stats run: never" in out
    with clean_db.begin() as c:
        c.execute(text("INSERT INTO tds_healer_runs (origin, started_at, finished_at, report) VALUES ('api', now(), "
                       "now(), CAST(:r AS jsonb))"),
                  {"r": json.dumps({"redispatched": {"lost_pending": 2, "expired_leases": 1, "failed_due": 0,
                                                     "runs": 0}, "dead_letters_retried": 3, "errors": []})})
        c.execute(text("INSERT INTO tds_stats_runs (origin, started_at, finished_at, overall_match, report) "
                       "VALUES ('api', now(), now(), 97.22, '{}')"))
    out = tds_status(migrated)
    assert "(sent again 3, dead letters retried 3, errors 0)" in out
    assert "(overall match 97.22%)" in out
    doc = json.loads(tds_status(migrated, "--json"))
    assert doc["healer"]["sent_again"] == 3 and doc["stats"]["overall_match"] == 97.22
