"""The Zoho simulator, run as ``tds simulator`` and spoken to over real HTTP.

Two simulator processes per module: ``default_sim_base`` at the default volumes with no limits (each test
resets it to seed 1 and no faults), ``limited_base`` small, with 10 requests/min and 3 token
refreshes per 10 minutes, for the limit tests.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import json
import os
import signal
import statistics
import struct
import threading
import time
import urllib.parse
import zlib
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from support import TDS, free_port, web

from tds_daemon import entities
from tds_daemon.simulator.zohotime import ORG_TZ
from tds_daemon.zohovalues import parse_timestamp

ORG = "600000001"
CREDENTIALS = {"grant_type": "refresh_token", "client_id": "sim-client", "client_secret": "sim-secret",
               "refresh_token": "sim-refresh"}
NO_FAULTS = {"error_rate": 0, "latency_ms": 0, "down": "", "token_ttl_s": 3600, "fire_webhooks": None,
             "rate_limit": 0, "daily_limit": 0, "max_concurrency": 0, "refresh_limit": 0,
             "image_fault": None, "image_oversize_bytes": 5 * 1024 * 1024}
APP_PREFIX = {"books": "/books/v3", "inventory": "/inventory/v1"}


def start_simulator(procs, *args: str) -> str:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs.start("simulator", [*TDS, "simulator", "--port", str(port), *args],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                ready=lambda: web.get(f"{base}/_sim/info", timeout=2).status_code == 200, timeout=30)
    return base


class Sim:
    """A simulator and a client holding one access token."""

    def __init__(self, base: str):
        self.base = base
        self.http = web.Client(base_url=base, timeout=10)
        self.token = self.grant().json()["access_token"]

    def grant(self, **overrides) -> httpx.Response:
        return self.http.post("/oauth/v2/token", data={**CREDENTIALS, **overrides})

    def api(self, app: str, path: str, token: str | None = None, org: str | None = ORG, **params) -> httpx.Response:
        headers = {"Authorization": f"Zoho-oauthtoken {token or self.token}"}
        if org is not None:
            params["organization_id"] = org
        return self.http.get(APP_PREFIX[app] + path, headers=headers, params=params)

    def control(self, method: str, path: str, body=None) -> dict:
        r = self.http.request(method, f"/_sim/{path}", json=body)
        assert r.status_code < 300, r.text
        return r.json()

    def pages(self, spec: entities.EntitySpec, **params) -> list[dict]:
        rows, page = [], 1
        while True:
            r = self.api(spec.app, spec.list_path, page=page, per_page=200, **dict(spec.list_params), **params)
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["code"] == 0 and body["message"] == "success"
            assert body["page_context"]["page"] == page and body["page_context"]["per_page"] == 200
            rows += body[spec.list_key]
            if not body["page_context"]["has_more_page"]:
                return rows
            assert len(body[spec.list_key]) == 200
            page += 1


@pytest.fixture(scope="module")
def default_sim_base(module_processes):
    started = time.monotonic()
    base = start_simulator(module_processes, "--seed", "1", "--rate-limit", "0", "--refresh-limit", "0")
    assert time.monotonic() - started < 15, "startup at the default volumes must take seconds"
    return base


@pytest.fixture(scope="module")
def limited_base(module_processes):
    return start_simulator(module_processes, "--seed", "1", "--scale", "0.05", "--rate-limit", "10",
                           "--refresh-limit", "3")


@pytest.fixture
def sim_api(default_sim_base):
    s = Sim(default_sim_base)
    s.control("POST", "faults", NO_FAULTS)
    s.control("POST", "reset", {"seed": 1, "scale": 1.0, "counts": {}, "last_modified_everywhere": False})
    yield s
    s.http.close()


@pytest.fixture
def limited(limited_base):
    web.post(f"{limited_base}/_sim/reset", json={}).raise_for_status()  # fresh limit windows and refresh counts
    s = Sim(limited_base)
    yield s
    s.http.close()


def lm(row: dict) -> float:
    return parse_timestamp(row["last_modified_time"]).timestamp()


# --- OAuth and the checks before any answer ---

def test_token_flow(sim_api):
    r = sim_api.grant()
    body = r.json()
    assert r.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["access_token"].startswith("1000.") and body["api_domain"] == sim_api.base
    assert sim_api.api("inventory", "/items", token=body["access_token"], per_page=1).status_code == 200
    # Zoho answers bad credentials with HTTP 200 and an "error" key
    assert sim_api.grant(client_id="nope").json() == {"error": "invalid_client"}
    assert sim_api.grant(client_secret="nope").json() == {"error": "invalid_client_secret"}
    assert sim_api.grant(refresh_token="nope").json() == {"error": "invalid_code"}


def test_unauthorized_without_or_with_expired_token(sim_api):
    r = sim_api.http.get("/books/v3/invoices", params={"organization_id": ORG})
    assert r.status_code == 401 and r.json()["code"] == 14
    r = sim_api.api("books", "/invoices", token="1000.dead.beef")
    assert r.status_code == 401
    assert r.json() == {"code": 57, "message": "You are not authorized to perform this operation"}
    assert sim_api.api("books", "/invoices").status_code == 200
    assert sim_api.control("POST", "faults", {"expire_tokens": True})["expired_tokens"] >= 1
    r = sim_api.api("books", "/invoices")
    assert r.status_code == 401 and r.json()["code"] == 57
    fresh = sim_api.grant().json()["access_token"]
    assert sim_api.api("books", "/invoices", token=fresh).status_code == 200


def test_organization_id_required(sim_api):
    r = sim_api.api("books", "/invoices", org=None)
    assert r.status_code == 400 and r.json()["code"] != 0
    r = sim_api.api("books", "/invoices", org="700000002")
    assert r.status_code == 400 and r.json()["code"] == 6041
    assert sim_api.api("books", "/invoices").status_code == 200
    assert sim_api.http.get("/books/v3/organizations", headers={"Authorization": f"Zoho-oauthtoken {sim_api.token}"}) \
        .json()["organizations"][0]["organization_id"] == ORG


def test_token_refresh_is_limited(limited):
    limited.control("POST", "reset", {})  # forget the fixture's own refresh
    assert [limited.grant().status_code for _ in range(3)] == [200, 200, 200]
    r = limited.grant()
    assert r.status_code == 400
    assert r.json()["error"] == "Access Denied" and "too many requests continuously" in r.json()["error_description"]
    assert limited.control("GET", "stats")["oauth"]["throttled"] == 1


# --- lists and objects ---

@pytest.mark.parametrize("entity", ["product", "customer", "vendor"])
def test_pagination_covers_exactly_the_objects(sim_api, entity):
    spec = entities.get(entity)
    rows = sim_api.pages(spec)
    truth = sim_api.control("GET", f"objects/{entity}")
    ids = [row[spec.id_field] for row in rows]
    assert len(ids) == len(set(ids)) == truth["count"]
    assert set(ids) == {o["id"] for o in truth["objects"]}
    assert truth["count"] == {"product": 1312, "customer": 2503, "vendor": 180}[entity]


def test_every_entity_serves_the_fields_tds_reads(sim_api):
    for spec in entities.ENTITIES:
        r = sim_api.api(spec.app, spec.list_path, per_page=5, **dict(spec.list_params))
        assert r.status_code == 200, (spec.name, r.text)
        rows = r.json()[spec.list_key]
        assert rows, spec.name
        for row in rows:
            zoho_id = row[spec.id_field]
            assert isinstance(zoho_id, str) and len(zoho_id) == 19 and zoho_id.isdigit()
            if spec.modified_always:
                assert parse_timestamp(row[spec.last_modified]) is not None
                assert row[spec.last_modified][-5] in "+-" and ":" not in row[spec.last_modified][-5:]
            missing = [c.field for c in spec.columns if c.field not in row]
            assert not missing, (spec.name, missing)
            for key, value in spec.list_params:
                assert row[key] == value
        one = sim_api.api(spec.app, f"{spec.list_path}/{rows[0][spec.id_field]}")
        assert one.status_code == 200 and one.json()[spec.object_key][spec.id_field] == rows[0][spec.id_field]


def test_last_modified_may_be_absent(sim_api):
    spec = entities.get("price_list")
    assert not spec.modified_always
    row = sim_api.api(spec.app, spec.list_path).json()[spec.list_key][0]
    assert "last_modified_time" not in row and "pricebook_items" not in row
    assert sim_api.api(spec.app, f"{spec.list_path}/{row[spec.id_field]}").json()[spec.object_key]["pricebook_items"]
    sim_api.control("POST", "reset", {"seed": 1, "scale": 0.05, "last_modified_everywhere": True})
    assert "last_modified_time" in sim_api.api(spec.app, spec.list_path).json()[spec.list_key][0]
    sim_api.control("POST", "reset", {"last_modified_everywhere": False})


def test_get_returns_the_full_object_and_unknown_ids_are_not_found(sim_api):
    item = sim_api.api("inventory", "/items", per_page=1).json()["items"][0]
    assert "locations" not in item and {"stock_on_hand", "available_stock"} <= set(item)
    full = sim_api.api("inventory", f"/items/{item['item_id']}").json()["item"]
    assert sum(loc["location_stock_on_hand"] for loc in full["locations"]) == full["stock_on_hand"]
    invoice = sim_api.api("books", "/invoices", per_page=1).json()["invoices"][0]
    assert sim_api.api("books", f"/invoices/{invoice['invoice_id']}").json()["invoice"]["line_items"]
    r = sim_api.api("inventory", "/items/1234567890123456789")
    assert r.status_code == 404 and r.json()["code"] == 1002
    r = sim_api.api("inventory", "/nothing-here")
    assert r.status_code == 404 and r.json()["code"] != 0


def test_sort_newest_first_by_last_modified_time(sim_api):
    rows = sim_api.api("books", "/invoices", sort_column="last_modified_time", sort_order="D").json()["invoices"]
    times = [lm(r) for r in rows]
    assert len(rows) == 200 and times == sorted(times, reverse=True)
    truth = sim_api.control("GET", "objects/invoice")["objects"]
    assert times[0] == max(parse_timestamp(o["last_modified_time"]).timestamp() for o in truth)
    ascending = sim_api.api("books", "/invoices", sort_column="last_modified_time", sort_order="A").json()["invoices"]
    assert [lm(r) for r in ascending] == sorted(lm(r) for r in ascending)
    names = [r["name"] for r in sim_api.api("inventory", "/items", sort_column="name", sort_order="A").json()["items"]]
    assert names == sorted(names, key=str.casefold)
    assert sim_api.api("inventory", "/items", sort_column="no_such_field").json()["code"] == 2


def test_last_modified_time_filter(sim_api):
    newest = sim_api.api("books", "/invoices", sort_column="last_modified_time", sort_order="D", per_page=50)
    since = newest.json()["invoices"][-1]["last_modified_time"]  # e.g. 2025-11-13T08:40:00+0300
    rows = sim_api.pages(entities.get("invoice"), last_modified_time=since)
    truth = sim_api.control("GET", "objects/invoice")["objects"]
    expected = {o["id"] for o in truth if parse_timestamp(o["last_modified_time"]) >= parse_timestamp(since)}
    assert {r["invoice_id"] for r in rows} == expected and len(expected) >= 50
    assert all(lm(r) >= parse_timestamp(since).timestamp() for r in rows)


def test_same_seed_same_first_page(sim_api, limited):
    sim_api.control("POST", "reset", {"seed": 1, "scale": 0.05})
    ours, theirs = (s.api("inventory", "/items").json() for s in (sim_api, limited))  # limited: --seed 1 --scale 0.05
    assert ours == theirs and len(ours["items"]) > 10
    sim_api.control("POST", "reset", {"seed": 2, "scale": 0.05})
    assert sim_api.api("inventory", "/items").json()["items"] != ours["items"]


def test_a_page_is_served_fast(sim_api):
    spent = []
    for page in range(1, 6):
        started = time.perf_counter()
        r = sim_api.api("books", "/contacts", page=page, sort_column="last_modified_time")
        spent.append(time.perf_counter() - started)
        assert r.status_code == 200 and len(r.json()["contacts"]) == 200
    assert statistics.median(spent) < 0.05, spent


def test_concurrent_requests(sim_api):
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda p: sim_api.api("books", "/invoices", page=p % 15 + 1).status_code, range(48)))
    assert statuses == [200] * 48


# --- limits and faults ---

def test_rate_limit_answers_429_with_retry_after(limited):
    statuses = [limited.api("books", "/invoices", per_page=1).status_code for _ in range(10)]
    assert statuses == [200] * 10
    r = limited.api("books", "/invoices", per_page=1)
    assert r.status_code == 429 and r.json()["code"] == 44
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert limited.api("inventory", "/items", per_page=1).status_code == 200  # counted per app
    books = limited.control("GET", "stats")["apps"]["books"]
    assert books["status"]["429"] == 1 and books["limited"] == 1
    assert books["max_window_accepted"] == 10 and books["max_window"] == 11


RATE_HEADERS = ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset")


def remaining(r: httpx.Response) -> int:
    return int(r.headers["X-Rate-Limit-Remaining"])


def seconds_to_org_midnight() -> float:
    now = dt.datetime.now(ORG_TZ)
    return (dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), ORG_TZ) - now).total_seconds()


def test_rate_limit_headers_count_the_organization_s_calls(sim_api):
    books, inventory = sim_api.api("books", "/invoices", per_page=1), sim_api.api("inventory", "/items", per_page=1)
    assert books.status_code == inventory.status_code == 200
    assert books.headers["X-Rate-Limit-Limit"] == "1000000"  # daily_limit 0: the stand-in for unlimited
    assert remaining(books) == 1000000 - 1 and remaining(inventory) == 1000000 - 2  # one count, both apps
    off = (int(books.headers["X-Rate-Limit-Reset"]) - seconds_to_org_midnight()) % 86400
    assert min(off, 86400 - off) <= 3
    sim_api.control("POST", "faults", {"daily_limit": 50, "error_rate": 1})
    injected = sim_api.api("books", "/invoices", per_page=1)
    assert injected.status_code in (500, 503)
    assert injected.headers["X-Rate-Limit-Limit"] == "50" and remaining(injected) == 47
    sim_api.control("POST", "faults", {"error_rate": 0})
    assert remaining(sim_api.api("books", "/invoices/nope")) == 46  # a 404 of the resource counts and says so
    for r in (sim_api.api("books", "/invoices", token="nope"), sim_api.api("books", "/invoices", org=None)):
        assert r.status_code in (400, 401) and not any(h in r.headers for h in RATE_HEADERS)  # before the checks
    assert sim_api.control("GET", "stats")["daily_used"] == sim_api.control("GET", "faults")["daily_used"] == 4


def test_daily_used_stands_for_other_integrations(sim_api):
    view = sim_api.control("POST", "faults", {"daily_limit": 100, "daily_used": 40})
    assert view["daily_limit"] == 100 and view["daily_used"] == 40
    r = sim_api.api("inventory", "/items", per_page=1)
    assert r.status_code == 200 and r.headers["X-Rate-Limit-Limit"] == "100" and remaining(r) == 100 - 40 - 1
    assert sim_api.control("GET", "faults")["daily_used"] == 41
    for bad in ({"daily_used": -1}, {"daily_used": "many"}, {"max_concurrency": -2}, {"daily_limit": 1.5}):
        assert sim_api.http.post("/_sim/faults", json=bad).status_code == 400, bad
    assert sim_api.control("GET", "faults")["daily_used"] == 41


def test_daily_limit_is_per_organization_across_apps(sim_api):
    sim_api.control("POST", "faults", {"daily_limit": 3})
    assert [sim_api.api(app, path, per_page=1).status_code
            for app, path in (("books", "/invoices"), ("inventory", "/items"), ("books", "/contacts"))] == [200] * 3
    for app, path in (("books", "/invoices"), ("inventory", "/items")):
        r = sim_api.api(app, path, per_page=1)
        assert r.status_code == 429 and r.json()["code"] == 45, r.text
        assert remaining(r) == 0 and r.headers["X-Rate-Limit-Limit"] == "3"
        assert 1 <= int(r.headers["Retry-After"]) <= 86400
    stats = sim_api.control("GET", "stats")
    assert stats["daily_used"] == 3 and stats["apps"]["books"]["limited"] == stats["apps"]["inventory"]["limited"] == 1
    sim_api.control("POST", "faults", {"daily_used": 0})  # a new day, as far as the count goes
    assert sim_api.api("inventory", "/items", per_page=1).status_code == 200
    sim_api.control("POST", "faults", {"daily_used": 3})
    assert sim_api.api("books", "/invoices", per_page=1).status_code == 429
    sim_api.control("POST", "reset", {})
    stats = sim_api.control("GET", "stats")
    assert stats["daily_used"] == 0 and stats["apps"]["books"]["limited"] == 0
    assert sim_api.api("books", "/invoices", per_page=1).status_code == 200


def burst(sim, n: int) -> list[httpx.Response]:
    """``n`` requests sent at once from ``n`` threads, books and inventory alternately."""
    start = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        start.wait(timeout=10)
        return sim.api(*(("books", "/invoices") if i % 2 else ("inventory", "/items")), per_page=1)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrency_cap_refuses_requests_beyond_it(sim_api):
    sim_api.control("POST", "faults", {"latency_ms": 400, "max_concurrency": 2})
    assert sim_api.control("GET", "faults")["max_concurrency"] == 2
    answers = burst(sim_api, 6)
    refused = [r for r in answers if r.status_code == 429]
    assert {r.status_code for r in answers} == {200, 429} and len(answers) - len(refused) >= 2
    for r in refused:
        assert r.json() == {"code": 1070, "message": "You have made too many concurrent requests. "
                                                   "Please try again later."}
        assert r.headers["Retry-After"] == "1" and all(h in r.headers for h in RATE_HEADERS)
    stats = sim_api.control("GET", "stats")
    assert stats["max_concurrent"] == 2 and stats["concurrency_limited"] == len(refused) and stats["in_flight"] == 0
    apps = stats["apps"]
    per_app = [apps[a]["max_concurrent"] for a in APP_PREFIX]
    assert max(per_app) <= 2 and sum(per_app) >= 2  # the two let through may be of one app or of both
    assert sum(apps[a]["concurrency_limited"] for a in APP_PREFIX) == len(refused)
    assert sum(apps[a]["limited"] for a in APP_PREFIX) == 0  # refused for concurrency, not for the minute or day
    assert stats["daily_used"] == len(answers) - len(refused)  # a refused request is not counted
    sim_api.control("POST", "faults", {"latency_ms": 0})
    assert sim_api.api("books", "/invoices", per_page=1).status_code == 200  # the slots came back
    sim_api.control("POST", "reset", {})
    stats = sim_api.control("GET", "stats")
    assert stats["max_concurrent"] == stats["concurrency_limited"] == 0


def test_no_concurrency_cap_when_off(sim_api):
    sim_api.control("POST", "faults", {"latency_ms": 300})
    answers = burst(sim_api, 6)
    assert [r.status_code for r in answers] == [200] * 6
    stats = sim_api.control("GET", "stats")
    assert stats["concurrency_limited"] == 0 and stats["max_concurrent"] >= 3  # the server serves them at once


def test_cli_limit_flags(processes):
    base = start_simulator(processes, "--scale", "0.01", "--daily-limit", "2", "--max-concurrency", "3")
    s = Sim(base)
    try:
        view = s.control("GET", "faults")
        assert view["daily_limit"] == 2 and view["max_concurrency"] == 3
        assert [s.api(app, "/invoices", per_page=1).status_code for app in ("books", "inventory", "books")] == \
            [200, 200, 429]
    finally:
        s.http.close()


def test_injected_errors_latency_and_down(sim_api):
    sim_api.control("POST", "faults", {"error_rate": 1})
    r = sim_api.api("books", "/invoices")
    assert r.status_code in (500, 503)
    sim_api.control("POST", "faults", {"error_rate": 0, "latency_ms": 200})
    started = time.monotonic()
    assert sim_api.api("books", "/invoices", per_page=1).status_code == 200
    assert time.monotonic() - started >= 0.2
    sim_api.control("POST", "faults", {"latency_ms": 0, "down": "503"})
    assert sim_api.api("books", "/invoices").status_code == 503 and sim_api.grant().status_code == 503
    sim_api.control("POST", "faults", {"down": "refuse"})
    with pytest.raises(httpx.TransportError):
        sim_api.api("books", "/invoices")
    sim_api.control("POST", "faults", {"down": ""})
    assert sim_api.api("books", "/invoices", per_page=1).status_code == 200


# --- control API and webhooks ---

def test_create_modify_delete_are_visible_in_lists(sim_api):
    created = sim_api.control("POST", "objects/product", {"name": "منتج تجريبي", "rate": 10})["object"]
    item_id = created["item_id"]
    newest = sim_api.api("inventory", "/items", sort_column="last_modified_time", sort_order="D", per_page=1)
    assert newest.json()["items"][0]["item_id"] == item_id
    assert sim_api.control("GET", "objects/product")["count"] == 1313

    changed = sim_api.control("PATCH", f"objects/product/{item_id}", {"rate": 12.5})["object"]
    assert lm(changed) > lm(created) and changed["rate"] == 12.5
    rows = sim_api.api("inventory", "/items", last_modified_time=changed["last_modified_time"]).json()["items"]
    assert [(r["item_id"], r["rate"]) for r in rows] == [(item_id, 12.5)]

    customer = sim_api.api("books", "/contacts", contact_type="customer", per_page=1).json()["contacts"][0]
    sim_api.control("DELETE", f"objects/customer/{customer['contact_id']}")
    assert sim_api.api("books", f"/contacts/{customer['contact_id']}").status_code == 404
    ids = {r["contact_id"] for r in sim_api.pages(entities.get("customer"))}
    assert customer["contact_id"] not in ids and len(ids) == 2502
    assert sim_api.control("GET", "objects/customer")["deleted"] == [customer["contact_id"]]


@pytest.fixture
def receiver():
    got: list[tuple[str, dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append((self.path, dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(202)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "accepted", "event_id": 1}')

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", got
    server.shutdown()
    server.server_close()


def test_webhooks_reach_tds(sim_api, receiver):
    url, got = receiver
    item = sim_api.api("inventory", "/items", per_page=1).json()["items"][0]
    answer = sim_api.control("POST", "webhooks/fire", {"url": url, "token": "tok", "entity": "product",
                                                    "id": item["item_id"], "event": "created"})
    assert answer["status"] == 202 and answer["body"]["status"] == "accepted"
    path, headers, body = got[-1]
    assert path == "/api/tds/webhooks/products?event=created" and headers["X-TDS-Webhook-Token"] == "tok"
    assert json.loads(body)["item"]["item_id"] == item["item_id"]

    sim_api.control("POST", "webhooks/fire", {"url": url, "token": "tok", "entity": "sales_order", "format": "form",
                                          "id": sim_api.api("inventory", "/salesorders").json()["salesorders"][0]
                                          ["salesorder_id"]})
    path, headers, body = got[-1]
    assert path == "/api/tds/webhooks/orders?event=updated"
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert json.loads(urllib.parse.parse_qs(body.decode())["JSONString"][0])["line_items"]

    sim_api.control("POST", "faults", {"fire_webhooks": {"url": url, "token": "tok", "format": "data"}})
    changed = sim_api.control("PATCH", f"objects/product/{item['item_id']}", {"stock_on_hand": 7})
    assert changed["webhook"]["status"] == 202
    assert json.loads(got[-1][2])["data"]["stock_on_hand"] == 7 and got[-1][0].endswith("event=updated")


def test_sigterm_stops_cleanly(processes):
    base = start_simulator(processes, "--scale", "0.01")
    proc = processes.procs[-1][1]
    assert processes.stop(proc, signal.SIGTERM, timeout=10) == 0
    assert "tds simulator stopped" in processes.output(proc)
    with pytest.raises(httpx.TransportError):
        web.get(f"{base}/_sim/info", timeout=2)


# --- item images ---

IMAGE_FIELDS = ("image_id", "image_document_id", "image_name", "image_type")


def decode_png(data: bytes) -> tuple[int, int]:
    """A PNG's (width, height), after checking its chunks' CRCs and that its pixel data inflates to
    exactly its rows."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat, kinds, head = 8, b"", [], None
    while i < len(data):
        n, kind = struct.unpack(">I", data[i:i + 4])[0], data[i + 4:i + 8]
        body, crc = data[i + 8:i + 8 + n], data[i + 8 + n:i + 12 + n]
        assert struct.unpack(">I", crc)[0] == zlib.crc32(kind + body), kind
        kinds.append(kind)
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        i += 12 + n
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds and i == len(data)
    width, height, depth, colour = head[:4]
    assert depth == 8 and colour in (2, 6)
    stride = width * (3 if colour == 2 else 4) + 1
    raw = zlib.decompress(idat)
    assert len(raw) == height * stride and all(raw[y * stride] <= 4 for y in range(height))
    return width, height


def decode_jpeg(data: bytes) -> tuple[int, int, int]:
    """A baseline JPEG's (width, height, components), after Huffman-decoding its whole scan with the
    file's own tables: every block of every component, nothing left over but padding."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    i, tables, frame = 2, {}, None
    while True:
        assert data[i] == 0xFF, i
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2:i + 4])[0]
        seg, i = data[i + 4:i + 2 + length], i + 2 + length
        assert marker not in (0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB), "not baseline"
        if marker == 0xC0:
            _, height, width, n = struct.unpack(">BHHB", seg[:6])
            assert all(seg[7 + 3 * k] == 0x11 for k in range(n))  # 4:4:4
            frame = (width, height, n)
        elif marker == 0xC4:
            j = 0
            while j < len(seg):
                counts = seg[j + 1:j + 17]
                symbols, codes, code = iter(seg[j + 17:j + 17 + sum(counts)]), {}, 0
                for bits, count in enumerate(counts, 1):
                    for _ in range(count):
                        codes[(bits, code)], code = next(symbols), code + 1
                    code <<= 1
                tables[seg[j]], j = codes, j + 17 + sum(counts)
        elif marker == 0xDA:
            selectors = [seg[2 + 2 * k] for k in range(seg[0])]
            break
    width, height, n = frame
    bits = "".join(f"{b:08b}" for b in data[i:-2].replace(b"\xff\x00", b"\xff"))
    pos = 0

    def take(k: int) -> int:
        nonlocal pos
        pos += k
        assert pos <= len(bits), "the scan ends early"
        return int(bits[pos - k:pos] or "0", 2)

    def symbol(table: dict) -> int:
        code = 0
        for length in range(1, 17):
            code = code << 1 | take(1)
            if (length, code) in table:
                return table[(length, code)]
        raise AssertionError("no such Huffman code")

    for _ in range(-(-width // 8) * -(-height // 8)):
        for sel in selectors:
            take(symbol(tables[sel >> 4]))  # DC: category, then its bits
            k = 1
            while k < 64:
                run, size = divmod(symbol(tables[0x10 | sel & 15]), 16)
                if size == 0 and run != 15:
                    break  # end of block
                k += run + 1
                take(size)
    assert len(bits) - pos < 8 and set(bits[pos:]) <= {"1"}, "only padding after the last block"
    return width, height, n


def image_items(sim) -> tuple[list[dict], list[dict]]:
    rows = sim.pages(entities.get("product"))
    return [r for r in rows if r["image_document_id"]], [r for r in rows if not r["image_document_id"]]


def test_items_carry_image_fields(sim_api):
    with_image, without = image_items(sim_api)
    assert 0.5 < len(with_image) / (len(with_image) + len(without)) < 0.7
    for row in with_image:
        assert len(row["image_id"]) == 19 and row["image_id"].isdigit() and row["image_id"] == row["image_document_id"]
        assert row["image_type"] in ("png", "jpg") and row["image_name"].endswith("." + row["image_type"])
    assert {r["image_type"] for r in with_image} == {"png", "jpg"}
    assert all(r[f] == "" for r in without for f in IMAGE_FIELDS)  # Zoho's empty strings, not missing keys
    full = sim_api.api("inventory", f"/items/{with_image[0]['item_id']}").json()["item"]
    assert {f: full[f] for f in IMAGE_FIELDS} == {f: with_image[0][f] for f in IMAGE_FIELDS}
    shared = [d for d, n in collections.Counter(r["image_document_id"] for r in with_image).items() if n > 1]
    assert len(shared) == 1  # one image shown by several items (deduplication)


def test_item_image_read(sim_api):
    with_image, _ = image_items(sim_api)
    first = {t: next(r for r in with_image if r["image_type"] == t) for t in ("png", "jpg")}
    before = sim_api.control("GET", "stats")["daily_used"]
    answers = []
    for image_type, row in first.items():
        r = sim_api.api("inventory", f"/items/{row['item_id']}/image")
        assert r.status_code == 200 and r.headers["Content-Type"] == {"png": "image/png", "jpg": "image/jpeg"}[
            image_type]
        assert 200 <= len(r.content) <= 8192
        if image_type == "png":
            assert decode_png(r.content) == (24, 24)
        else:
            assert decode_jpeg(r.content) == (32, 32, 3)
        again = sim_api.api("inventory", f"/items/{row['item_id']}/image")
        assert again.content == r.content and remaining(again) == remaining(r) - 1  # one call each
        truth = sim_api.http.get(f"/_sim/objects/product/{row['item_id']}/image")
        assert truth.status_code == 200 and truth.content == r.content
        assert truth.headers["X-Image-SHA256"] == hashlib.sha256(r.content).hexdigest()
        assert truth.headers["X-Image-Document-Id"] == row["image_document_id"]
        answers.append(r)
    assert answers[0].content != answers[1].content
    shared = collections.defaultdict(list)
    for row in with_image:
        shared[row["image_document_id"]].append(row["item_id"])
    one, two = next(ids for ids in shared.values() if len(ids) > 1)[:2]
    a, b = (sim_api.api("inventory", f"/items/{i}/image").content for i in (one, two))
    assert a == b  # the same image document, the same bytes
    stats = sim_api.control("GET", "stats")
    assert stats["entities"]["product"]["image"] == 6 and stats["images"]["served"] == 6
    assert stats["daily_used"] == before + 6  # the control API's reads are not Zoho calls

    sim_api.control("POST", "faults", {"daily_limit": stats["daily_used"]})
    r = sim_api.api("inventory", f"/items/{one}/image")
    assert r.status_code == 429 and r.json()["code"] == 45 and remaining(r) == 0


def test_item_image_not_found(sim_api):
    _, without = image_items(sim_api)
    item_id = without[0]["item_id"]
    r = sim_api.api("inventory", f"/items/{item_id}/image")
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")
    assert r.json()["code"] == 1002 and r.json()["message"] and "X-Rate-Limit-Remaining" in r.headers
    r = sim_api.api("inventory", "/items/1234567890123456789/image")
    assert r.status_code == 404 and r.json() == {"code": 1002, "message": "Item does not exist."}
    assert sim_api.api("inventory", f"/contacts/{item_id}/image").json()["code"] == 5
    assert sim_api.api("books", f"/items/{item_id}/image").status_code == 404
    assert sim_api.http.get(f"/_sim/objects/product/{item_id}/image").status_code == 404
    assert sim_api.http.delete(f"/_sim/objects/product/{item_id}/image").status_code == 404
    assert sim_api.control("GET", "stats")["images"]["not_found"] == 2


def test_item_image_changes_and_removal(sim_api, receiver):
    url, got = receiver
    with_image, without = image_items(sim_api)
    row = next(r for r in with_image if r["image_type"] == "png")
    old = sim_api.api("inventory", f"/items/{row['item_id']}/image").content
    sim_api.control("POST", "faults", {"fire_webhooks": {"url": url, "token": "tok"}})

    answer = sim_api.control("PUT", f"objects/product/{row['item_id']}/image", {"format": "jpg"})
    item = answer["object"]
    assert answer["webhook"]["status"] == 202 and json.loads(got[-1][2])["item"]["image_id"] == item["image_id"]
    assert item["image_id"] != row["image_id"] and item["image_document_id"] == item["image_id"]
    assert item["image_type"] == "jpg" and item["image_name"].endswith(".jpg") and lm(item) > lm(row)
    r = sim_api.api("inventory", f"/items/{row['item_id']}/image")
    assert r.headers["Content-Type"] == "image/jpeg" and r.content != old and decode_jpeg(r.content)
    assert answer["image"]["sha256"] == hashlib.sha256(r.content).hexdigest() == \
        sim_api.http.get(f"/_sim/objects/product/{row['item_id']}/image").headers["X-Image-SHA256"]
    listed = sim_api.api("inventory", "/items", last_modified_time=item["last_modified_time"]).json()["items"]
    assert [(x["item_id"], x["image_id"]) for x in listed] == [(row["item_id"], item["image_id"])]

    fresh = sim_api.control("PUT", f"objects/product/{without[0]['item_id']}/image", {})["object"]  # png by default
    assert fresh["image_type"] == "png" and fresh["image_id"] not in (item["image_id"], row["image_id"])
    assert decode_png(sim_api.api("inventory", f"/items/{fresh['item_id']}/image").content)

    removed = sim_api.control("DELETE", f"objects/product/{row['item_id']}/image")
    gone = removed["object"]
    assert all(gone[f] == "" for f in IMAGE_FIELDS) and lm(gone) > lm(item)
    assert json.loads(got[-1][2])["item"]["image_id"] == "" and removed["webhook"]["status"] == 202
    assert sim_api.api("inventory", f"/items/{row['item_id']}/image").status_code == 404
    assert sim_api.http.get(f"/_sim/objects/product/{row['item_id']}/image").status_code == 404
    assert sim_api.api("inventory", f"/items/{row['item_id']}").json()["item"]["image_document_id"] == ""

    assert sim_api.http.put(f"/_sim/objects/product/{row['item_id']}/image", json={"format": "gif"}).status_code == 400
    customer = sim_api.api("books", "/contacts", contact_type="customer", per_page=1).json()["contacts"][0]
    assert sim_api.http.put(f"/_sim/objects/customer/{customer['contact_id']}/image", json={}).status_code == 404
    assert sim_api.http.put("/_sim/objects/product/1234567890123456789/image", json={}).status_code == 404


def test_image_faults(sim_api):
    with_image, _ = image_items(sim_api)
    item_id = with_image[0]["item_id"]

    def read() -> httpx.Response:
        return sim_api.api("inventory", f"/items/{item_id}/image")

    good = read().content
    sim_api.control("POST", "faults", {"image_fault": "not_found"})
    r = read()
    assert r.status_code == 404 and r.json()["code"] == 1002
    assert sim_api.api("inventory", f"/items/{item_id}").status_code == 200  # only image reads are affected
    sim_api.control("POST", "faults", {"image_fault": "not_an_image"})
    r = read()
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert not r.content.startswith(b"\x89PNG") and b"<html" in r.content.lower()
    sim_api.control("POST", "faults", {"image_fault": "html"})
    r = read()
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html") and b"<html" in r.content
    assert sim_api.control("GET", "faults")["image_fault"] == "html"
    sim_api.control("POST", "faults", {"image_fault": "oversized"})
    r = read()
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert len(r.content) == 5 * 1024 * 1024 and r.content.startswith(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    sim_api.control("POST", "faults", {"image_oversize_bytes": 100_000})
    assert len(read().content) == 100_000
    for bad in ({"image_fault": "broken"}, {"image_oversize_bytes": 10}, {"image_oversize_bytes": 2.5}):
        assert sim_api.http.post("/_sim/faults", json=bad).status_code == 400, bad
    stats = sim_api.control("GET", "stats")
    assert stats["images"]["faulted"] == {"not_found": 1, "not_an_image": 1, "html": 1, "oversized": 2}
    assert stats["entities"]["product"]["image"] == 6
    sim_api.control("POST", "faults", {"image_fault": None})
    assert sim_api.control("GET", "faults")["image_fault"] is None and read().content == good
