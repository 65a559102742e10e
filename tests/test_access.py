"""Deny by default: every route of the app (read from its router, not from a list kept here) declares who may
call it, and no spelling of a path reaches a webhook or admin resource without its credentials — checked
in-process and against a live ``tds api``. The login page's body cap and rate limit, and logout ending the
session on the server."""

from __future__ import annotations

import http.client
import re
from urllib.parse import urlencode

import falcon
import falcon.testing
import pytest
from support import ADMIN_TOKEN, TDS, WEBHOOK_TOKEN, free_port, wait_until, web

from tds_daemon.api.app import create_app
from tds_daemon.api.auth import Access, access_of
from tds_daemon.api.logins import FAILURES_PER_MINUTE
from tds_daemon.api.session import COOKIE, CSRF_HEADER
from tds_daemon.config import load

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
SAMPLE = {"entity": "products", "check": "orphans", "name": "dashboard.css", "what": "products"}
REFUSED = {401, 403, 404, 405}


def routes(app: falcon.App) -> list[tuple[str, object]]:
    """Every (URI template, resource) the app's router holds."""
    found = []

    def walk(nodes):
        for node in nodes:
            if node.resource is not None:
                found.append((node.uri_template, node.resource))
            walk(node.children)

    walk(app._router._roots)
    return found


def concrete(template: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "1"), template)


def spellings(path: str) -> list[str]:
    """The path as a client might spell it to slip past a check on its text."""
    variants = [path, "/" + path, "/." + path, path + "/"]
    if path.count("/") > 1:
        first, rest = path[1:].split("/", 1)
        variants += [f"/{first}%2F{rest}", f"/{first}/./{rest}"]
    return variants


@pytest.fixture(scope="module")
def env(migrated, tmp_path_factory):
    return {**migrated, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path_factory.mktemp("metrics"))}


@pytest.fixture(scope="module")
def app(env, monkeypatch_module):
    return create_app(load(environ=env))


@pytest.fixture(scope="module")
def monkeypatch_module(env):
    mp = pytest.MonkeyPatch()
    mp.setenv("PROMETHEUS_MULTIPROC_DIR", env["PROMETHEUS_MULTIPROC_DIR"])
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def client(app):
    return falcon.testing.TestClient(app)


def login(client, token=ADMIN_TOKEN, address="192.0.2.10") -> tuple[str, str]:
    """A session cookie and its CSRF token, through the login form."""
    r = client.simulate_post("/dashboard/login", body=urlencode({"token": token}),
                             headers={"Content-Type": "application/x-www-form-urlencoded"},
                             remote_addr="127.0.0.1", extras={"HTTP_X_FORWARDED_FOR": address})
    assert r.status_code == 303, r.text
    cookie = r.cookies[COOKIE].value
    page = client.simulate_get("/dashboard", headers={"Cookie": f"{COOKIE}={cookie}"})
    return cookie, re.search(r'name="csrf-token" content="([0-9a-f]{64})"', page.text).group(1)


def credential_cases(cookie: str) -> list[tuple[str, dict, tuple]]:
    """(name, headers, methods it is tried with): none of them may open a webhook or admin resource."""
    return [
        ("none", {}, METHODS),
        ("wrong bearer", {"Authorization": "Bearer not-the-token"}, METHODS),
        ("wrong webhook token", {"X-TDS-Webhook-Token": "not-the-token", "X-Webhook-Key": "not-the-token"}, METHODS),
        ("session without CSRF", {"Cookie": f"{COOKIE}={cookie}"}, WRITES),
    ]


def test_every_route_declares_its_access(app):
    found = routes(app)
    assert len(found) > 30
    undeclared = [t for t, r in found if access_of(r) is None]
    assert undeclared == [], "routes without an access declaration (set `access = Access.…` on the resource)"
    by = {t: access_of(r) for t, r in found}
    assert by["/api/tds/webhooks/{entity}"] is Access.WEBHOOK
    assert by["/api/tds/webhooks/recent"] is Access.ADMIN and by["/api/tds/objects/{entity}/{zoho_id}"] is Access.ADMIN
    assert {t for t, a in by.items() if a is Access.OPEN} == {
        "/health/live", "/health/ready", "/api/tds/webhooks/health", "/metrics", "/openapi.json", "/dashboard",
        "/dashboard/login", "/dashboard/static/{name}"}


def test_a_route_without_a_declaration_refuses_everyone(env, monkeypatch_module):
    class Undeclared:
        def on_get(self, req, resp):
            resp.media = {"secret": True}

    app = create_app(load(environ=env))
    app.add_route("/api/tds/new-thing", Undeclared())
    app.add_route("/new-open-looking-thing", Undeclared())
    client = falcon.testing.TestClient(app)
    for path in ("/api/tds/new-thing", "/new-open-looking-thing"):
        r = client.simulate_get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 403 and r.json["error"] == "route_undeclared", r.text


def _matrix(send, app, cookie):
    """Calls every route × method × spelling × credential case; returns the answers that opened a door."""
    opened, calls = [], 0
    for template, resource in routes(app):
        access, path = access_of(resource), concrete(template)
        for spelled in spellings(path):
            for name, headers, methods in credential_cases(cookie):
                for method in methods:
                    status = send(method, spelled, headers)
                    calls += 1
                    if status >= 500 or (access is not Access.OPEN and status not in REFUSED):
                        opened.append((method, spelled, name, access.value, status))
    return opened, calls


def test_no_spelling_opens_a_door_in_process(app, client):
    cookie, _ = login(client)

    def send(method, path, headers):
        return client.simulate_request(method, path, headers=headers).status_code

    opened, calls = _matrix(send, app, cookie)
    assert calls > 3000
    assert opened == []


def test_the_right_credentials_still_open_them(client):
    cookie, csrf = login(client)
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert client.simulate_get("//api/tds/alerts", headers=bearer).status_code == 200
    assert client.simulate_get("/api/tds/alerts/", headers={"Cookie": f"{COOKIE}={cookie}"}).status_code == 200
    r = client.simulate_post("/api/tds/alerts/999999999/acknowledge",
                             headers={"Cookie": f"{COOKIE}={cookie}", CSRF_HEADER: csrf})
    assert r.status_code == 404 and r.json["error"] != "csrf_token_invalid", r.text
    r = client.simulate_post("//api/tds/webhooks/products", json={"item": {"name": "x"}},
                             headers={"X-TDS-Webhook-Token": WEBHOOK_TOKEN})
    assert r.status_code == 422, r.text  # through the door, refused for its body (no item_id)
    # A webhook token opens no admin route, and the admin token no webhook.
    assert client.simulate_get("/api/tds/alerts", headers={"X-TDS-Webhook-Token": WEBHOOK_TOKEN}).status_code == 401
    r = client.simulate_post("/api/tds/webhooks/products", json={"item": {"item_id": "1"}}, headers=bearer)
    assert r.status_code == 401


@pytest.fixture(scope="module")
def live(module_processes, migrated):
    port = free_port()
    env = {**migrated, "TDS_API_BIND": f"127.0.0.1:{port}", "TDS_API_PROCESSES": "1"}
    proc = module_processes.start(
        "tds-api", [*TDS, "api"], env=env,
        ready=lambda: web.get(f"http://127.0.0.1:{port}/health/live", timeout=2).status_code == 200)
    return port, proc, module_processes


def raw(port: int):
    """Sends a request with the path exactly as given (http.client neither normalises nor re-encodes it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def send(method, path, headers, body=None):
        nonlocal conn
        try:
            conn.request(method, path, body=body, headers={**headers, "Content-Length": str(len(body or b""))})
            r = conn.getresponse()
            r.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(method, path, body=body, headers={**headers, "Content-Length": str(len(body or b""))})
            r = conn.getresponse()
            r.read()
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
        return r.status

    return send


def test_no_spelling_opens_a_door_on_a_live_api(live, app):
    port, proc, procs = live
    with web.Client(base_url=f"http://127.0.0.1:{port}", timeout=10, follow_redirects=False) as http:
        r = http.post("/dashboard/login", data={"token": ADMIN_TOKEN}, headers={"X-Forwarded-For": "192.0.2.11"})
        assert r.status_code == 303, r.text
        cookie = r.cookies[COOKIE]
    opened, calls = _matrix(raw(port), app, cookie)
    assert calls > 3000
    assert opened == []
    assert "Traceback" not in procs.output(proc)


def test_login_refuses_a_large_body_before_reading_it(client):
    r = client.simulate_post("/dashboard/login", body=b"token=" + b"x" * (1 << 20),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and r.json["error"] == "body_too_large", r.text


def test_wrong_tokens_are_rate_limited_per_address(live):
    port, proc, procs = live
    base = f"http://127.0.0.1:{port}"
    with web.Client(base_url=base, timeout=10, follow_redirects=False) as http:
        for _ in range(FAILURES_PER_MINUTE):
            r = http.post("/dashboard/login", data={"token": "guess"}, headers={"X-Forwarded-For": "198.51.100.7"})
            assert r.status_code == 401
        r = http.post("/dashboard/login", data={"token": ADMIN_TOKEN}, headers={"X-Forwarded-For": "198.51.100.7"})
        assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 60, r.text
        assert "Too many wrong tokens" in r.text
        # Another address is not held up by this one.
        r = http.post("/dashboard/login", data={"token": ADMIN_TOKEN}, headers={"X-Forwarded-For": "198.51.100.8"})
        assert r.status_code == 303
        metrics = http.get("/metrics").text
    assert re.search(r'^tds_dashboard_logins_total\{outcome="rate_limited"\} [1-9]', metrics, re.M), metrics[-2000:]
    assert re.search(r'^tds_dashboard_logins_total\{outcome="refused"\} [1-9]', metrics, re.M)
    wait_until(lambda: "too many wrong tokens from 198.51.100.7" in procs.output(proc), 10,
               message="a WARNING line naming the address")


def test_logout_ends_the_session_on_the_server(client):
    cookie, csrf = login(client, address="192.0.2.12")
    kept = {"Cookie": f"{COOKIE}={cookie}"}
    assert client.simulate_get("/api/tds/alerts", headers=kept).status_code == 200
    r = client.simulate_post("/dashboard/logout", headers={**kept, CSRF_HEADER: csrf})
    assert r.status_code == 200
    assert client.simulate_get("/api/tds/alerts", headers=kept).status_code == 401
    page = client.simulate_get("/dashboard", headers=kept)
    assert 'name="token"' in page.text  # the login form, not the page


def test_a_new_admin_token_ends_every_session(env, client, monkeypatch_module):
    cookie, _ = login(client, address="192.0.2.13")
    kept = {"Cookie": f"{COOKIE}={cookie}"}
    assert client.simulate_get("/api/tds/alerts", headers=kept).status_code == 200
    new_token = {**env, "TDS_API_ADMIN_TOKEN": "a-new-token-" + "9" * 20}
    rotated = falcon.testing.TestClient(create_app(load(environ=new_token)))
    assert rotated.simulate_get("/api/tds/alerts", headers=kept).status_code == 401
