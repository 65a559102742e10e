"""``GET /api/tds/webhooks/recent``: the latest webhook deliveries and what became of each (the list is
``tds_daemon.intake.recent``)."""

from __future__ import annotations

from tds_daemon.api.auth import Access
from tds_daemon.api.errors import entity_param
from tds_daemon.intake import recent


class WebhookRecentResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        """``?limit=`` (1 to MAX_LIMIT, default DEFAULT_LIMIT), ``?entity=`` (a name or alias), ``?payload=1``
        to include each stored body; a bad value is 400 naming it."""
        limit = req.get_param_as_int("limit", min_value=1, max_value=recent.MAX_LIMIT) or recent.DEFAULT_LIMIT
        payload = req.get_param_as_bool("payload", default=False)
        entity = req.get_param("entity")
        if entity:
            entity = entity_param(entity)
        resp.media = {"deliveries": recent.latest(self.engine, limit=limit, entity=entity, payload=payload),
                      "limit": limit, "entity": entity, "payload": payload,
                      "refused": "deliveries refused before storing (bad token, body or entity) store nothing and "
                                 "are not listed; GET /api/tds/webhooks/stats counts them"}
