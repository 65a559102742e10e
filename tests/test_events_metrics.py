"""``tds_events_lag_seconds{subscriber}`` and ``tds_events_dead_letters{subscriber}``: read at scrape time from
the outbox, the subscribers' cursors and their dead letters, by a real ``tds api`` with subscribers configured;
and left out, not failing the scrape, when PostgreSQL does not answer."""

from __future__ import annotations

import base64
import datetime as dt

import falcon.testing
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from support import TDS, free_port, web
from support.zoho_objects import make_object

from tds_daemon import entities
from tds_daemon.api.app import create_app
from tds_daemon.apply import upsert
from tds_daemon.config import load

SECRET = "whsec_" + base64.b64encode(b"m" * 32).decode()
BEHIND, CURRENT, INVOICES, FRESH = (f"http://127.0.0.1:9/{n}" for n in ("behind", "hooks/secret-path-abc?key=xyz",
                                                                       "invoices", "fresh"))


def config_file(tmp_path) -> str:
    path = tmp_path / "tds.toml"
    path.write_text("".join(
        f'[[events.subscribers]]\nurl = "{url}"\nsecret = "{SECRET}"\n{extra}'
        for url, extra in ((BEHIND, 'name = "erp"\n'), (CURRENT, ""),
                           (INVOICES, 'name = "invoices"\nentities = ["invoice"]\n'), (FRESH, 'name = "fresh"\n'))))
    return str(path)


def write(engine, entity: str, minutes_ago: int) -> None:
    """A new row of ``entity`` and its event, the event dated ``minutes_ago``."""
    with engine.begin() as conn:
        upsert.apply(conn, entities.get(entity), "zoho", [upsert.Change(make_object(entity), dt.datetime.now(dt.UTC))],
                     source="webhook")
    with engine.begin() as conn:
        conn.execute(text("UPDATE tds_events SET created_at = now() - make_interval(mins => :m) "
                          "WHERE id = (SELECT max(id) FROM tds_events)"), {"m": minutes_ago})


def gauges(body: str, name: str) -> dict[str, float]:
    return {s.labels["subscriber"]: s.value for f in text_string_to_metric_families(body) for s in f.samples
            if s.name == name}


def test_lag_and_dead_letters_of_each_configured_subscriber(env, engine, processes, tmp_path):
    for entity, minutes in (("product", 50), ("product", 40), ("product", 30), ("product", 20), ("invoice", 10)):
        write(engine, entity, minutes)  # events 1 to 5
    with engine.begin() as c:
        # erp has had events 1 and 2; the current one all five; the invoices one none (its filter takes only
        # event 5); fresh has no row yet (tds run has not pushed to it).
        c.execute(text("INSERT INTO tds_event_subscribers (url, cursor) VALUES (:b, 2), (:c, 5), (:i, 0)"),
                  {"b": BEHIND, "c": CURRENT, "i": INVOICES})
        c.execute(text("INSERT INTO tds_event_dead_letters (url, event_id, attempts, first_failed_at, last_error) "
                       "VALUES (:b, 1, 9, now(), 'HTTP 500'), (:b, 2, 9, now(), 'HTTP 500'), "
                       "('http://127.0.0.1:9/gone', 1, 9, now(), 'HTTP 500')"), {"b": BEHIND})

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start("tds-api", [*TDS, "api"], env={**env, "TDS_CONFIG": config_file(tmp_path),
                                                   "TDS_API_BIND": f"127.0.0.1:{port}", "TDS_API_PROCESSES": "1"},
                    ready=lambda: web.get(f"{base}/health/live", timeout=2).status_code == 200)
    body = web.get(f"{base}/metrics", timeout=10).text

    lag = gauges(body, "tds_events_lag_seconds")
    assert set(lag) == {"erp", "http://127.0.0.1:9", "invoices", "fresh"}, lag
    assert 30 * 60 <= lag["erp"] < 31 * 60, lag  # its oldest event not had: event 3, 30 minutes old
    assert 10 * 60 <= lag["invoices"] < 11 * 60, lag  # the first invoice after its cursor: event 5
    assert lag["http://127.0.0.1:9"] == 0 and lag["fresh"] == 0, lag
    dead = gauges(body, "tds_events_dead_letters")
    assert dead == {"erp": 2, "http://127.0.0.1:9": 0, "invoices": 0, "fresh": 0}, dead
    for secret in (SECRET, "secret-path-abc", "xyz"):  # an unnamed subscriber is shown by its host alone
        assert secret not in body


def test_postgresql_down_leaves_them_out_and_the_scrape_answers(tmp_path, monkeypatch, redis_url):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    dead_url = f"postgresql+psycopg2://127.0.0.1:{free_port()}/tds"
    config = load(config_file(tmp_path), environ={"TDS_DATABASE_URL": dead_url, "TDS_REDIS_URL": redis_url,
                                                  "TDS_DATABASE_CONNECT_TIMEOUT_S": "1"})
    engine = create_engine(dead_url, connect_args={"connect_timeout": 1})
    try:
        r = falcon.testing.TestClient(create_app(config, engine=engine)).simulate_get("/metrics")
    finally:
        engine.dispose()
    assert r.status_code == 200 and "tds_build_info{" in r.text
    assert "tds_events_lag_seconds" not in r.text and "tds_events_dead_letters" not in r.text
