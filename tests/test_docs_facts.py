"""Facts the operator's documents state that the code can check: the README's admin API table names
every admin route, and OPERATIONS.md's migrate example names the schema head."""

from __future__ import annotations

import re

import falcon.inspect
from support import ROOT

from tds_daemon.api.app import create_app
from tds_daemon.config import load
from tds_daemon.store.revisions import head as head_revision

PUBLIC = {("POST", "/api/tds/webhooks/{}"), ("GET", "/api/tds/webhooks/health")}  # not the admin API


def normal(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.replace("\\|", "|"))


def admin_table() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("Admin API (")
    return text[start:text.index("\n\n", text.index("| request |", start))]


def test_readme_admin_table_names_every_admin_route(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    app = create_app(load(environ={"TDS_DATABASE_URL": pg_url}))
    routes = {(m.method, normal(r.path)) for r in falcon.inspect.inspect_routes(app) if r.path.startswith("/api/")
              for m in r.methods if not m.internal}
    documented = {(m, normal(p)) for m, p in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/api/[^`\s]+)`", admin_table())}
    assert ("GET", "/api/tds/circuit-breakers") in routes
    assert routes - PUBLIC - documented == set(), "admin routes missing from the README's admin table"
    assert documented - routes == set(), "the README's admin table names routes the API does not have"


def test_operations_migrate_example_names_the_head():
    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    first = re.search(r'"schema migrated from empty to (\d+)", later "schema already at (\d+)"', text)
    assert first and first.groups() == (head_revision(), head_revision()), first and first.groups()
    for revision in re.findall(r"\b(\d{4})\b(?:'s drops| to)", text):
        assert revision <= head_revision(), revision
