"""``GET /api/tds/webhooks/stats``: webhook intake per entity (the figures are ``tds_daemon.webhookstats``)."""

from __future__ import annotations

from .. import webhookstats


class WebhookStatsResource:
    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        resp.media = webhookstats.report(self.engine)
