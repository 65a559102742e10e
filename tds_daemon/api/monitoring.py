"""``GET /api/tds/monitoring/health``: queue counts by status and entity, the success rate of the last
24 hours, open alerts, the thresholds, and an overall status healthy / degraded / warning / critical.

How the status is decided is written in ``tds_daemon.care.monitoring``. The answer is 200 whatever the
status (a monitor reads ``status``); 503 only when PostgreSQL does not answer, since the counts live
there (``errors.py`` answers that).
"""

from __future__ import annotations

from tds_daemon.api.auth import Access
from tds_daemon.care import monitoring


class MonitoringHealthResource:
    access = Access.ADMIN

    def __init__(self, config, engine, redis_client):
        self.config, self.engine, self.redis = config, engine, redis_client

    def on_get(self, req, resp) -> None:
        resp.media = monitoring.assess(self.engine, self.config, self.redis)
