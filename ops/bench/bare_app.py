"""The ingest benchmark's baseline: a bare Falcon app that stores each POST with one INSERT, then 202.

It is served by gunicorn with exactly the settings TDS's API uses: ``BareServer`` subclasses
``tds_daemon.api.server.ApiServer`` and replaces only the application it loads, so worker count
(``api.processes``), worker class, timeouts, keep-alive and backlog are the same by construction.
It reads the same configuration (``TDS_API_BIND``, ``TDS_API_PROCESSES``, ``TDS_DATABASE_URL`` ...).

Run by ``ops/bench/ingest``; by hand: ``TDS_DATABASE_URL=... TDS_API_BIND=127.0.0.1:8099
.venv/bin/python ops/bench/bare_app.py`` (it creates its table if needed).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading

import falcon
import psycopg2
from sqlalchemy.engine import make_url

TABLE = "bench_bare_events"
CREATE_TABLE = (f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, "
                "received_at timestamptz NOT NULL DEFAULT now(), body jsonb NOT NULL)")
_INSERT = f"INSERT INTO {TABLE} (body) VALUES (%s::jsonb)"


def libpq_dsn(database_url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg2://...``) as a libpq connection string."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Intake:
    """POST: one INSERT of the raw body (PostgreSQL checks it is JSON), committed, then 202."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        # one connection per gunicorn worker thread, opened on first use (after fork)
        self.local = threading.local()

    def on_post(self, req: falcon.Request, resp: falcon.Response, entity: str) -> None:
        raw = req.bounded_stream.read(req.content_length or 0)
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = self.local.conn = psycopg2.connect(self.dsn, application_name="tds-bench-bare")
        with conn, conn.cursor() as cur:  # the with-block commits
            cur.execute(_INSERT, (raw.decode("utf-8"),))
        resp.status = falcon.HTTP_202
        resp.media = {"status": "accepted"}


class Health:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"status": "live"}


def create_app(database_url: str) -> falcon.App:
    app = falcon.App(media_type=falcon.MEDIA_JSON)
    app.add_route("/api/tds/webhooks/{entity}", Intake(libpq_dsn(database_url)))
    app.add_route("/health", Health())
    return app


def main() -> int:
    # ApiServer's child_exit hook uses prometheus_client's multiprocess mode, which needs this set.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tds-bench-bare-")
    from tds_daemon import logs
    from tds_daemon.api.server import ApiServer
    from tds_daemon.config import load

    config = load()
    with psycopg2.connect(libpq_dsn(config.database.url)) as conn, conn.cursor() as cur:
        cur.execute(CREATE_TABLE)
    conn.close()

    class BareServer(ApiServer):
        def load(self):
            return create_app(self.tds_config.database.url)

    logs.setup(config.log.level)
    BareServer(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
