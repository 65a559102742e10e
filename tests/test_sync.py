"""Pulling from Zoho, proven against the real simulator over real HTTP, real PostgreSQL and real Redis.

One simulator per module (``tds simulator``, no limits unless a test sets them; each test resets its
data and faults). Each test gets a clean database and a Redis namespace of its own, so the shared
rate limiter and token cache start empty. Syncs run in-process (``Syncer`` with a ``ZohoClient``
from the same configuration the CLI would load), through ``tds sync`` as a subprocess, or through
the admin API of a running ``tds run``.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time

import pytest
from sqlalchemy import text
from support import TDS, free_port, start_daemon, wait_until
from support.pull import Tds, cli
from support.sim import ADMIN, ALL, Sim, zoho_env

from tds_daemon import entities, zohovalues
from tds_daemon.simulator.data import DETAIL_ONLY
from tds_daemon.zohovalues import parse_timestamp


def stored(engine, entity: str) -> dict[str, dict]:
    with engine.connect() as c:
        return {r["zoho_id"]: dict(r) for r in
                c.execute(text(f"SELECT * FROM zoho.{entities.get(entity).table}")).mappings()}


def cursor_row(engine, entity: str) -> dict | None:
    with engine.connect() as c:
        row = c.execute(text("SELECT * FROM tds_sync_cursors WHERE entity_type = :e"), {"e": entity}).mappings().first()
    return dict(row) if row else None


def all_runs(engine) -> list[dict]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(text("SELECT * FROM tds_sync_runs ORDER BY id")).mappings()]


def assert_succeeded(run: dict) -> dict:
    assert run["status"] == "succeeded", run
    assert run["error"] is None and run["finished_at"] is not None, run
    return run


def assert_matches_simulator(engine, sim: Sim, names: list[str]) -> None:
    """Live rows are exactly Zoho's objects: ids, versions, raw as listed, every typed column."""
    for name in names:
        spec = entities.get(name)
        truth = sim.truth(name)
        rows = stored(engine, name)
        live = {zid: r for zid, r in rows.items() if r["deleted_at"] is None}
        assert len(live) == truth["count"] > 0, name
        assert set(live) == {o["id"] for o in truth["objects"]}, name
        for o in truth["objects"]:
            expected = parse_timestamp(o["last_modified_time"]) if o["last_modified_time"] else None
            assert live[o["id"]]["zoho_last_modified"] == expected, (name, o)
        listed = sim.list_rows(spec)
        assert len(listed) == truth["count"], name
        for obj in listed:
            row = live[str(obj[spec.id_field])]
            assert row["raw"] == obj, (name, obj[spec.id_field])
            for col in spec.columns:
                assert row[col.name] == zohovalues.convert(col.type, obj.get(col.field)), (name, col.name, obj)
        # A sample against the single-object read: raw is that object without the detail-only parts.
        for o in random.Random(name).sample(truth["objects"], min(3, truth["count"])):
            full = sim.object(name, o["id"])
            raw = live[o["id"]]["raw"]
            assert set(full) - set(raw) <= DETAIL_ONLY, (name, set(full) - set(raw))
            assert raw == {k: full[k] for k in raw}, (name, o["id"])


# --- 1. full sync = the simulator's truth ---

def test_full_sync_of_all_entities_equals_the_simulator(sim, pull_env, engine):
    counts = sim.reset()
    r = cli(pull_env, "sync", "all", "--full")
    assert r.returncode == 0, r.stdout + r.stderr
    done = all_runs(engine)
    assert sorted(run["entity_type"] for run in done) == sorted(ALL)
    for run in done:
        assert_succeeded(run)
        assert (run["kind"], run["origin"]) == ("full", "cli"), run
        expected = counts[run["entity_type"]]
        assert (run["objects"], run["created"], run["updated"], run["deleted"]) == (expected, expected, 0, 0), run
        assert run["pages"] == -(-expected // 200) and run["requests"] >= run["pages"], run
        assert f"{run['entity_type']}: full sync {expected} objects" in r.stdout + r.stderr
    assert_matches_simulator(engine, sim, ALL)
    # Cursors sit at the newest last-modified time Zoho listed, for the entities that have one.
    for spec in entities.ENTITIES:
        cur = cursor_row(engine, spec.name)
        assert cur is not None and cur["last_full_at"] is not None, spec.name
        if spec.modified_always:
            newest = max(parse_timestamp(o["last_modified_time"]) for o in sim.truth(spec.name)["objects"])
            assert cur["last_modified"] == newest, spec.name


# --- 2. incremental ---

def test_incremental_picks_up_exactly_the_changes_with_few_requests(sim, tds):
    sim.reset(counts={"product": 1312})  # 7 pages
    full = assert_succeeded(tds.sync("product", "full"))
    assert full["created"] == 1312 and full["requests"] >= 7
    truth = sim.truth("product")["objects"]
    changed = {o["id"]: sim.patch("product", o["id"], {"name": f"renamed {i}", "rate": 1000 + i})
               for i, o in enumerate(random.Random(1).sample(truth, 3))}
    created = sim.control("POST", "objects/product", {"name": "new item"})["object"]
    before = sim.stats()["apps"]["inventory"]["requests"]

    inc = assert_succeeded(tds.sync("product", "incremental"))
    assert inc["kind"] == "incremental"
    assert (inc["updated"], inc["created"], inc["deleted"], inc["stale"]) == (3, 1, 0, 0), inc
    assert inc["requests"] <= 2 and inc["requests"] * 3 <= full["requests"], (inc["requests"], full["requests"])
    assert sim.stats()["apps"]["inventory"]["requests"] - before == inc["requests"], "the run's count is honest"

    rows = stored(tds.engine, "product")
    for zid, obj in changed.items():
        assert rows[zid]["raw"] == {k: v for k, v in obj.items() if k not in DETAIL_ONLY}
        assert rows[zid]["name"] == obj["name"] and rows[zid]["rate"] == obj["rate"]
        assert rows[zid]["zoho_last_modified"] == parse_timestamp(obj["last_modified_time"])
    assert rows[created["item_id"]]["name"] == "new item"
    assert len(rows) == 1313
    newest = max(parse_timestamp(o["last_modified_time"]) for o in [*changed.values(), created])
    assert cursor_row(tds.engine, "product")["last_modified"] == newest

    again = assert_succeeded(tds.sync("product", "incremental"))  # nothing changed since: nothing written
    assert (again["created"], again["updated"]) == (0, 0) and again["requests"] == 1, again


# --- 3. deletions ---

def test_full_sync_marks_deleted_objects(sim, tds):
    assert_succeeded(tds.sync("invoice", "full"))
    ids = [o["id"] for o in sim.truth("invoice")["objects"]]
    gone = random.Random(3).sample(ids, 3)
    for oid in gone:
        sim.control("DELETE", f"objects/invoice/{oid}")
    not_found_before = sim.stats()["apps"]["books"].get("status", {}).get("404", 0)

    run = assert_succeeded(tds.sync("invoice", "full"))
    assert (run["deleted"], run["created"], run["updated"]) == (3, 0, 0), run
    not_found = sim.stats()["apps"]["books"]["status"].get("404", 0) - not_found_before
    assert not_found == 3, "each deletion is confirmed by a read that Zoho answers 404"
    rows = stored(tds.engine, "invoice")
    assert len(rows) == len(ids), "a deleted object's row is kept"
    for zid, row in rows.items():
        if zid in gone:
            assert row["deleted_at"] is not None and row["raw"]["invoice_id"] == zid
        else:
            assert row["deleted_at"] is None, zid
    assert sorted(sim.truth("invoice")["deleted"]) == sorted(gone)

    again = assert_succeeded(tds.sync("invoice", "full"))
    assert again["deleted"] == 0, "already marked: not counted twice"


# --- 4. the rate limit, shared by two processes ---

@pytest.mark.timeout(180)
def test_two_concurrent_syncs_never_exceed_the_limit(sim, pull_env, engine, processes):
    limit = 30
    counts = sim.reset(scale=0.01, counts={"customer": 3400, "invoice": 3800})  # 17 + 19 pages, both Books
    sim.faults(rate_limit=limit)
    pull_env = {**pull_env, "TDS_ZOHO_REQUESTS_PER_MINUTE": str(limit)}
    started = time.monotonic()
    procs = [processes.start(f"sync-{e}", [*TDS, "sync", e, "--full"], env=pull_env) for e in ("customer", "invoice")]
    for proc in procs:
        proc.wait(timeout=150)
    for proc in procs:
        assert proc.returncode == 0, processes.output(proc)
    elapsed = time.monotonic() - started

    stats = sim.stats()
    books = stats["apps"]["books"]
    assert books["requests"] >= 36 > limit, books
    assert books["max_window"] <= limit, books  # arrivals in any 60 s, refused or not
    assert books["limited"] == 0 and "429" not in books.get("status", {}), books
    assert elapsed >= 55, "more requests than the limit cannot all go within a minute"
    assert stats["oauth"]["granted"] == 1, "one token for both processes"
    for run in all_runs(engine):
        assert_succeeded(run)
        assert run["created"] == counts[run["entity_type"]]
    for name in ("customer", "invoice"):
        assert set(stored(engine, name)) == {o["id"] for o in sim.truth(name)["objects"]}


# --- 5. token expiry mid-run ---

def test_token_expiry_mid_sync_costs_one_refresh(sim, tds):
    names = ("product", "sales_order", "customer", "invoice")  # two per app, 10 pages each
    counts = sim.reset(scale=0.01, counts={n: 2000 for n in names})
    sim.faults(latency_ms=40)  # requests in flight at every moment, so some carry the old token after the refresh
    pages: dict[str, int] = {}
    results: dict[str, dict] = {}

    def one(name):
        results[name] = tds.sync(name, "full", client=tds.client(),
                                 progress=lambda tally: pages.__setitem__(name, tally.pages))

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    wait_until(lambda: len(pages) == len(names), 30, interval=0.005, message="every run past its first page")
    at_expiry = dict(pages)
    assert sim.faults(expire_tokens=True)["expired_tokens"] >= 1
    for t in threads:
        t.join(timeout=50)
    assert max(at_expiry.values()) < 10, f"every run was mid-way when its token died: {at_expiry}"
    for name in names:
        run = assert_succeeded(results[name])
        assert run["created"] == counts[name] and run["pages"] == 10, run
    stats = sim.stats()
    refused = sum(a.get("status", {}).get("401", 0) for a in stats["apps"].values())
    assert refused >= 1, "the expiry hit requests in the middle of the runs"
    assert stats["oauth"] == {"granted": 2}, "one refresh at the start, one after the expiry, for four clients"


# --- 6. 5xx ---

def test_twenty_percent_5xx_still_converges(sim, pull_env, engine):
    # Four tries of one request all failing at 20 % is 0.16 %: over a run of ~30 requests that
    # would make this test fail one time in twenty for no fault of the sync. More tries, same code.
    pull_env["TDS_ZOHO_MAX_ATTEMPTS"] = "8"
    # At 20 %, the first ten or so calls of an app are half failures about one run in twenty-five, which
    # would open its breaker (50 % of 10 calls): this test is about retries; test_breakers about breakers.
    pull_env["TDS_BREAKERS_MIN_CALLS"] = "1000"
    tds = Tds(pull_env)
    try:
        sim.faults(error_rate=0.2)
        for name in ALL:
            assert_succeeded(tds.sync(name, "full"))
        stats = sim.stats()
        sim.faults(error_rate=0)
    finally:
        tds.close()
    assert sum(a.get("injected_errors", 0) for a in stats["apps"].values()) >= 3, stats
    assert_matches_simulator(engine, sim, ALL)


# --- 7. Zoho down ---

@pytest.mark.parametrize("down", ["503", "refuse"])
def test_zoho_down_fails_the_run_cleanly(sim, pull_env, tds, down):
    assert_succeeded(tds.sync("product", "full"))
    oid = sim.truth("product")["objects"][0]["id"]
    before_row = stored(tds.engine, "product")[oid]
    sim.patch("product", oid, {"name": "changed while down"})
    cursor = cursor_row(tds.engine, "product")
    sim.faults(down=down)

    # Two tries, not the default six: how it ends is the point here, not its backoff (see the 5xx tests).
    r = cli({**pull_env, "TDS_ZOHO_MAX_ATTEMPTS": "2"}, "sync", "product")
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert lines[0].startswith("tds: ") and "product" in lines[0] and "Zoho inventory" in lines[0], lines

    failed = all_runs(tds.engine)[-1]
    assert (failed["entity_type"], failed["kind"], failed["status"]) == ("product", "incremental", "failed")
    assert failed["finished_at"] is not None and failed["error"].startswith("Zoho inventory"), failed
    assert "\n" not in failed["error"] and len(failed["error"]) < 300, failed["error"]
    assert failed["error"] in lines[0], "the line names the run's recorded error"
    assert cursor_row(tds.engine, "product") == cursor, "a failed run moves no cursor"
    assert stored(tds.engine, "product")[oid] == before_row

    sim.faults(down="")  # back up: the next run brings what the failed one missed
    run = assert_succeeded(tds.sync("product", "incremental"))
    assert run["updated"] == 1 and stored(tds.engine, "product")[oid]["name"] == "changed while down"


def test_redis_unreachable_fails_the_cli_in_one_line(sim, pull_env, engine):
    pull_env = {**pull_env, "TDS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}  # nothing listens there
    r = cli(pull_env, "sync", "customer")
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert lines[0].startswith("tds: ") and "customer" in lines[0] and "ConnectionError" in lines[0], lines
    [run] = all_runs(engine)
    assert run["status"] == "failed" and "ConnectionError" in run["error"], run


# --- 8. stock sync ---

def test_stock_sync_updates_only_stock_fields(sim, tds):
    assert_succeeded(tds.sync("product", "full"))
    before = stored(tds.engine, "product")
    cursor = cursor_row(tds.engine, "product")
    oid = random.Random(8).choice(sorted(before))
    old = before[oid]
    new_stock = float(old["stock_on_hand"]) + 17
    patched = sim.patch("product", oid, {"stock_on_hand": new_stock, "name": "not by a stock sync", "rate": 999})

    run = assert_succeeded(tds.sync("product", "stock"))
    assert run["kind"] == "stock"
    assert (run["updated"], run["created"], run["deleted"]) == (1, 0, 0), run
    after = stored(tds.engine, "product")
    row = after[oid]
    assert row["stock_on_hand"] == zohovalues.convert("numeric", new_stock)
    assert row["raw"]["stock_on_hand"] == new_stock
    assert row["available_stock"] == old["available_stock"]
    assert row["last_pull_run_id"] == run["id"]  # the stock pull wrote the row
    untouched = {k: v for k, v in old.items() if k not in ("stock_on_hand", "raw", "synced_at", "last_pull_run_id")}
    assert {k: row[k] for k in untouched} == untouched, "name, rate, versions: as they were"
    assert {k: v for k, v in row["raw"].items() if k != "stock_on_hand"} == \
        {k: v for k, v in old["raw"].items() if k != "stock_on_hand"}
    assert {k: v for k, v in after.items() if k != oid} == {k: v for k, v in before.items() if k != oid}
    assert cursor_row(tds.engine, "product") == cursor, "a stock sync moves no cursor"

    # The stock refresh did not claim the newer version: the next pull still brings the rest.
    inc = assert_succeeded(tds.sync("product", "incremental"))
    assert inc["updated"] == 1
    row = stored(tds.engine, "product")[oid]
    assert (row["name"], row["rate"]) == ("not by a stock sync", 999)
    assert row["zoho_last_modified"] == parse_timestamp(patched["last_modified_time"])


# --- 9 and 10: a running daemon ---

@pytest.fixture(scope="module")
def daemon(module_processes, migrated, sim_base, redis_namespace):
    d = start_daemon(module_processes, {**migrated, **zoho_env(sim_base),
                                        "TDS_REDIS_NAMESPACE": f"{redis_namespace}_daemon"})
    yield d
    d.http.close()


def finished_run(daemon, run_id: int) -> dict | None:
    run = daemon.http.get(f"/api/tds/runs/{run_id}", headers=ADMIN).json()
    return run if run["status"] in ("succeeded", "failed") else None


def test_admin_api_starts_and_reports_runs(sim, pull_env, engine, daemon):
    counts = sim.reset()
    http = daemon.http
    r = http.post("/api/tds/sync/products", params={"full": 1}, headers=ADMIN)
    assert r.status_code == 202, r.text
    [started] = r.json()["runs"]
    assert (started["entity"], started["kind"], started["status"]) == ("product", "full", "queued")
    run = wait_until(lambda: finished_run(daemon, started["id"]), 30, interval=0.2, message="the product run")
    assert_succeeded(run)
    assert (run["created"], run["origin"], run["kind"]) == (counts["product"], "api", "full"), run
    assert started["id"] in [x["id"] for x in http.get("/api/tds/runs", headers=ADMIN).json()["runs"]]
    listed = http.get("/api/tds/runs", params={"entity": "items"}, headers=ADMIN).json()["runs"]
    assert [x["id"] for x in listed] == [started["id"]]

    # refused without the bearer token, or with a wrong one; unknown names are 404
    assert http.post("/api/tds/sync/products", params={"full": 1}).status_code == 401
    assert http.post("/api/tds/sync/products", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert http.get("/api/tds/runs").status_code == 401
    assert http.get(f"/api/tds/runs/{started['id']}").status_code == 401
    assert http.post("/api/zoho/bulk-sync/customers").status_code == 401
    r = http.post("/api/tds/sync/no-such-thing", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "unknown_entity", r.text
    assert http.get("/api/tds/runs/987654", headers=ADMIN).status_code == 404
    assert http.post("/api/zoho/bulk-sync/no-such-thing", headers=ADMIN).status_code == 404
    assert len(all_runs(engine)) == 1, "nothing refused started a run"

    # the previous system's bulk endpoint and its status
    r = http.post("/api/zoho/bulk-sync/customers", headers=ADMIN)
    assert r.status_code == 202, r.text
    [bulk] = r.json()["runs"]
    assert (bulk["entity"], bulk["kind"]) == ("customer", "full")
    run = wait_until(lambda: finished_run(daemon, bulk["id"]), 30, interval=0.2, message="the customer run")
    assert_succeeded(run)
    assert (run["created"], run["origin"]) == (counts["customer"], "bulk"), run
    r = http.get("/api/zoho/bulk-sync/status", headers=ADMIN)
    assert r.status_code == 200
    status = r.json()
    assert status["in_progress"] == []
    assert status["latest"]["customer"]["id"] == bulk["id"] and status["latest"]["customer"]["status"] == "succeeded"
    assert status["latest"]["product"]["id"] == started["id"]
    for name in ("product", "customer"):
        assert set(stored(engine, name)) == {o["id"] for o in sim.truth(name)["objects"]}


def zoho_time(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def test_webhook_and_sync_on_one_object_newer_wins(sim, tds, daemon):
    assert_succeeded(tds.sync("product", "full"))
    oid = random.Random(10).choice([o["id"] for o in sim.truth("product")["objects"]])
    zoho_obj = sim.object("product", oid)
    listed_at = parse_timestamp(zoho_obj["last_modified_time"])

    def row():
        return stored(tds.engine, "product")[oid]

    def webhook(name: str, modified: dt.datetime) -> str:
        obj = {**zoho_obj, "name": name, "last_modified_time": zoho_time(modified)}
        r = daemon.post("products", {"item": obj})
        assert r.status_code == 202, r.text
        return wait_until(lambda: applied(tds.engine, r.json()["event_id"]), 30, message="the webhook applied")

    # A webhook newer than what Zoho's list still shows (it changed again after the page was served).
    assert webhook("from the webhook", listed_at + dt.timedelta(hours=1)) == "updated"
    assert row()["name"] == "from the webhook"
    run = assert_succeeded(tds.sync("product", "full"))
    assert (run["stale"], run["updated"]) == (1, 0), run
    assert row()["name"] == "from the webhook", "an older pull does not regress the row"
    assert row()["zoho_last_modified"] == listed_at + dt.timedelta(hours=1)

    # Zoho changes it later still: the pull is now the newer one and wins.
    changed = sim.patch("product", oid, {"name": "from zoho"})
    run = assert_succeeded(tds.sync("product", "incremental"))
    assert run["updated"] == 1, run
    assert row()["name"] == "from zoho"
    # ... and a late webhook older than that does not regress it either.
    assert webhook("late webhook", listed_at + dt.timedelta(hours=2)) == "stale"
    assert row()["name"] == "from zoho"
    assert row()["zoho_last_modified"] == parse_timestamp(changed["last_modified_time"])


def applied(engine, event_id: int) -> str | None:
    """The outcome of a webhook's sync item once a worker completed it."""
    with engine.connect() as c:
        item = c.execute(text("SELECT status, outcome FROM tds_sync_queue WHERE event_id = :id"),
                         {"id": event_id}).first()
    return item.outcome if item and item.status == "completed" else None


def test_a_long_run_shows_its_progress_and_heartbeat_while_it_runs(sim, tds, monkeypatch):
    import tds_daemon.pull.pulls as sync_module

    monkeypatch.setattr(sync_module, "HEARTBEAT_S", 0.0)  # a beat at every page
    sim.faults(latency_ms=150)  # customer: 4 pages, slow enough to watch
    seen: list[dict] = []

    def watch(tally) -> None:  # called after each page; reads what another process would see
        with tds.engine.connect() as c:
            seen.append(dict(c.execute(text("SELECT status, objects, heartbeat_at FROM tds_sync_runs "
                                            "WHERE status = 'running'")).mappings().one()))

    run = tds.sync("customer", progress=watch)
    assert run["status"] == "succeeded"
    # the caller's progress comes before the beat of the same page: by the last page, earlier beats show
    assert seen and seen[-1]["objects"] > 0 and seen[-1]["heartbeat_at"] is not None
    assert run["heartbeat_at"] is not None and run["heartbeat_at"] >= run["started_at"]
