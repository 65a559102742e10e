"""``GET /api/tds/dead-letter`` and ``POST /api/tds/dead-letter/replay`` (the logic is ``tds_daemon.care.dlq``).

List: ``?entity=`` (name or alias), ``?zoho_id=`` (one object's), ``?limit=`` (1-1000, default 100)
→ ``{"items": [...], "total": n}``.
Replay: a JSON body ``{"ids": [..]}``, ``{"entity": "product"}`` or ``{"all": true}`` (``entity`` may
narrow ``ids`` or ``all``) → ``{"replayed": n, "skipped": m}``; ``skipped`` counts requested ids that
were not dead letters (already replayed, completed, or unknown).
"""

from __future__ import annotations

import falcon

from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError
from tds_daemon.care import dlq


class DeadLetterResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        limit = req.get_param_as_int("limit", min_value=1, max_value=1000) or 100
        resp.media = dlq.list_items(self.engine, entity=req.get_param("entity"),
                                    zoho_id=req.get_param("zoho_id"), limit=limit)


class DeadLetterReplayResource:
    access = Access.ADMIN

    def __init__(self, engine, dispatcher):
        self.engine, self.dispatcher = engine, dispatcher

    def on_post(self, req, resp) -> None:
        try:
            body = req.get_media(default_when_empty=None)
        except falcon.MediaMalformedError:
            raise ApiError(400, "invalid_json", "the body must be JSON: {\"ids\": [..]}, {\"entity\": \"product\"} "
                           "or {\"all\": true}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "no_selector", "send a JSON object naming what to replay: {\"ids\": [..]}, "
                           "{\"entity\": \"product\"} or {\"all\": true}")
        unknown = sorted(set(body) - {"ids", "entity", "all"})
        if unknown:
            raise ApiError(400, "unknown_field", f"unknown field(s) {', '.join(unknown)}; send ids, entity or all")
        entity = body.get("entity")
        if entity is not None and not isinstance(entity, str):
            raise ApiError(400, "invalid_entity", "entity must be an entity name such as \"product\"")
        selector = dlq.selector(body.get("ids"), entity, body.get("all", False))
        resp.media = dlq.replay(self.engine, self.dispatcher, selector).as_json()
