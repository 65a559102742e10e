"""``GET /api/tds/webhooks/stats``: webhook intake per entity (the figures are ``tds_daemon.intake.webhookstats``)."""

from __future__ import annotations

from tds_daemon.api.auth import Access
from tds_daemon.intake import webhookstats


class WebhookStatsResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        resp.media = webhookstats.report(self.engine)
