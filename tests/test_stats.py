"""The stats run, proven against the Zoho simulator over real HTTP, real PostgreSQL, Redis and a running ``tds run``:
rows deleted locally lower the entity's match, raise ``stats_mismatch`` and queue a repair sync; a worker runs the
repair, the rows are back, and the next run (queued through ``POST /api/tds/stats/run``) resolves the alert.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from support import ADMIN_TOKEN, free_port, start_daemon, wait_until, web
from support.making import made_by

from tds_daemon.apply.broker import make_broker
from tds_daemon.apply.dispatch import Dispatcher
from tds_daemon.care import stats
from tds_daemon.config import load
from tds_daemon.pull import detail
from tds_daemon.store.db import make_engine

SEED = 11
COUNTS = {"product": 120, "customer": 90}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NO_FAULTS = {"error_rate": 0, "latency_ms": 0, "down": "", "rate_limit": 0, "daily_limit": 0, "refresh_limit": 0}


@pytest.fixture
def stats_env(pull_env, sim_base):
    """``pull_env`` with fresh simulator data: a small seed of its own (``COUNTS``)."""
    with web.Client(base_url=sim_base, timeout=30) as sim:
        assert sim.post("/_sim/faults", json=NO_FAULTS).status_code == 200
        assert sim.post("/_sim/reset", json={"seed": SEED, "scale": 0.01, "counts": COUNTS}).json()["counts"][
            "product"] == COUNTS["product"]
    return {**pull_env, "TDS_ZOHO_REQUESTS_PER_MINUTE": "1000"}


class Stats:
    """Stats runs in this process, with the configuration ``env`` gives a TDS process."""

    def __init__(self, env: dict[str, str], **overrides: str):
        self.config = load(environ={**env, **overrides})
        self.engine = make_engine(self.config, pool_size=2, application_name="tds-test-stats")
        self.dispatcher = Dispatcher(make_broker(self.config), origin="test")

    def run(self, *names: str) -> dict:
        return stats.run(self.config, self.engine, self.dispatcher, "cli", list(names) or None)

    def close(self) -> None:
        self.dispatcher.broker.client.close()
        self.engine.dispose()


@pytest.fixture
def make_stats():
    yield from made_by(Stats, Stats.close)


def live(engine, table: str) -> int:
    with engine.connect() as c:
        return c.execute(text(f"SELECT count(*) FROM zoho.{table} WHERE deleted_at IS NULL")).scalar_one()


def run_row(engine, run_id: int) -> dict:
    with engine.connect() as c:
        return dict(c.execute(text("SELECT * FROM tds_sync_runs WHERE id = :i"), {"i": run_id}).mappings().one())


def alerts_of(engine, type_: str) -> list[dict]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(text("SELECT * FROM tds_alerts WHERE type = :t ORDER BY id"),
                                           {"t": type_}).mappings()]


@pytest.mark.timeout(240)
def test_rows_deleted_locally_alert_and_the_repair_sync_restores_them(processes, stats_env, engine, make_stats):
    daemon = start_daemon(processes, stats_env)
    try:
        http = daemon.http
        # A full sync of both entities, executed by the daemon's workers.
        started = [http.post(f"/api/tds/sync/{e}", params={"full": "1"}, headers=ADMIN).json()["runs"][0]["id"]
                   for e in COUNTS]
        wait_until(lambda: all(run_row(engine, i)["status"] == "succeeded" for i in started), 90, interval=0.2,
                   message="the full syncs")
        assert (live(engine, "products"), live(engine, "customers")) == (120, 90)
        # The pulls started the detail backfill, which rewrites each row with its whole object: let it finish,
        # or it would undo the drift below before the stats run sees it.
        wait_until(lambda: detail.progress_report(engine, load(environ=stats_env), None)["waiting"] == 0, 120,
                   interval=0.3, message="the backfill")

        # Drift: 12 products gone here (still in Zoho), one customer's name changed here.
        with engine.begin() as c:
            gone = c.execute(text("DELETE FROM zoho.products WHERE zoho_id IN (SELECT zoho_id FROM zoho.products "
                                  "ORDER BY zoho_id LIMIT 12) RETURNING zoho_id")).scalars().all()
            changed = c.execute(text("UPDATE zoho.customers SET contact_name = 'not in zoho' WHERE zoho_id = "
                                     "(SELECT min(zoho_id) FROM zoho.customers) RETURNING zoho_id")).scalar_one()
        assert len(gone) == 12

        first = make_stats(stats_env).run("product", "customer")
        product, customer = first["entities"]["product"], first["entities"]["customer"]
        assert (product["zoho_count"], product["local_count"], product["matched"]) == (120, 108, 108), product
        assert product["match_pct"] == 90.0 and product["sampled"] == 120 and product["error"] is None, product
        assert {"zoho_id": min(gone), "why": "missing locally"} in product["mismatches"], product
        assert (customer["zoho_count"], customer["local_count"], customer["matched"]) == (90, 90, 89), customer
        assert customer["match_pct"] == round(100 * 89 / 90, 2) and customer["repair_run_id"] is None, customer
        assert {"zoho_id": changed, "why": "field contact_name differs"} in customer["mismatches"], customer
        assert first["overall_match"] == round(100 * (108 + 89) / (120 + 90), 2), first
        [raised] = first["alerts"]["raised"]
        assert (raised["entity"], raised["match_pct"]) == ("product", 90.0), first
        [alert] = alerts_of(engine, "stats_mismatch")
        assert alert["entity"] == "product" and alert["resolved_at"] is None and "90.0%" in alert["message"]
        assert alert["details"]["repair_run_id"] == product["repair_run_id"]

        # The repair: a full sync of products, queued as the scheduler queues them, run by a worker.
        repair = product["repair_run_id"]
        assert first["repairs"] == [{"entity": "product", "run_id": repair}]
        assert (run_row(engine, repair)["kind"], run_row(engine, repair)["origin"]) == ("full", "stats")
        wait_until(lambda: run_row(engine, repair)["status"] == "succeeded", 90, interval=0.2, message="the repair")
        assert live(engine, "products") == 120

        # The next run, queued through the API and run by the stats actor: the alert is resolved.
        assert http.post("/api/tds/stats/run").status_code == 401
        assert http.post("/api/tds/stats/run", params={"entity": "nope"}, headers=ADMIN).status_code == 400
        r = http.post("/api/tds/stats/run", params={"entity": "products"}, headers=ADMIN)
        assert r.status_code == 202, r.text
        assert r.json() == {"status": "accepted", "queued": {"queue": "tds.stats", "actor": "collect_stats",
                                                              "origin": "api", "entities": ["product"]}}
        latest = wait_until(lambda: (lambda b: b["latest"] if b["latest"]["id"] != first["id"] else None)(
            http.get("/api/tds/stats", headers=ADMIN).json()), 90, interval=0.3, message="the second stats run")
        assert latest["origin"] == "api" and list(latest["entities"]) == ["product"], latest
        assert latest["entities"]["product"]["match_pct"] == 100.0 and latest["alerts"]["resolved"] == ["product"]
        assert latest["repairs"] == [] and latest["overall_match"] == 100.0
        assert alerts_of(engine, "stats_mismatch")[0]["resolved_at"] is not None

        body = http.get("/api/tds/stats", headers=ADMIN, params={"limit": 10}).json()
        assert [h["id"] for h in body["history"]] == [latest["id"], first["id"]]
        assert body["history"][1]["entities"] == {"product": 90.0, "customer": round(100 * 89 / 90, 2)}
        assert body["history"][1]["overall_match"] == first["overall_match"]
    finally:
        daemon.http.close()


@pytest.mark.timeout(120)
def test_an_entity_whose_zoho_pull_fails_is_reported_with_its_error_not_as_zero(stats_env, engine, make_stats):
    # Inventory (products) does not answer; Books (customers) does.
    s = make_stats(stats_env, TDS_ZOHO_INVENTORY_URL=f"http://127.0.0.1:{free_port()}/inventory/v1",
                   TDS_ZOHO_MAX_ATTEMPTS="1")
    report = s.run("product", "customer")
    product, customer = report["entities"]["product"], report["entities"]["customer"]
    assert product["error"] and "ZohoUnavailable" in product["error"] and product["match_pct"] is None, product
    assert report["errors"] == {"product": product["error"]}
    # Nothing synced yet: customers are all missing here, which is a real 0 % and gets its repair.
    assert (customer["zoho_count"], customer["local_count"], customer["match_pct"]) == (90, 0, 0.0), customer
    assert report["overall_match"] == 0.0 and [r["entity"] for r in report["repairs"]] == ["customer"]
    assert [a["entity"] for a in alerts_of(engine, "stats_mismatch")] == ["customer"]
    with engine.connect() as c:
        stored = c.execute(text("SELECT origin, overall_match, report FROM tds_stats_runs")).one()
    assert stored.origin == "cli" and float(stored.overall_match) == 0.0 and stored.report["errors"] == report["errors"]
