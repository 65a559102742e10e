"""``GET /api/tds/images/{item_id}``: an item's current image, for the ERP that reads the copy.

Answers the stored bytes with their content type and ``ETag`` = the SHA-256 of the bytes (a request
whose ``If-None-Match`` names it gets 304); 404 when the item has no stored image (none in Zoho, not
fetched yet, or not storable: its row in ``zoho.item_images`` says why).
"""

from __future__ import annotations

import os

import falcon

from tds_daemon.api.auth import Access
from tds_daemon.api.errors import ApiError
from tds_daemon.pull import images


class ImageResource:
    access = Access.ADMIN

    def __init__(self, config, engine):
        self.config, self.engine = config, engine

    def on_get(self, req, resp, item_id: str) -> None:
        # A NUL cannot be in a Zoho id, nor be sent to PostgreSQL in a parameter (psycopg2 refuses it).
        row = None if "\x00" in item_id else images.current(self.engine, self.config.database.entity_schema, item_id)
        if row is None:
            raise ApiError(404, "no_image", f"no stored image for item {item_id[:40]!r} (none in Zoho, not fetched "
                           "yet, or not storable: see zoho.item_images)")
        etag = f'"{row["sha256"]}"'
        resp.set_header("ETag", etag)
        resp.set_header("Cache-Control", "private, max-age=0, must-revalidate")
        if etag in (req.get_header("If-None-Match") or ""):
            resp.status = falcon.HTTP_304
            return
        try:
            with open(os.path.join(self.config.images.dir, row["path"]), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ApiError(404, "image_file_missing", f"the file of item {item_id[:40]}'s image is missing from "
                           "images.dir; it is fetched again when the item's image changes") from None
        resp.content_type = row["content_type"] or "application/octet-stream"
        resp.data = data
