"""``GET /api/tds/monitoring/health``: queue counts by status and entity, the success rate of the last
24 hours, open alerts, the thresholds, and an overall status healthy / degraded / warning / critical.

How the status is decided is written in ``tds_daemon.monitoring``. The answer is 200 whatever the
status (a monitor reads ``status``); 503 only when PostgreSQL does not answer, since the counts live there.
"""

from __future__ import annotations

import logging

from sqlalchemy import exc

from .. import monitoring
from .errors import ApiError

log = logging.getLogger(__name__)


class MonitoringHealthResource:
    def __init__(self, config, engine, redis_client):
        self.config, self.engine, self.redis = config, engine, redis_client

    def on_get(self, req, resp) -> None:
        try:
            resp.media = monitoring.assess(self.engine, self.config, self.redis)
        except exc.SQLAlchemyError as e:
            log.warning("monitoring health: database unavailable: %s", type(e).__name__)
            raise ApiError(503, "database_unavailable", "TDS cannot reach its database, where the queue and "
                           "alerts are; status critical", headers={"Retry-After": "5"}) from None
