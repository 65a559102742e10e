"""``GET /api/tds/webhooks/recent``: the latest deliveries, newest first, with what became of each, through a
running ``tds run`` (real gunicorn and workers)."""

from __future__ import annotations

import pytest
from support import ADMIN_TOKEN, WEBHOOK_TOKEN, queue_counts, wait_until
from support.db import add_items
from support.zoho_objects import default_payload, make_object, zoho_time

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PATH = "/api/tds/webhooks/recent"


def recent(daemon, **params) -> list[dict]:
    r = daemon.http.get(PATH, params=params, headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()["deliveries"]


def test_deliveries_newest_first_with_their_outcome(daemon, clean_db):
    product = make_object("product")
    pid = product["item_id"]
    first = daemon.post("products", default_payload("product", product), params={"event": "created"})
    # Applied before the next version arrives: two versions applied in one batch would both be "updated" by it.
    wait_until(lambda: queue_counts(clean_db) == {"completed": 1}, 30, message="the first delivery applied")
    newer = {**product, "name": "renamed", "last_modified_time": zoho_time(5)}
    second = daemon.post("items", default_payload("product", newer))
    again = daemon.post("items", default_payload("product", newer))
    customer = make_object("customer")
    third = daemon.post("contacts", default_payload("customer", customer))
    bad = make_object("product", rate="abc")  # refused by the apply: a dead letter at once
    fourth = daemon.post("products", default_payload("product", bad))
    refused = daemon.post("products", default_payload("product", product), token="wrong")
    assert [r.status_code for r in (first, second, again, third, fourth, refused)] == [202, 202, 200, 202, 202, 401]
    wait_until(lambda: queue_counts(clean_db) == {"completed": 3, "dead_letter": 1}, 30,
               message=f"3 applied and 1 dead letter (now {queue_counts(clean_db)})")

    got = recent(daemon)
    assert [(d["entity"], d["zoho_id"], d["event"], d["outcome"]) for d in got] == [
        ("product", bad["item_id"], "updated", "dead_letter"),
        ("customer", customer["contact_id"], "updated", "completed"),
        ("product", pid, "updated", "duplicate"),
        ("product", pid, "updated", "completed"),
        ("product", pid, "created", "completed"),
    ]
    assert [d["event_id"] for d in got] == [fourth.json()["event_id"], third.json()["event_id"],
                                            second.json()["event_id"], second.json()["event_id"],
                                            first.json()["event_id"]]
    assert [d["applied"] for d in got] == [None, "created", None, "updated", "created"]
    assert got[0]["error_code"] == "invalid_field" and "rate" in got[0]["error_message"], got[0]
    assert got[2]["duplicate"] and got[2]["sync_item_id"] is None
    times = [d["received"] for d in got]
    assert times == sorted(times, reverse=True) and all(t for t in times)
    assert all("payload" not in d for d in got), "no payload unless asked"

    with_payload = recent(daemon, payload="1", limit=3)
    assert [d["payload"] for d in with_payload] == [default_payload("product", bad),
                                                    default_payload("customer", customer), None]
    assert [d["event_id"] for d in recent(daemon, limit=2)] == [d["event_id"] for d in got[:2]]
    assert [d["zoho_id"] for d in recent(daemon, entity="customers")] == [customer["contact_id"]]
    assert [d["outcome"] for d in recent(daemon, entity="item")] == \
        ["dead_letter", "duplicate", "completed", "completed"]
    assert recent(daemon, entity="vendor") == []


@pytest.mark.parametrize("params, code, names", [
    ({"limit": "0"}, "invalid_parameter", "limit"),
    ({"limit": "501"}, "invalid_parameter", "limit"),
    ({"limit": "ten"}, "invalid_parameter", "limit"),
    ({"entity": "widgets"}, "unknown_entity", "widgets"),
    ({"payload": "maybe"}, "invalid_parameter", "payload"),
])
def test_bad_parameters_are_400_naming_them(daemon, params, code, names):
    r = daemon.http.get(PATH, params=params, headers=ADMIN)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] == code and names in body["message"], body
    assert set(body) == {"error", "message"}


def test_admin_token_is_required(daemon):
    assert daemon.http.get(PATH).status_code == 401
    assert daemon.http.get(PATH, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert daemon.http.get(PATH, headers={"X-TDS-Webhook-Token": WEBHOOK_TOKEN}).status_code == 401


def test_limit_defaults_to_50_and_caps_at_500(daemon, clean_db):
    """Items no worker has taken yet (made in the database: the daemon's workers would apply posted ones)."""
    add_items(clean_db, "pending", 60)
    r = daemon.http.get(PATH, headers=ADMIN).json()
    assert (r["limit"], len(r["deliveries"])) == (50, 50)
    assert len(recent(daemon, limit=500)) == 60
    assert {d["outcome"] for d in recent(daemon, limit=500)} == {"pending"}

