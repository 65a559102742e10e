"""The story of one object: `tds trace` and `GET /api/tds/objects/{entity}/{zoho_id}`, told from what a
running TDS did with a real pull from the simulator and real webhooks (one of them a duplicate)."""

from __future__ import annotations

import json

from support import WEBHOOK_TOKEN, start_daemon, wait_until
from support.pull import cli
from support.sim import ADMIN

from tds_daemon.pull import detail


def fire(sim, daemon, entity: str, oid: str) -> dict:
    return sim.control("POST", "webhooks/fire", {"url": daemon.base_url, "token": WEBHOOK_TOKEN,
                                                 "entity": entity, "id": oid})


def test_the_story_shows_the_row_both_deliveries_the_sync_item_the_pulls_and_the_image(sim, tds, pull_env,
                                                                                      processes):
    sim.reset(counts={"product": 6})
    first = tds.sync("product", "full")
    assert first["status"] == "succeeded", first
    oid = next(o["id"] for o in sim.truth("product")["objects"] if sim.image(o["id"]))
    _, content_type, sha = sim.image(oid)
    # The whole objects and the images, as the daemon's backfill would read them.
    report = detail.Backfill(tds.config, tds.engine, tds.client("manual")).run(names=["product"])
    assert report.stopped == "done" and report.images_stored >= 1, report

    daemon = start_daemon(processes, pull_env)
    assert fire(sim, daemon, "product", oid)["status"] == 202
    assert fire(sim, daemon, "product", oid)["status"] == 200  # the same delivery again: a duplicate

    def story():
        r = daemon.http.get(f"/api/tds/objects/items/{oid}", headers=ADMIN)  # an alias works too
        assert r.status_code == 200, r.text
        s = r.json()
        return s if s["sync_items"] and s["sync_items"][0]["status"] == "completed" else None

    wait_until(story, 15, message="the webhook's sync item completed")
    second = tds.sync("product", "full")  # finds the row as stored
    assert second["status"] == "succeeded" and second["unchanged"] == 6, second
    s = story()

    assert s["entity"] == "product" and s["zoho_id"] == oid and s["table"] == "zoho.products"
    row = s["row"]
    assert row["deleted"] is False and row["deleted_at"] is None and row["detail_state"] == "current"
    assert row["zoho_last_modified"] and row["synced_at"] and row["detail_fetched_for"]
    assert row["last_pull_run_id"] == first["id"] and row["columns"]["name"]

    deliveries = s["deliveries"]
    assert len(deliveries) == 2 and s["totals"] == {"deliveries": 2, "duplicates": 1, "sync_items": 1}
    accepted, duplicate = sorted(deliveries, key=lambda d: d["duplicate"])
    assert accepted["duplicate"] is False and duplicate["duplicate"] is True
    assert accepted["event_id"] == duplicate["event_id"]
    assert accepted["event_type"] == duplicate["event_type"] == "updated"
    assert duplicate["received_at"] >= accepted["received_at"] and duplicate["sync_item_id"] is None

    (item,) = s["sync_items"]
    assert item["id"] == accepted["sync_item_id"] and item["event_id"] == accepted["event_id"]
    assert item["status"] == "completed" and item["attempts"] == 1 and item["error_code"] is None
    assert item["outcome"] == "unchanged"  # the backfill had already stored this version whole

    assert [(p["run_id"], p["seen"]) for p in s["pulls"]] == [(second["id"], "unchanged"), (first["id"], "wrote")]
    assert all(p["kind"] == "full" and p["status"] == "succeeded" for p in s["pulls"])

    image = s["image"]
    assert image["sha256"] == sha and image["content_type"] == content_type and image["bytes"] > 0
    assert image["error"] is None and image["fetched_at"]

    r = cli(pull_env, "trace", "product", oid)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(f"product {oid} (zoho.products)")
    assert "row: live;" in out and "detail current" in out
    assert "deliveries: 2 (1 duplicate)" in out and f"duplicate of event {accepted['event_id']}" in out
    assert f"event {accepted['event_id']}, sync item {item['id']}" in out
    assert "sync items: 1" in out and "completed (unchanged)" in out
    assert "pulls that saw it: 2" in out
    assert f"run {first['id']:>6}" in out and "wrote the row" in out and "found it as stored" in out
    assert f"sha256 {sha}" in out

    r = cli(pull_env, "trace", "products", oid, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == s

    # Unknown id, unknown entity, no token.
    r = daemon.http.get("/api/tds/objects/product/4815000000000000000", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert "\n" not in r.json()["message"]
    r = daemon.http.get(f"/api/tds/objects/nosuch/{oid}", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "unknown_entity" and "product" in r.json()["message"]
    assert daemon.http.get(f"/api/tds/objects/product/{oid}").status_code == 401


def test_unknown_ids_and_entities_end_in_one_line(tds, pull_env):
    for args, words in ((("product", "4815000000000000000"), "no product"),
                        (("nosuch", "1"), "no entity type 'nosuch'; known: product")):
        r = cli(pull_env, "trace", *args)
        assert r.returncode == 1 and r.stdout == "", r
        assert r.stderr.startswith("tds: trace:") and words in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = cli({**pull_env, "TDS_DATABASE_URL": "postgresql+psycopg2://127.0.0.1:1/nowhere"}, "trace", "product", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_row_a_full_pull_deleted_names_that_pull(sim, tds, pull_env):
    sim.reset(counts={"customer": 4})
    assert tds.sync("customer", "full")["status"] == "succeeded"
    oid = sim.truth("customer")["objects"][0]["id"]
    sim.control("DELETE", f"objects/customer/{oid}")
    deleting = tds.sync("customer", "full")
    assert deleting["status"] == "succeeded" and deleting["deleted"] == 1, deleting

    r = cli(pull_env, "trace", "customers", oid, "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["row"]["deleted"] is True and s["row"]["last_pull_run_id"] == deleting["id"]
    assert [(p["run_id"], p["seen"]) for p in s["pulls"]] == [(deleting["id"], "wrote")]
    assert s["deliveries"] == [] and s["sync_items"] == [] and s["image"] is None
    r = cli(pull_env, "trace", "customer", oid)
    assert r.returncode == 0 and "row: deleted" in r.stdout and "deliveries: 0" in r.stdout, r
