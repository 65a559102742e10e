"""Liveness, readiness and the webhook intake summary."""

from __future__ import annotations

import falcon
from sqlalchemy import text

from tds_daemon.api.auth import Access

_INTAKE = text("""
SELECT (SELECT count(*) FROM tds_inbox_events WHERE received_at > now() - interval '24 hours') AS received,
       (SELECT count(*) FROM tds_sync_queue WHERE status IN ('pending', 'processing', 'failed')) AS queued,
       (SELECT count(*) FROM tds_sync_queue WHERE status = 'dead_letter') AS dead_letter,
       (SELECT max(received_at) FROM tds_inbox_events) AS last_received
""")


class LiveResource:
    access = Access.OPEN

    def on_get(self, req, resp):
        resp.media = {"status": "live"}


class ReadyResource:
    access = Access.OPEN

    def __init__(self, engine, redis_client):
        self.engine, self.redis = engine, redis_client

    def on_get(self, req, resp):
        """200 when PostgreSQL and Redis answer; else 503 naming which does not, in words (what failed
        inside, such as an exception's class, is for the log, not for whoever asks)."""
        problems = {}
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:  # any failure means not ready
            problems["postgresql"] = "PostgreSQL does not answer"
        try:
            self.redis.ping()
        except Exception:
            problems["redis"] = "Redis does not answer"
        if problems:
            resp.status = falcon.HTTP_503
            resp.media = {"status": "not_ready", "unavailable": sorted(problems), "errors": problems}
        else:
            resp.media = {"status": "ready"}


class WebhookHealthResource:
    access = Access.OPEN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp):
        try:
            with self.engine.connect() as conn:
                row = conn.execute(_INTAKE).one()
        except Exception:
            resp.status = falcon.HTTP_503
            resp.set_header("Retry-After", "30")
            resp.media = {"status": "unavailable", "message": "database unavailable"}
            return
        resp.media = {"status": "ok", "received_24h": row.received, "queue_size": row.queued,
                      "dead_letter": row.dead_letter,
                      "last_received_at": row.last_received.isoformat() if row.last_received else None}
