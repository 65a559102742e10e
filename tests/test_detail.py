"""Whole objects: no pull takes detail away, and the detail backfill reads what rows lack, with real
processes against the simulator (its list rows leave the detail out, as Zoho's do)."""

from __future__ import annotations

import os
import signal
import time

from sqlalchemy import text
from support import TWO_OF_EACH, WEBHOOK_TOKEN, start_daemon, wait_until
from support.pull import cli
from support.sim import ADMIN

from tds_daemon import entities
from tds_daemon.pull import detail
from tds_daemon.simulator.data import DETAIL_ONLY


def rows(engine, entity: str) -> dict[str, dict]:
    with engine.connect() as c:
        return {r["zoho_id"]: dict(r) for r in
                c.execute(text(f"SELECT * FROM zoho.{entities.get(entity).table}")).mappings()}


def waiting(engine, entity: str | None = None) -> int:
    per = detail.backlog(engine, "zoho")
    return per[entity]["waiting"] if entity else sum(e["waiting"] for e in per.values())


def sim_gets(sim, entity: str) -> int:
    return sim.stats().get("entities", {}).get(entity, {}).get("get", 0)


def test_a_webhooks_line_items_survive_pulls_and_the_backfill_brings_current_ones(sim, pull_env, engine, processes):
    sim.reset(counts={"invoice": 30})
    daemon = start_daemon(processes, pull_env)
    oid = sim.truth("invoice")["objects"][0]["id"]
    whole = sim.object("invoice", oid)
    assert whole["line_items"]
    fired = sim.control("POST", "webhooks/fire", {"url": daemon.base_url, "token": WEBHOOK_TOKEN,
                                                  "entity": "invoice", "id": oid})
    assert fired["status"] == 202, fired
    wait_until(lambda: oid in rows(engine, "invoice"), 15, message="the webhook applied")
    assert rows(engine, "invoice")[oid]["raw"] == whole
    # From here the foreground commands do the reading (a `tds sync` wakes a running daemon's backfill).
    processes.stop(daemon.proc)

    # A full pull at the same last_modified_time: the stored detail stays, and stays current.
    r = cli(pull_env, "sync", "invoice", "--full")
    assert r.returncode == 0, r.stderr
    row = rows(engine, "invoice")[oid]
    assert row["raw"] == whole and row["detail_state"] == "current"
    others = [r for zid, r in rows(engine, "invoice").items() if zid != oid]
    assert all(r["detail_state"] == "missing" and "line_items" not in r["raw"] for r in others)

    # Zoho changes it, no webhook: the incremental pull brings the list fields at once, keeps the old
    # line items, and says they are stale.
    changed = sim.patch("invoice", oid, {"status": "paid", "balance": 0,
                                         "line_items": [{**whole["line_items"][0], "quantity": 99}]})
    r = cli(pull_env, "sync", "invoice")
    assert r.returncode == 0, r.stderr
    row = rows(engine, "invoice")[oid]
    assert row["status"] == "paid" and row["raw"]["line_items"] == whole["line_items"]
    assert row["detail_state"] == "stale"

    # The backfill reads what is missing or stale: every row whole, each read once.
    before = sim_gets(sim, "invoice")
    r = cli(pull_env, "sync", "invoice", "--details")
    assert r.returncode == 0, r.stderr
    assert "details: read 30 whole objects (invoice 30)" in r.stdout + r.stderr, r.stdout + r.stderr
    assert sim_gets(sim, "invoice") - before == 30
    stored = rows(engine, "invoice")
    assert stored[oid]["raw"] == changed and stored[oid]["detail_state"] == "current"
    for zid, row in stored.items():
        assert row["raw"] == sim.object("invoice", zid) and row["detail_state"] == "current", zid
    # Nothing left: a second run reads nothing.
    r = cli(pull_env, "sync", "all", "--details")
    assert r.returncode == 0 and "details: read 0 whole objects" in r.stdout + r.stderr, r.stdout + r.stderr
    assert sim_gets(sim, "invoice") - before == 30


def test_the_same_version_is_never_read_twice(sim, tds, engine):
    sim.reset(counts={"bill": 10})
    assert tds.sync("bill", "full")["status"] == "succeeded"
    assert waiting(engine, "bill") == 10
    # Zoho's read answers an older object than the list said (a replica lagging): the read is recorded
    # for that version and not made again until a newer version arrives.
    with engine.begin() as c:
        c.execute(text("UPDATE zoho.bills SET version_at = version_at + interval '1 hour'"))
    report = detail.Backfill(tds.config, tds.engine, tds.client("manual")).run()
    assert (report.read, report.stale, report.stopped) == (10, 10, "done"), report
    again = detail.Backfill(tds.config, tds.engine, tds.client("manual")).run()
    assert (again.read, again.requests) == (0, 0), again
    assert waiting(engine, "bill") == 0
    assert detail.backlog(engine, "zoho")["bill"]["stale"] == 0 and \
        detail.backlog(engine, "zoho")["bill"]["missing"] == 10, "still not whole, and honest about it"


def test_the_backfill_yields_to_a_webhook_that_brought_the_whole_object(sim, tds, engine, processes, pull_env):
    sim.reset(counts={"credit_note": 5})
    assert tds.sync("credit_note", "full")["status"] == "succeeded"
    daemon = start_daemon(processes, pull_env)
    oid = sim.truth("credit_note")["objects"][0]["id"]
    sim.control("POST", "webhooks/fire", {"url": daemon.base_url, "token": WEBHOOK_TOKEN,
                                          "entity": "credit_note", "id": oid})
    wait_until(lambda: rows(engine, "credit_note")[oid]["detail_state"] == "current", 15, message="webhook applied")
    assert waiting(engine, "credit_note") == 4
    before = sim_gets(sim, "credit_note")
    report = detail.Backfill(tds.config, tds.engine, tds.client("manual")).run()
    assert report.read == 4 and sim_gets(sim, "credit_note") - before == 4, "no read for the webhook's object"


def test_the_backfill_spends_only_what_scheduled_jobs_leave(sim, pull_env):
    from support.pull import Tds

    sim.reset(counts={"payment": 60})
    tds = Tds({**pull_env, "TDS_ZOHO_DAILY_BUDGET": "40"})
    try:
        assert tds.sync("payment", "full")["status"] == "succeeded"  # 1 scheduled call
        report = detail.Backfill(tds.config, tds.engine, tds.client("backfill")).run()
        # No yesterday: half the budget (20) is kept for scheduled jobs, which spent 1 of it: the backfill
        # may take the day's total to 40 - 19 = 21, so 20 reads.
        assert report.stopped == "budget" and report.read == 20, report
        assert "kept for scheduled jobs" in report.error
        assert waiting(tds.engine, "payment") == 60 - report.read
    finally:
        tds.close()


def test_the_backfill_completes_after_its_worker_is_killed(sim, pull_env, engine, processes):
    sim.reset(counts={"sales_order": 120, "customer": 80})
    sim.faults(latency_ms=60)
    # The backfill takes half of each app's minute: lift the pace so the test is about the kill.
    daemon = start_daemon(processes, {**pull_env, **TWO_OF_EACH, "TDS_ZOHO_REQUESTS_PER_MINUTE": "2000"})
    # A full pull through the daemon: when it ends, the backfill starts on its rows by itself.
    r = daemon.http.post("/api/tds/sync/sales_order", params={"full": 1}, headers=ADMIN)
    assert r.status_code == 202, r.text
    r = daemon.http.post("/api/tds/sync/customer", params={"full": 1}, headers=ADMIN)
    assert r.status_code == 202, r.text

    def pulled():
        with engine.connect() as c:
            return c.execute(text("SELECT count(*) FROM tds_sync_runs WHERE status = 'succeeded'")).scalar_one() == 2
    wait_until(pulled, 60, message="both pulls done")
    wait_until(lambda: 0 < waiting(engine) < 190, 60, interval=0.05, message="the backfill under way")
    for pid in daemon.worker_pids():  # whichever worker runs it dies mid-read
        os.kill(pid, signal.SIGKILL)
    # The supervisor starts new workers; the scheduled job (run now, as the scheduler would) resumes.
    wait_until(lambda: len(daemon.worker_pids()) == 2, 30, message="workers restarted")
    r = daemon.http.post("/api/tds/monitoring/scheduler/jobs/detail_backfill/run", headers=ADMIN)
    assert r.status_code == 202, r.text
    wait_until(lambda: waiting(engine) == 0, 90, interval=0.2, message="every row whole")
    for entity in ("sales_order", "customer"):
        for zid, row in rows(engine, entity).items():
            whole = sim.object(entity, zid)
            assert row["raw"] == whole and row["detail_state"] == "current", (entity, zid)
            assert set(whole) & DETAIL_ONLY
    gets = sim_gets(sim, "sales_order") + sim_gets(sim, "customer")
    assert 200 <= gets <= 200 + detail.THREADS, "only reads in flight at the kill were made twice"

    entities_ = daemon.http.get("/api/tds/entities", headers=ADMIN).json()
    by_name = {e["name"]: e for e in entities_["entities"]}
    assert by_name["sales_order"]["detail_backlog"]["waiting"] == 0 and entities_["detail"]["eta"] == "done"
    assert 'tds_detail_backlog{entity="sales_order"} 0.0' in daemon.http.get("/metrics").text


def test_a_stop_does_not_wait_for_the_backfill(sim, pull_env, engine, processes):
    sim.reset(counts={"customer": 120})
    # The backfill's share of the default pace (50 calls a minute) runs out after 50 reads: the rest wait up
    # to a minute for the rate limit, longer than a stop may take.
    daemon = start_daemon(processes, {**pull_env, "TDS_SUPERVISOR_DRAIN_TIMEOUT_S": "60"})
    r = daemon.http.post("/api/tds/sync/customer", params={"full": 1}, headers=ADMIN)
    assert r.status_code == 202, r.text
    seen: dict = {}

    def held_by_the_rate_limit() -> bool:  # reads stopped for a while, with rows still waiting
        n = waiting(engine)
        if n != seen.get("n"):
            seen.update(n=n, since=time.monotonic())
            return False
        return 0 < n < 120 and time.monotonic() - seen["since"] > 1.5

    wait_until(held_by_the_rate_limit, 60, interval=0.1, message="the backfill held by the rate limit")
    os.killpg(daemon.proc.pid, signal.SIGTERM)
    # Well inside the drain timeout (60 s): the backfill ends at once instead of holding the stop.
    wait_until(lambda: daemon.proc.poll() is not None, 20, message="tds run stopped")
    assert daemon.proc.returncode == 0, daemon.output()
    assert "stopped=shutdown" in daemon.output(None) and "still running; killing it" not in daemon.output(None)
    assert 0 < waiting(engine) < 120, "some rows whole, the rest left for the next run"


def test_the_backlog_shows_in_status_the_api_and_metrics(sim, tds, pull_env, processes):
    sim.reset(counts={"product": 50, "branch": 3})
    assert tds.sync("product", "full")["status"] == "succeeded"
    assert tds.sync("branch", "full")["status"] == "succeeded"
    daemon = start_daemon(processes, {**pull_env, "TDS_SCHEDULER_DETAIL_BACKFILL": "off"})
    body = daemon.http.get("/api/tds/entities", headers=ADMIN).json()
    by_name = {e["name"]: e for e in body["entities"]}
    assert by_name["product"]["detail_backlog"] == {"missing": 50, "stale": 0, "waiting": 50}
    assert by_name["branch"]["lists_whole"] and by_name["branch"]["detail_backlog"]["waiting"] == 0
    # Items with an image wait for it too (one call each, from the same share of the budget).
    assert body["detail"]["waiting"] == 50 + body["detail"]["images_waiting"] and body["detail"]["eta_seconds"] > 0
    assert 'tds_detail_backlog{entity="product"} 50.0' in daemon.http.get("/metrics").text
    out = cli(pull_env, "status")
    assert out.returncode == 0, out.stderr
    assert "detail backlog: 50 rows await their whole object (and " in out.stdout, out.stdout
    assert " item images); done in about" in out.stdout, out.stdout
    product_line = next(line for line in out.stdout.splitlines() if line.startswith("product "))
    assert " 50  " in product_line, product_line
    js = cli(pull_env, "status", "--json")
    assert '"detail_backlog": 50' in js.stdout


def test_a_recent_transaction_makes_its_items_stock_stale_and_the_backfill_reads_them_first(
        sim, tds, engine, processes, pull_env):
    sim.reset(counts={"product": 40, "invoice": 20})
    for entity in ("product", "invoice"):
        assert tds.sync(entity, "full")["status"] == "succeeded"
    assert detail.Backfill(tds.config, tds.engine, tds.client("manual")).run(names=["product"]).stopped == "done"
    invoice = sim.truth("invoice")["objects"][0]["id"]
    item = sim.object("invoice", invoice)["line_items"][0]["item_id"]
    before = rows(engine, "product")[item]
    assert before["detail_state"] == "current"
    # The sale moves the item's stock in Zoho without changing the item's last_modified_time.
    old = sim.object("product", item)
    sim.patch("product", item, {"stock_on_hand": old["stock_on_hand"] - 3,
                                "last_modified_time": old["last_modified_time"]})
    sim.patch("invoice", invoice, {"status": "sent"})  # a change now: its webhook names the item
    daemon = start_daemon(processes, {**pull_env, "TDS_SCHEDULER_DETAIL_BACKFILL": "off"})
    fired = sim.control("POST", "webhooks/fire", {"url": daemon.base_url, "token": WEBHOOK_TOKEN,
                                                  "entity": "invoice", "id": invoice})
    assert fired["status"] == 202, fired
    wait_until(lambda: rows(engine, "product")[item]["detail_state"] == "stale", 15, message="the item's stock stale")
    # Stale rows (recent changes) are read before missing ones (history): the other invoices wait.
    report = detail.Backfill(tds.config, tds.engine, tds.client("manual")).run(limit=1)
    assert report.per_entity == {"product": 1}, report
    row = rows(engine, "product")[item]
    assert row["detail_state"] == "current" and row["stock_on_hand"] == old["stock_on_hand"] - 3
