"""Webhooks end to end over HTTP: real gunicorn, real workers, real PostgreSQL and Redis."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse

import httpx
import pytest
from sqlalchemy import text
from support import WEBHOOK_TOKEN, all_applied, queue_counts, start_daemon, wait_until
from support.zoho_objects import default_payload, make_object, new_id, zoho_time

from tds_daemon import entities

TIMEOUT = 30


def row(engine, entity: str, zoho_id: str):
    table = entities.get(entity).table
    with engine.connect() as c:
        return c.execute(text(f"SELECT * FROM zoho.{table} WHERE zoho_id = :id"), {"id": zoho_id}).mappings().first()


def wait_applied(engine, expected: int):
    wait_until(lambda: all_applied(engine, expected), TIMEOUT,
               message=f"{expected} item(s) applied (now {queue_counts(engine)})")


def item_count(engine) -> int:
    return sum(queue_counts(engine).values())


@pytest.mark.parametrize("entity", [e.name for e in entities.ENTITIES])
def test_each_entity_is_applied_end_to_end(daemon, clean_db, entity):
    spec = entities.get(entity)
    obj = make_object(entity)
    r = daemon.post(spec.aliases[0], default_payload(entity, obj))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    wait_applied(clean_db, 1)
    stored = row(clean_db, entity, obj[spec.id_field])
    assert stored["raw"] == obj, "every field Zoho sent is kept in raw"
    assert stored["deleted_at"] is None
    for col in spec.columns:  # every typed column that the sample fills is populated
        if obj.get(col.field) not in (None, ""):
            assert stored[col.name] is not None, col.name
    if spec.modified_always:
        assert stored["zoho_last_modified"] is not None
    with clean_db.connect() as c:
        item = c.execute(text("SELECT status, outcome, entity_type FROM tds_sync_queue")).one()
    assert (item.status, item.outcome, item.entity_type) == ("completed", "created", entity)


def test_every_alias_routes_to_its_entity(daemon, clean_db):
    posted = []
    for spec in entities.ENTITIES:
        for alias in spec.route_names:
            obj = make_object(spec.name)
            assert daemon.post(alias, default_payload(spec.name, obj)).status_code == 202, alias
            posted.append((spec.name, obj[spec.id_field]))
    wait_applied(clean_db, len(posted))
    for entity, zoho_id in posted:
        assert row(clean_db, entity, zoho_id) is not None, (entity, zoho_id)


def test_body_formats_and_token_placements(daemon, clean_db):
    objs = [make_object("invoice") for _ in range(6)]
    ids = [o["invoice_id"] for o in objs]
    assert daemon.post("invoices", {"invoice": objs[0]}).status_code == 202  # Zoho's default payload
    assert daemon.post("invoices", {"data": objs[1]}).status_code == 202
    assert daemon.post("invoices", objs[2]).status_code == 202  # bare object
    form = urllib.parse.urlencode({"JSONString": json.dumps({"invoice": objs[3]})})
    assert daemon.post("invoices", form, content_type="application/x-www-form-urlencoded").status_code == 202
    # the previous system's header, and the query parameter
    assert daemon.post("invoices", {"invoice": objs[4]}, token=None,
                       headers={"X-Webhook-Key": WEBHOOK_TOKEN}).status_code == 202
    assert daemon.post("invoices", {"invoice": objs[5]}, token=None,
                       params={"token": WEBHOOK_TOKEN}).status_code == 202
    wait_applied(clean_db, 6)
    for obj, zoho_id in zip(objs, ids, strict=True):
        assert row(clean_db, "invoice", zoho_id)["raw"] == obj


def test_numeric_ids_are_kept_as_strings(daemon, clean_db):
    body = '{"item": {"item_id": 4815000000012345678, "name": "x", "last_modified_time": "' + zoho_time() + '"}}'
    assert daemon.post("items", body).status_code == 202
    wait_applied(clean_db, 1)
    assert row(clean_db, "product", "4815000000012345678") is not None


def test_integers_beyond_64_bits_are_kept_exactly(daemon, clean_db):
    # A custom field's number, say: JSON allows any size, and nothing TDS stores may round it.
    big, small = "123456789012345678901234567890", "-9223372036854775809"
    body = ('{"item": {"item_id": "77", "name": "x", "last_modified_time": "' + zoho_time()
            + f'", "custom_fields": [{{"value": {big}}}], "weight": {small}}}}}')
    assert daemon.post("items", body).status_code == 202
    wait_applied(clean_db, 1)
    with clean_db.connect() as c:
        stored = c.execute(text("SELECT payload #>> '{item,custom_fields,0,value}', payload #>> '{item,weight}' "
                                "FROM tds_inbox_events")).one()
        raw = c.execute(text("SELECT raw #>> '{custom_fields,0,value}', raw ->> 'weight' FROM zoho.products "
                             "WHERE zoho_id = '77'")).one()
    assert tuple(stored) == (big, small)
    assert tuple(raw) == (big, small)


def _raw_post(daemon, path: str, body: bytes, headers: dict) -> httpx.Response:
    return daemon.http.post(path, content=body, headers=headers)


BAD_INPUTS = [
    # (description, entity, body, headers, expected status, expected error code)
    ("invalid json", "items", b"{not json", {"Content-Type": "application/json"}, 400, "invalid_json"),
    ("json array", "items", b"[1, 2]", {"Content-Type": "application/json"}, 400, "not_an_object"),
    ("form without JSONString", "items", b"a=1", {"Content-Type": "application/x-www-form-urlencoded"}, 400,
     "missing_jsonstring"),
    ("form with bad JSON", "items", b"JSONString=%7Bnope", {"Content-Type": "application/x-www-form-urlencoded"},
     400, "invalid_json"),
    ("bad event", "items?event=exploded", b'{"item": {"item_id": "1"}}', {"Content-Type": "application/json"},
     400, "invalid_event"),
    ("unknown entity", "widgets", b'{"item_id": "1"}', {"Content-Type": "application/json"}, 404, "unknown_entity"),
    ("text/plain", "items", b'{"item": {"item_id": "1"}}', {"Content-Type": "text/plain"}, 415,
     "unsupported_media_type"),
    ("no id", "items", b'{"item": {"name": "no id"}}', {"Content-Type": "application/json"}, 422, "missing_id"),
    ("id of another entity", "invoices", b'{"item": {"item_id": "1"}}', {"Content-Type": "application/json"}, 422,
     "missing_id"),
    ("bad last modified", "items", b'{"item": {"item_id": "1", "last_modified_time": "yesterday"}}',
     {"Content-Type": "application/json"}, 422, "invalid_last_modified"),
]


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_and_nothing_is_stored(daemon, clean_db, case):
    _, entity, body, headers, status, code = case
    r = _raw_post(daemon, f"/api/tds/webhooks/{entity}", body, {**headers, "X-TDS-Webhook-Token": WEBHOOK_TOKEN})
    assert r.status_code == status, r.text
    assert r.json()["error"] == code
    assert r.json()["message"]
    assert "Traceback" not in r.text
    assert item_count(clean_db) == 0


@pytest.mark.parametrize("headers,code", [
    ({}, "token_missing"),
    ({"X-TDS-Webhook-Token": "wrong-token"}, "token_invalid"),
    ({"X-Webhook-Key": WEBHOOK_TOKEN + "x"}, "token_invalid"),
])
def test_bad_token_is_401(daemon, clean_db, headers, code):
    r = _raw_post(daemon, "/api/tds/webhooks/items", b'{"item": {"item_id": "1"}}',
                  {"Content-Type": "application/json", **headers})
    assert r.status_code == 401
    assert r.json()["error"] == code
    assert item_count(clean_db) == 0


def test_body_length_rules(daemon, clean_db):
    # No Content-Length (chunked): 411. httpx sends a generator body chunked.
    r = daemon.http.post("/api/tds/webhooks/items", content=iter([b'{"item": {"item_id": "1"}}']),
                         headers={"Content-Type": "application/json", "X-TDS-Webhook-Token": WEBHOOK_TOKEN})
    assert r.status_code == 411
    assert r.json()["error"] == "length_required"
    big = json.dumps({"item": {"item_id": "1", "description": "x" * (1048576 + 10)}}).encode()
    r = _raw_post(daemon, "/api/tds/webhooks/items", big,
                  {"Content-Type": "application/json", "X-TDS-Webhook-Token": WEBHOOK_TOKEN})
    assert r.status_code == 413
    assert r.json()["error"] == "body_too_large"
    assert item_count(clean_db) == 0


def test_duplicate_delivery_is_200_and_stored_once(daemon, clean_db):
    obj = make_object("customer")
    first = daemon.post("contacts", default_payload("customer", obj))
    again = daemon.post("customers", default_payload("customer", obj))
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    wait_applied(clean_db, 1)
    # A real change (newer last-modified time) is not a duplicate.
    newer = {**obj, "contact_name": "renamed", "last_modified_time": zoho_time(5)}
    assert daemon.post("customers", default_payload("customer", newer)).status_code == 202
    wait_applied(clean_db, 2)
    assert row(clean_db, "customer", obj["contact_id"])["contact_name"] == "renamed"


def test_objects_without_last_modified_use_content_for_duplicates(daemon, clean_db):
    obj = make_object("branch")
    assert daemon.post("branches", {"branch": obj}).status_code == 202
    assert daemon.post("branches", {"branch": obj}).status_code == 200
    changed = {**obj, "branch_name": "Jeddah"}
    assert daemon.post("branches", {"branch": changed}).status_code == 202
    wait_applied(clean_db, 2)
    assert row(clean_db, "branch", obj["branch_id"])["branch_name"] == "Jeddah"


def test_out_of_order_versions_end_at_the_newest(daemon, clean_db):
    zoho_id = new_id()
    versions = [make_object("product", zoho_id, minutes=m, name=f"v{m}") for m in (3, 1, 2, 0)]
    for obj in versions:
        assert daemon.post("products", {"item": obj}).status_code == 202
    wait_applied(clean_db, 4)
    assert row(clean_db, "product", zoho_id)["name"] == "v3"


def test_delete_marks_the_row_and_keeps_it(daemon, clean_db):
    obj = make_object("sales_order")
    assert daemon.post("salesorders", {"salesorder": obj}).status_code == 202
    wait_applied(clean_db, 1)
    r = daemon.post("sales-orders", {"salesorder": {"salesorder_id": obj["salesorder_id"],
                                                    "last_modified_time": obj["last_modified_time"]}},
                    headers={"X-TDS-Event": "deleted"})
    assert r.status_code == 202
    wait_applied(clean_db, 2)
    stored = row(clean_db, "sales_order", obj["salesorder_id"])
    assert stored["deleted_at"] is not None
    assert stored["salesorder_number"] == obj["salesorder_number"], "a delete keeps what we knew"
    # event_type in the body works too, for an object never seen before.
    other = make_object("bill")
    assert daemon.post("bills", {"bill": other, "event_type": "deleted"}).status_code == 202
    wait_applied(clean_db, 3)
    assert row(clean_db, "bill", other["bill_id"])["deleted_at"] is not None


def test_health_and_metrics(daemon, clean_db):
    assert daemon.http.get("/health/live").status_code == 200
    ready = daemon.http.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    obj = make_object("payment")
    assert daemon.post("payments", {"payment": obj}).status_code == 202
    daemon.post("payments", {"payment": obj})
    wait_applied(clean_db, 1)
    summary = daemon.http.get("/api/tds/webhooks/health").json()
    assert summary["received_24h"] == 1 and summary["queue_size"] == 0

    def scraped():
        body = daemon.http.get("/metrics").text
        return body if 'tds_webhook_apply_seconds_count{entity="payment"}' in body else None

    body = wait_until(scraped, TIMEOUT, message="apply histogram in /metrics")
    assert 'tds_webhooks_received_total{entity="payment",outcome="accepted"}' in body
    assert 'tds_webhooks_received_total{entity="payment",outcome="duplicate"}' in body
    assert 'tds_sync_items_total{entity="payment",outcome="created"}' in body
    assert 'tds_queue_items{entity="payment",status="completed"} 1.0' in body
    assert 'tds_build_info{version=' in body


def test_unknown_path_and_method_are_json(daemon):
    r = daemon.http.get("/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = daemon.http.get("/api/tds/webhooks/items")
    assert r.status_code == 405 and "error" in r.json()


@pytest.fixture(scope="module")
def signed_daemon(module_processes, migrated):
    d = start_daemon(module_processes, migrated, TDS_API_WEBHOOK_SECRET="s3cret-signing-key",
                     TDS_WORKERS_PROCESSES="1")
    yield d
    d.http.close()


def test_signature_is_required_when_a_secret_is_set(signed_daemon, clean_db):
    body = json.dumps({"item": make_object("product")}).encode()
    good = hmac.new(b"s3cret-signing-key", body, hashlib.sha256).hexdigest()
    base = {"Content-Type": "application/json", "X-TDS-Webhook-Token": WEBHOOK_TOKEN}
    r = _raw_post(signed_daemon, "/api/tds/webhooks/items", body, base)
    assert r.status_code == 401 and r.json()["error"] == "signature_missing"
    r = _raw_post(signed_daemon, "/api/tds/webhooks/items", body, {**base, "X-Zoho-Webhook-Signature": "0" * 64})
    assert r.status_code == 401 and r.json()["error"] == "signature_invalid"
    assert item_count(clean_db) == 0
    r = _raw_post(signed_daemon, "/api/tds/webhooks/items", body, {**base, "X-Zoho-Webhook-Signature": good})
    assert r.status_code == 202
    wait_applied(clean_db, 1)


def test_status_command_shows_queue_states(daemon, clean_db):
    import subprocess

    from support import ROOT, TDS

    obj = make_object("vendor")
    assert daemon.post("vendors", {"contact": obj}).status_code == 202
    wait_applied(clean_db, 1)
    out = subprocess.run([*TDS, "status", "--json"], env=daemon.env, capture_output=True, text=True, cwd=ROOT,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)["entities"]
    assert state["vendor"]["queue"]["completed"] == 1
    assert state["product"]["queue"] == {"pending": 0, "processing": 0, "completed": 0, "failed": 0,
                                         "dead_letter": 0}
    text_out = subprocess.run([*TDS, "status"], env=daemon.env, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert text_out.returncode == 0 and "vendor" in text_out.stdout
