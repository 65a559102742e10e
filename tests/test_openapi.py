"""``GET /openapi.json``: the document equals the app's routes both ways, docs/openapi.json is its copy, and
schemathesis, run against a live ``tds api`` with the document, finds no 5xx."""

from __future__ import annotations

import json
import os
from collections import Counter

import falcon.inspect
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from support import ADMIN_TOKEN, ROOT, TDS, WEBHOOK_TOKEN, free_port, web

from tds_daemon.api import openapi
from tds_daemon.api.app import create_app
from tds_daemon.api.auth import Access, access_of
from tds_daemon.config import load

METHODS = {"get", "post", "put", "patch", "delete"}
# Generated requests per operation: the whole run stays well under a minute (more, once, to hunt for 5xx).
EXAMPLES = int(os.environ.get("TDS_TEST_SCHEMATHESIS_EXAMPLES", "12"))


def app_routes(env) -> set[tuple[str, str]]:
    app = create_app(load(environ=env))
    return {(r.path, m.method.lower()) for r in falcon.inspect.inspect_app(app).routes
            for m in r.methods if not m.internal}


def declared_access(env) -> dict[str, Access]:
    """Each route's path and the access its resource declares (what the access middleware checks)."""
    app = create_app(load(environ=env))
    found = {}

    def walk(nodes):
        for node in nodes:
            if node.resource is not None:
                found[node.uri_template] = access_of(node.resource)
            walk(node.children)

    walk(app._router._roots)
    return found


def document_routes(doc) -> set[tuple[str, str]]:
    return {(path, method) for path, ops in doc["paths"].items() for method in ops if method in METHODS}


def test_the_document_names_every_route_and_no_other(migrated, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    routes, documented = app_routes(migrated), document_routes(openapi.document())
    assert routes - documented == set(), "routes the document does not describe"
    assert documented - routes == set(), "documented operations the app does not route"


def test_docs_copy_is_the_document():
    assert (ROOT / "docs" / "openapi.json").read_text() == openapi.dumps(), (
        "docs/openapi.json is stale: .venv/bin/python -m tds_daemon.api.openapi > docs/openapi.json")


def test_every_operation_documents_its_errors_and_security(migrated, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    access = declared_access(migrated)
    doc = openapi.document()
    schemes = doc["components"]["securitySchemes"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            admin = access[path] is Access.ADMIN  # what the access middleware checks
            names = {name for alternative in op["security"] for name in alternative}
            assert names <= set(schemes), (path, method)
            assert bool(names & {"adminBearer", "dashboardSession"}) == admin, (path, method, names)
            if admin:
                assert "401" in op["responses"], (path, method)
                assert "503" in op["responses"] or path.startswith("/dashboard"), (path, method)
                assert op["responses"]["401"]["content"]["application/json"]["schema"] == openapi.ERROR
    hook = doc["paths"]["/api/tds/webhooks/{entity}"]["post"]
    assert {schemes[n]["name"] for alt in hook["security"] for n in alt} == {"X-TDS-Webhook-Token", "X-Webhook-Key",
                                                                             "token"}


@pytest.fixture(scope="module")
def live_api(module_processes, migrated):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**migrated, "TDS_API_BIND": f"127.0.0.1:{port}", "TDS_API_PROCESSES": "2"}
    proc = module_processes.start("tds-api", [*TDS, "api"], env=env,
                                  ready=lambda: web.get(f"{base}/health/live", timeout=2).status_code == 200)
    return base, proc


def test_served_without_auth(live_api):
    base, _ = live_api
    r = web.get(f"{base}/openapi.json", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json() == json.loads(openapi.dumps())


def fuzz(operation, headers: dict, failures: list[str]) -> Counter:
    """Up to EXAMPLES generated requests to one operation; each 5xx is added to ``failures``. The answers' codes."""
    from schemathesis.checks import not_a_server_error

    codes: Counter = Counter()

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    def check(case):
        response = case.call(headers=headers, timeout=15)
        codes[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{operation.verbose_name}: {case.formatted_path} -> {response.status_code} "
                            f"{response.text[:300]}\n  reproduce: {case.as_curl_command(headers)[:600]}")
        case.validate_response(response, checks=(not_a_server_error,))

    try:
        check()
    except Exception as e:  # noqa: BLE001 - a 5xx is recorded above; anything else is recorded here
        if not failures or not failures[-1].startswith(operation.verbose_name):
            failures.append(f"{operation.verbose_name}: {type(e).__name__}: {str(e)[:500]}")
    return codes


@pytest.mark.timeout(90)
def test_schemathesis_finds_no_server_error(live_api, clean_db, module_processes):
    import schemathesis

    base, proc = live_api
    schemathesis.experimental.OPEN_API_3_1.enable()  # 3.39 reads 3.1 documents behind this switch
    schema = schemathesis.from_dict(openapi.document(), base_url=base)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-TDS-Webhook-Token": WEBHOOK_TOKEN}
    failures: list[str] = []
    answered = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        answered[operation.verbose_name] = fuzz(operation, headers, failures)
    assert not failures, "\n".join(failures) + "\n--- tds api ---\n" + module_processes.output(proc, 4000)
    assert all(answered.values()), f"operations never called: {answered}"
