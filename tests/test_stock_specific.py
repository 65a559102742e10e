"""A stock refresh of chosen items, against the simulator over real HTTP, real PostgreSQL and Redis: in-process
(``launch.pull``), through ``POST /api/tds/sync/stock/specific`` of a running ``tds run``, and as
``tds sync products --stock --id``."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text
from support import ADMIN_TOKEN, start_daemon, wait_until
from support.pull import cli
from support.sim import zoho_env

from tds_daemon import zohovalues
from tds_daemon.pull import launch, runs

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
UNKNOWN = "4815999999999999999"  # no such item in the simulator: Zoho answers 404


def products(engine) -> dict[str, dict]:
    with engine.connect() as c:
        return {r["zoho_id"]: dict(r) for r in c.execute(text("SELECT * FROM zoho.products")).mappings()}


def events_of(engine) -> list[dict]:
    with engine.connect() as c:
        return [dict(r) for r in c.execute(text("SELECT zoho_id, payload FROM tds_events "
                                                "WHERE type = 'tds.zoho.entity.synced' ORDER BY id")).mappings()]


def restock(sim, oid: str, by: int) -> dict:
    """A change of the item's stock in Zoho (its last-modified time moves, as the simulator's changes do)."""
    old = sim.object("product", oid)
    return sim.patch("product", oid, {"stock_on_hand": old["stock_on_hand"] + by,
                                      "available_stock": old["available_stock"] + by})


def test_chosen_items_get_their_stock_and_no_other(sim, tds):
    full = launch.pull(tds.config, tds.engine, tds.client(), "product", "full", origin="cli")
    assert full.error is None, full.error
    before = products(tds.engine)
    a, b, c = random.Random(5).sample(sorted(before), 3)
    new = {oid: restock(sim, oid, by) for oid, by in ((a, 11), (b, 22), (c, 33))}
    with tds.engine.begin() as conn:
        conn.execute(text("DELETE FROM tds_events"))

    pulled = launch.pull(tds.config, tds.engine, tds.client(), "product", "stock", origin="cli",
                         item_ids=[a, UNKNOWN, b])
    run = pulled.run
    assert pulled.error is None and run["status"] == "succeeded", run
    assert (run["kind"], run["item_ids"], run["objects"], run["updated"], run["requests"]) == \
        ("stock", [a, UNKNOWN, b], 2, 2, 3), run
    stock = {oid: {k: new[oid][k] for k in ("stock_on_hand", "available_stock")} for oid in (a, b)}
    assert run["item_results"] == {
        a: {"outcome": "updated", **stock[a]}, b: {"outcome": "updated", **stock[b]},
        UNKNOWN: {"outcome": "not_found", "error": f"Zoho has no item {UNKNOWN} (HTTP 404)"},
    }
    after = products(tds.engine)
    for oid in (a, b):
        row = after[oid]
        assert row["stock_on_hand"] == zohovalues.convert("numeric", new[oid]["stock_on_hand"])
        assert row["available_stock"] == zohovalues.convert("numeric", new[oid]["available_stock"])
        assert row["raw"] == sim.object("product", oid), "the whole object, per-warehouse stock included"
        assert (row["detail_state"], row["last_pull_run_id"]) == ("current", run["id"])
    assert after[c] == before[c], "an item not chosen is left alone"
    assert {k: v for k, v in after.items() if k not in (a, b)} == {k: v for k, v in before.items() if k not in (a, b)}
    assert UNKNOWN not in after
    synced = events_of(tds.engine)
    assert sorted(e["zoho_id"] for e in synced) == sorted([a, b])
    assert {(e["payload"]["action"], e["payload"]["source"]) for e in synced} == {("updated", "pull")}
    assert "stock_on_hand" in synced[0]["payload"]["changed"]
    with tds.engine.connect() as conn:  # the freshness of the whole entity's stock sync is not this run's
        assert ("product", "stock") not in {(e, k) for e, k, _ in runs.latest_successes(conn)}

    again = launch.pull(tds.config, tds.engine, tds.client(), "product", "stock", origin="cli", item_ids=[a]).run
    assert again["item_results"][a]["outcome"] == "unchanged" and again["updated"] == 0, again


# --- through the admin API of a running daemon ---

@pytest.fixture(scope="module")
def daemon(module_processes, migrated, sim_base, redis_namespace):
    d = start_daemon(module_processes, {**migrated, **zoho_env(sim_base),
                                        "TDS_REDIS_NAMESPACE": f"{redis_namespace}_stock"})
    yield d
    d.http.close()


def finished(daemon, run_id: int) -> dict | None:
    run = daemon.http.get(f"/api/tds/runs/{run_id}", headers=ADMIN).json()
    return run if run["status"] not in ("queued", "running") else None


def test_admin_api_queues_a_run_of_the_chosen_items(sim, pull_env, engine, daemon):
    oid = sim.truth("product")["objects"][0]["id"]
    r = daemon.http.post("/api/tds/sync/stock/specific", json={"item_ids": [oid, UNKNOWN, oid]}, headers=ADMIN)
    assert r.status_code == 202, r.text
    body = r.json()
    [queued] = body["runs"]
    assert (queued["entity"], queued["kind"], queued["status"], body["item_ids"]) == \
        ("product", "stock", "queued", [oid, UNKNOWN])
    run = wait_until(lambda: finished(daemon, queued["id"]), 30, interval=0.2, message="the stock run")
    assert (run["status"], run["origin"], run["created"], run["requests"]) == ("succeeded", "api", 1, 2), run
    assert run["item_results"][oid]["outcome"] == "created"  # not in the copy yet: the whole object is applied
    assert run["item_results"][UNKNOWN]["outcome"] == "not_found"
    assert set(products(engine)) == {oid}
    assert products(engine)[oid]["raw"] == sim.object("product", oid)
    listed = daemon.http.get("/api/tds/runs", params={"entity": "product"}, headers=ADMIN).json()["runs"]
    assert [x["id"] for x in listed] == [queued["id"]]


@pytest.mark.parametrize("body, fragment", [
    ({}, "non-empty list"),
    ({"item_ids": []}, "non-empty list"),
    ({"item_ids": "4815000000000001"}, "non-empty list"),
    ({"item_ids": [str(4815000000000000 + i) for i in range(101)]}, "at most 100"),
    ({"item_ids": ["../contacts"]}, "string of digits"),
    ({"item_ids": [4815000000000001]}, "string of digits"),
    ({"item_ids": [""]}, "string of digits"),
    (["4815000000000001"], "non-empty list"),
])
def test_bad_item_ids_are_400_and_queue_nothing(pull_env, engine, daemon, body, fragment):
    r = daemon.http.post("/api/tds/sync/stock/specific", json=body, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_item_ids" and fragment in r.json()["message"], r.json()
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM tds_sync_runs")).scalar_one() == 0


def test_not_json_and_no_token(pull_env, daemon):
    r = daemon.http.post("/api/tds/sync/stock/specific", content=b"{not json",
                         headers={**ADMIN, "Content-Type": "application/json"})
    assert r.status_code == 400 and set(r.json()) == {"error", "message"}, r.text
    assert daemon.http.post("/api/tds/sync/stock/specific", json={"item_ids": ["1"]}).status_code == 401


# --- the command line ---

def test_cli_refreshes_the_chosen_items(sim, pull_env, engine):
    a, b = (o["id"] for o in sim.truth("product")["objects"][:2])
    new = restock(sim, a, 5)
    r = cli(pull_env, "sync", "products", "--stock", "--id", a, "--id", UNKNOWN)
    assert r.returncode == 0, r.stderr
    assert f"product {a}: created; stock_on_hand {new['stock_on_hand']}" in r.stdout, r.stdout
    assert f"product {UNKNOWN}: not_found: Zoho has no item {UNKNOWN} (HTTP 404)" in r.stdout, r.stdout
    assert "stock of 2 chosen items, 1 read" in r.stdout, r.stdout
    assert set(products(engine)) == {a}
    with engine.connect() as c:
        run = c.execute(text("SELECT * FROM tds_sync_runs")).mappings().one()
    assert (run["kind"], run["origin"], run["status"], run["item_ids"]) == ("stock", "cli", "succeeded", [a, UNKNOWN])


@pytest.mark.parametrize("args, fragment", [
    (["customers", "--stock", "--id", "1"], "--id is for products only"),
    (["products", "--id", "1"], "--id goes with --stock"),
    (["products", "--full", "--id", "1"], "--id goes with --stock"),
    (["products", "--stock", "--id", "abc"], "string of digits"),
])
def test_cli_refuses_id_where_it_does_not_belong(pull_env, engine, args, fragment):
    r = cli(pull_env, "sync", *args)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tds: ") and fragment in lines[0], r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM tds_sync_runs")).scalar_one() == 0


def test_cli_exits_non_zero_when_the_run_fails(sim, pull_env, engine):
    oid = sim.truth("product")["objects"][0]["id"]
    sim.faults(down="503")
    r = cli(pull_env, "sync", "products", "--stock", "--id", oid)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("tds: sync failed") and "product: Zoho" in lines[0] and "HTTP 503" in lines[0], lines
    assert f"product {oid}: not reached" in r.stdout, r.stdout
    with engine.connect() as c:
        run = c.execute(text("SELECT status, item_results FROM tds_sync_runs")).mappings().one()
    assert (run["status"], run["item_results"]) == ("failed", {}), run
