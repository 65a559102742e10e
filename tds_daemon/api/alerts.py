"""``GET /api/tds/alerts`` and ``POST /api/tds/alerts/{id}/acknowledge`` (the alerts are ``tds_daemon.guard.alerts``).

List: ``?status=open|resolved|all`` (default open), ``?limit=`` (1-1000, default 100), the most recently
seen first → ``{"alerts": [...], "count": n}``. Acknowledge: stamps ``acknowledged_at`` once (again is a
no-op answering the same alert), 404 for an unknown id; the alert stays open until its condition clears.
"""

from __future__ import annotations

from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError, invalid_param, path_id
from tds_daemon.guard import alerts


class AlertsResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        status = req.get_param("status") or "open"
        if status not in alerts.ALERT_STATUSES:
            raise invalid_param("status", status, alerts.ALERT_STATUSES, "invalid_status")
        limit = req.get_param_as_int("limit", min_value=1, max_value=1000) or 100
        items = alerts.recent(self.engine, status=status, limit=limit)
        resp.media = {"alerts": items, "count": len(items)}


class AlertAcknowledgeResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_post(self, req, resp, alert_id: str) -> None:
        alert = alerts.acknowledge(self.engine, path_id(alert_id, "unknown_alert", "alert"))
        if alert is None:
            raise ApiError(404, "unknown_alert", f"no alert {alert_id}")
        resp.media = alert
