"""The HTTP edges a new user hit, against live ``tds api`` processes: deep bodies, refused webhooks in the log,
bad ids and parameters, PostgreSQL or Redis down, health on few items, bulk syncs sent together."""

from __future__ import annotations

import concurrent.futures
import json
import logging

import falcon.inspect
import pytest
from sqlalchemy import text
from support import ADMIN_TOKEN, WEBHOOK_TOKEN, free_port, start_api, wait_until
from support.db import add_items

from tds_daemon import entities
from tds_daemon.api.app import create_app
from tds_daemon.api.refusals import RefusalLog
from tds_daemon.config import load

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
HOOK = {"X-TDS-Webhook-Token": WEBHOOK_TOKEN, "Content-Type": "application/json"}
SAMPLE = {"run_id": "1", "alert_id": "1", "item_id": "1", "job_id": "healing", "name": "zoho:books",
          "entity": "products", "what": "products", "check": "orphans"}


@pytest.fixture(scope="module")
def live_api(module_processes, migrated):
    a = start_api(module_processes, migrated)
    yield a
    a.http.close()


def stored_events(engine) -> int:
    with engine.connect() as c:
        return c.execute(text("SELECT count(*) FROM tds_inbox_events")).scalar_one()


# ------------------------------------------------------------------------------------------- webhooks

def test_a_body_nested_too_deep_is_400_and_nothing_is_stored(live_api, clean_db):
    for depth in (100_000, 1_000):
        body = b'{"item": {"item_id": "1", "x": ' + b"[" * depth + b"]" * depth + b"}}"
        r = live_api.http.post("/api/tds/webhooks/products", content=body, headers=HOOK)
        assert r.status_code == 400 and r.json()["error"] == "too_deep", (depth, r.text)
    form = "JSONString=" + "[" * 5000 + "]" * 5000
    r = live_api.http.post("/api/tds/webhooks/products", content=form,
                      headers={**HOOK, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400, r.text
    assert stored_events(clean_db) == 0
    # Deep, but within what can be stored: accepted as any other.
    ok = {"item": {"item_id": "2", "x": json.loads("[" * 200 + "]" * 200)}}
    assert live_api.http.post("/api/tds/webhooks/products", json=ok, headers=HOOK).status_code == 202


def test_refused_webhooks_are_logged_once_per_reason_without_token_or_body(processes, migrated, clean_db):
    api = start_api(processes, migrated)  # its own process: the rate limit starts empty
    secret, marker = "wrong-token-8c1f", "payload-marker-5d2e"
    body = json.dumps({"item": {"item_id": "9", "name": marker}})
    for _ in range(3):
        r = api.http.post("/api/tds/webhooks/products", content=body, params={"token": secret},
                          headers={"Content-Type": "application/json"})
        assert r.status_code == 401 and r.json()["error"] == "token_invalid"
    for _ in range(2):
        assert api.http.post("/api/tds/webhooks/widgets", content=body, headers=HOOK).status_code == 404
    assert api.http.post("/api/tds/webhooks/products", content=body,
                         headers={**HOOK, "Content-Type": "text/plain"}).status_code == 415

    def lines() -> list[str]:
        return [line for line in api.output().splitlines() if "webhook refused" in line]

    wait_until(lambda: len(lines()) >= 3, 10, message="the refusals logged")
    got = lines()
    assert len(got) == 3, got  # one per reason, the repeats within a minute counted, not logged
    by_reason = {r: [line for line in got if f"reason={r} " in line]
                 for r in ("token_invalid", "unknown_entity", "unsupported_media_type")}
    assert all(len(v) == 1 for v in by_reason.values()), got
    assert " WARNING " in by_reason["token_invalid"][0] and "status=401" in by_reason["token_invalid"][0]
    assert "entity=product client=127.0.0.1" in by_reason["token_invalid"][0], got
    assert "entity=widgets client=127.0.0.1" in by_reason["unknown_entity"][0], got
    out = api.output()
    assert secret not in out and marker not in out and WEBHOOK_TOKEN not in out


def test_refusal_log_counts_what_it_does_not_log(caplog):
    now = [1000.0]
    refusals = RefusalLog(interval_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="tds_daemon.api.webhooks"):
        assert refusals.note(401, "token_invalid", "product", "10.0.0.1")
        assert not refusals.note(401, "token_invalid", "product", "10.0.0.2")
        assert not refusals.note(401, "token_invalid", "customer", "10.0.0.3")
        assert refusals.note(404, "unknown_entity", "bad\nentity x", "10.0.0.1", forwarded="203.0.113.9, 10.0.0.1")
        now[0] += 61
        assert refusals.note(401, "token_invalid", "product", "10.0.0.4")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3, messages
    assert "entity=bad?entity?x client=10.0.0.1 forwarded_for=203.0.113.9" in messages[1], messages
    assert "client=10.0.0.4 (and 2 more for this reason since its last line, not logged)" in messages[2], messages


# ------------------------------------------------------------------------------ ids and query parameters

def test_bad_ids_are_404_and_bad_parameters_400_naming_them(live_api, clean_db):
    get, post = live_api.http.get, live_api.http.post
    for path, code in (("/api/tds/runs/abc", "unknown_run"), ("/api/tds/runs/-1", "unknown_run"),
                       ("/api/tds/runs/99999999999999999999", "unknown_run")):
        r = get(path, headers=ADMIN)
        assert r.status_code == 404 and r.json()["error"] == code, (path, r.text)
        assert "positive whole numbers" in r.json()["message"], r.text
    r = post("/api/tds/alerts/abc/acknowledge", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "unknown_alert" and "'abc'" in r.json()["message"], r.text

    for method, path, params, name in (
            ("GET", "/api/tds/runs", {"entity": "nosuch"}, "entity"),
            ("POST", "/api/tds/stats/run", {"entity": "nosuch"}, "entity"),
            ("GET", "/api/tds/alerts", {"status": "closed"}, "status"),
            ("POST", "/api/tds/sync/products", {"kind": "everything"}, "kind")):
        r = live_api.http.request(method, path, params=params, headers=ADMIN)
        assert r.status_code == 400, (path, r.text)
        message = r.json()["message"]
        assert f"{name}=" in message and "known values" in message, message
    assert "product" in get("/api/tds/runs", params={"entity": "nosuch"}, headers=ADMIN).json()["message"]
    for path in ("/api/tds/runs", "/api/tds/alerts", "/api/tds/stats", "/api/tds/auto-healing/runs"):
        for bad in ("abc", "0", "100000"):
            r = get(path, params={"limit": bad}, headers=ADMIN)
            assert r.status_code == 400 and r.json()["error"] == "invalid_parameter", (path, bad, r.text)
            assert '"limit"' in r.json()["message"], r.text


# ------------------------------------------------------------------------ PostgreSQL and Redis not there

def admin_operations(env) -> list[tuple[str, str]]:
    """Every admin (method, path) the app routes, path parameters filled with plausible values."""
    app = create_app(load(environ=env))
    out = []
    for route in falcon.inspect.inspect_app(app).routes:
        path = route.path
        if not path.startswith(("/api/tds/", "/api/zoho/")) or path.startswith("/api/tds/webhooks/"):
            continue
        for key, value in SAMPLE.items():
            path = path.replace("{" + key + "}", value)
        out += [(m.method, path) for m in route.methods if not m.internal]
    return out


# What needs Redis and nothing of PostgreSQL: 503 when Redis is down, answered as usual when PostgreSQL is.
REDIS_ONLY = {("GET", "/api/tds/circuit-breakers"), ("GET", "/api/tds/monitoring/scheduler/jobs"),
              ("POST", "/api/tds/stats/run"), ("POST", "/api/tds/circuit-breakers/zoho:books/reset"),
              ("POST", "/api/tds/monitoring/scheduler/jobs/healing/run")}


def test_postgresql_down_is_503_with_retry_after_on_every_admin_endpoint(module_processes, migrated, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    dead = f"postgresql+psycopg2://127.0.0.1:{free_port()}/tds"
    down = start_api(module_processes, migrated, TDS_DATABASE_URL=dead)
    operations = admin_operations(migrated)
    assert len(operations) >= 20 and ("GET", "/api/tds/runs/1") in operations
    wrong = []
    for method, path in operations:
        # A body that passes validation, so that the database is reached.
        body = {"all": True} if path.endswith("/replay") else {"item_ids": ["1"]} if path.endswith("/specific") \
            else None
        r = down.http.request(method, path, headers=ADMIN, json=body)
        if (method, path) in REDIS_ONLY:
            if r.status_code >= 500:
                wrong.append(f"{method} {path}: {r.status_code} {r.text[:200]}")
            continue
        if r.status_code != 503 or not r.headers.get("Retry-After") or r.json().get("error") != "database_unavailable":
            wrong.append(f"{method} {path}: {r.status_code} {r.headers.get('Retry-After')} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
    for path in ("/health/ready", "/api/tds/webhooks/health"):
        assert down.http.get(path).status_code == 503
    r = down.http.post("/api/tds/webhooks/products", json={"item": {"item_id": "1"}}, headers=HOOK)
    assert r.status_code == 503 and r.headers["Retry-After"], r.text
    assert "Traceback" not in down.output()


def test_redis_down_is_503_where_redis_is_needed(module_processes, migrated, clean_db, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    down = start_api(module_processes, migrated, TDS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    for method, path in sorted(REDIS_ONLY):
        r = down.http.request(method, path, headers=ADMIN)
        assert r.status_code == 503 and r.headers.get("Retry-After"), (method, path, r.text)
        assert r.json()["error"] in ("redis_unavailable", "broker_unavailable", "job_not_sent"), r.text
    health = down.http.get("/api/tds/monitoring/health", headers=ADMIN)
    assert health.status_code == 200 and health.json()["status"] == "critical", health.text
    assert down.http.get("/api/tds/runs", headers=ADMIN).status_code == 200
    r = down.http.post("/api/tds/webhooks/products", json={"item": {"item_id": "1"}}, headers=HOOK)
    assert r.status_code == 202, r.text  # stored in PostgreSQL; dispatched when Redis is back


# ------------------------------------------------------------------------------------ health, bulk syncs

def test_few_finished_items_do_not_make_health_degraded(live_api, clean_db):
    add_items(clean_db, "completed", 5)
    add_items(clean_db, "dead_letter", 1)
    h = live_api.http.get("/api/tds/monitoring/health", headers=ADMIN).json()
    assert h["status"] == "healthy" and h["success_rate_24h"] == round(5 / 6, 4), h
    assert h["thresholds"]["success_rate_24h"] == {"degraded_below": 0.95, "min_items": 20}
    add_items(clean_db, "completed", 13)
    add_items(clean_db, "dead_letter", 1)
    h = live_api.http.get("/api/tds/monitoring/health", headers=ADMIN).json()
    assert h["status"] == "degraded" and "(20 items finished)" in h["reasons"][0], h


def test_bulk_syncs_sent_together_queue_one_run_per_entity(live_api, clean_db):
    paths = ["/api/zoho/bulk-sync/products", "/api/zoho/bulk-sync/items-with-stock", "/api/zoho/bulk-sync/sync-all",
             "/api/tds/sync/products?full=1"]
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        answers = list(pool.map(lambda p: live_api.http.post(p, headers=ADMIN), paths))
    assert all(r.status_code == 202 for r in answers), [r.text for r in answers]
    product_runs = {run["id"] for r in answers for run in r.json()["runs"] if run["entity"] == "product"}
    assert len(product_runs) == 1, [r.json() for r in answers]
    assert sum(not run["reused"] for r in answers for run in r.json()["runs"] if run["entity"] == "product") == 1
    with clean_db.connect() as c:
        queued = dict(c.execute(text("SELECT entity_type, count(*) FROM tds_sync_runs WHERE kind = 'full' "
                                     "GROUP BY 1")).all())
    assert queued == {e.name: 1 for e in entities.ENTITIES}, queued
    # Another kind is another run.
    r = live_api.http.post("/api/tds/sync/products", params={"kind": "stock"}, headers=ADMIN)
    assert r.status_code == 202 and r.json()["runs"][0]["id"] not in product_runs


def test_values_postgresql_cannot_take_are_4xx(live_api, clean_db):
    for body in ({"item": {"item_id": "a\u0000b"}}, {"item": {"item_id": "1", "name": "x\u0000y"}}):
        r = live_api.http.post("/api/tds/webhooks/products", json=body, headers=HOOK)
        assert 400 <= r.status_code < 500, r.text
    assert live_api.http.get("/api/tds/images/a%00b", headers=ADMIN).status_code == 404
    r = live_api.http.post("/api/tds/dead-letter/replay", json={"ids": [2**63 + 1]}, headers=ADMIN)
    assert r.status_code < 500, r.text
    assert stored_events(clean_db) == 0
