"""``GET /api/tds/objects/{entity}/{zoho_id}``: the story of one object (the logic is ``tds_daemon.care.trace``).

200 with the story; 404 ``unknown_entity`` (naming the known ones) or ``not_found`` (no row, no delivery,
no sync item for the id).
"""

from __future__ import annotations

from tds_daemon.api.auth import Access
from tds_daemon.care import trace


class ObjectResource:
    access = Access.ADMIN

    def __init__(self, engine, schema: str):
        self.engine, self.schema = engine, schema

    def on_get(self, req, resp, entity: str, zoho_id: str) -> None:
        resp.media = trace.story(self.engine, self.schema, entity, zoho_id)
