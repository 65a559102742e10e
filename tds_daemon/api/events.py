"""``GET /api/tds/events`` (the outbox by cursor) and ``POST /api/tds/events/replay`` (a subscriber's dead
letters pushed again).

Read: ``?after=<id>`` (default 0), ``?limit=`` (1-1000, default 100), ``?type=`` and ``?entity=`` filters
→ ``{"events": [...], "next": <id>}``; ask again with ``after=next``. Replay: ``{"subscriber": <url>,
"event_ids": [...]}`` (both optional: every dead letter of every subscriber) → ``{"replayed": n}``.
"""

from __future__ import annotations

from tds_daemon import entities
from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError, invalid_param
from tds_daemon.apply.events import TYPES
from tds_daemon.publish import feed, pusher
from tds_daemon.pull.images import IMAGE_ENTITY

ENTITY_NAMES = (*entities.BY_NAME, IMAGE_ENTITY)


class EventsResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_get(self, req, resp) -> None:
        after = req.get_param_as_int("after", min_value=0) or 0
        limit = req.get_param_as_int("limit", min_value=1, max_value=feed.MAX_LIMIT) or 100
        type_, entity = req.get_param("type"), req.get_param("entity")
        if type_ is not None and type_ not in TYPES:
            raise invalid_param("type", type_, TYPES, "invalid_type")
        if entity is not None and entity not in ENTITY_NAMES:
            raise ApiError(400, "unknown_entity", entities.unknown(entity))
        with self.engine.connect() as conn:
            items, next_id = feed.read(conn, after, limit, types=[type_] if type_ else None,
                                       entities=[entity] if entity else None)
        resp.media = {"events": items, "next": next_id}


class EventsReplayResource:
    access = Access.ADMIN

    def __init__(self, engine):
        self.engine = engine

    def on_post(self, req, resp) -> None:
        body = req.get_media(default_when_empty={}) or {}
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", 'the body is a JSON object: {"subscriber": url, "event_ids": [...]}')
        url, ids = body.get("subscriber"), body.get("event_ids")
        if url is not None and not isinstance(url, str):
            raise ApiError(400, "invalid_body", "subscriber is the subscriber's URL, a string")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, int) and i > 0 for i in ids)):
            raise ApiError(400, "invalid_body", "event_ids is a list of event ids (positive whole numbers)")
        resp.media = {"replayed": pusher.replay(self.engine, url, ids)}
