"""Item images: fetched from Zoho Inventory, stored on disk by content, listed in ``zoho.item_images``.

An item says whether it has an image and which (``image_document_id``, or ``image_id``, in its object;
a new image has a new id). The image is one call (``GET /items/{item_id}/image``), spent from the
backfill's share of the day's budget, after the detail reads (``tds_daemon.pull.detail``):

- it is fetched when the item has an image id that its row in ``item_images`` does not hold (no row, a
  changed id, or a row marked deleted), newest item first; never again for the same id, whatever the
  answer was: a 404, a body that is not an image, or one larger than ``images.max_bytes`` is recorded
  as the row's ``error`` (with the id) and not retried until the item's image changes;
- the bytes go to ``images.dir`` as a file named by their SHA-256, under two levels of fan-out
  (``ab/cd/abcd…``): identical images are stored once; a file is written under a temporary name in the
  same directory, flushed and renamed, so a crash never leaves half a file under a real name;
- an item that no longer has an image (or is deleted) gets its row's ``deleted_at``; a file no live row
  names any more is removed by the healer's retention (``prune_files``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from tds_daemon import entities, zohovalues
from tds_daemon.apply import events
from tds_daemon.pull.zoho import ZohoClient, ZohoError
from tds_daemon.pull.zoho.client import object_path
from tds_daemon.pull.zoho.errors import ZohoBreakerOpen, ZohoBudgetSpent, ZohoStopped, ZohoUnavailable
from tds_daemon.store.schema import entity_table, images_table

log = logging.getLogger(__name__)

ITEM = entities.get("product")
IMAGE_ENTITY = entities.IMAGE_ENTITY
# An image's bytes begin with one of these (PNG, JPEG, GIF, WebP, BMP): anything else is not an image.
MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")


class Stop(Exception):
    """Zoho cannot be asked now (budget spent, unavailable, breaker open, TDS stopping): the rest waits for the
    next run."""

    def __init__(self, reason: str, error: str):
        super().__init__(error)
        self.reason, self.error = reason, error


def _image_id(items):
    """The image id an item's object names, or '' (SQL): ``image_document_id``, else ``image_id``."""
    return func.coalesce(func.nullif(items.c.raw["image_document_id"].astext, ""),
                         func.nullif(items.c.raw["image_id"].astext, ""), literal_column("''"))


def _wanted_query(schema: str):
    items, images = entity_table(ITEM, schema), images_table(schema)
    image_id = _image_id(items)
    return (select(items.c.zoho_id, image_id.label("image_id"))
            .select_from(items.outerjoin(images, images.c.zoho_id == items.c.zoho_id))
            .where(items.c.deleted_at.is_(None), image_id != "",
                   or_(images.c.zoho_id.is_(None), images.c.image_document_id != image_id,
                       images.c.deleted_at.isnot(None))))


def wanted(engine: Engine, schema: str, limit: int) -> list[tuple[str, str]]:
    """(item id, image id) of the images still to fetch, newest item first."""
    items = entity_table(ITEM, schema)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(_wanted_query(schema).order_by(items.c.version_at.desc())
                                               .limit(limit))]


def backlog(engine: Engine, schema: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(_wanted_query(schema).subquery())).scalar_one()


def mark_removed(engine: Engine, schema: str) -> int:
    """Rows of items that no longer have an image, or are deleted: ``deleted_at``. How many."""
    items, images = entity_table(ITEM, schema), images_table(schema)
    gone = or_(items.c.deleted_at.isnot(None), _image_id(items) == "")
    with engine.begin() as conn:
        removed = conn.execute(update(images).where(images.c.zoho_id == items.c.zoho_id, images.c.deleted_at.is_(None),
                                                    gone).values(deleted_at=func.now())
                               .returning(images.c.zoho_id)).scalars().all()
        for item_id in removed:
            events.entity_synced(conn, entity=IMAGE_ENTITY, zoho_id=item_id, action="deleted", source="pull",
                                 last_modified=None, changed={})
    return len(removed)


def is_image(content_type: str, data: bytes) -> bool:
    if not content_type.lower().startswith("image/"):
        return False
    return data.startswith(MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def relative_path(sha256: str) -> str:
    return os.path.join(sha256[:2], sha256[2:4], sha256)


def store_file(images_dir: str, data: bytes) -> tuple[str, str]:
    """Write ``data`` under its SHA-256 (once: an identical image is already there); (sha256, relative path)."""
    sha = hashlib.sha256(data).hexdigest()
    rel = relative_path(sha)
    final = os.path.join(images_dir, rel)
    if os.path.exists(final):
        return sha, rel
    directory = os.path.dirname(final)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return sha, rel


@dataclass
class Outcome:
    stored: bool = False
    error: str | None = None
    skipped: bool = False  # no longer wanted when its turn came


def fetch_one(config, engine: Engine, client: ZohoClient, item_id: str, image_id: str) -> Outcome:
    """Fetch, check and store one item's image, and record it; raises Stop when Zoho cannot be asked now."""
    schema = config.database.entity_schema
    with engine.connect() as conn:  # a webhook or pull may have changed the item meanwhile
        still = conn.execute(_wanted_query(schema).where(entity_table(ITEM, schema).c.zoho_id == item_id)).first()
    if still is None or still.image_id != image_id:
        return Outcome(skipped=True)
    try:
        content_type, data = client.get_bytes(ITEM.app, object_path(ITEM, item_id) + "/image",
                                             config.images.max_bytes)
    except ZohoStopped:
        raise Stop("shutdown", "this TDS is stopping") from None
    except ZohoBudgetSpent as e:
        raise Stop("budget", str(e)) from None
    except (ZohoUnavailable, ZohoBreakerOpen) as e:
        raise Stop("zoho_unavailable", str(e)) from None
    except ZohoError as e:
        error = ("Zoho has no image for this item (404)" if e.status == 404 else str(e))
        return _record(engine, schema, item_id, image_id, error=error)
    if not is_image(content_type, data):
        return _record(engine, schema, item_id, image_id,
                       error=f"Zoho's answer is not an image (Content-Type {content_type or 'none'}, "
                             f"{len(data)} bytes starting {data[:8]!r})")
    sha, rel = store_file(config.images.dir, data)
    return _record(engine, schema, item_id, image_id, sha256=sha, content_type=content_type.split(";")[0].strip(),
                   size=len(data), path=rel)


def _record(engine: Engine, schema: str, item_id: str, image_id: str, *, error: str | None = None,
            sha256: str | None = None, content_type: str | None = None, size: int | None = None,
            path: str | None = None) -> Outcome:
    if error:
        error = zohovalues.storable(error)[0]  # Zoho's message may hold text PostgreSQL cannot store
        log.warning("image of item %s (image %s) not stored: %s; not fetched again until its image changes",
                    item_id, image_id, error)
    images = images_table(schema)
    values: dict[str, Any] = {"image_document_id": image_id, "sha256": sha256, "content_type": content_type,
                              "bytes": size, "path": path, "error": error, "deleted_at": None, "synced_at": func.now()}
    stmt = insert(images).values(zoho_id=item_id, **values)
    with engine.begin() as conn:
        before = conn.execute(select(images.c.sha256, images.c.deleted_at).where(images.c.zoho_id == item_id)
                              .with_for_update()).first()
        conn.execute(stmt.on_conflict_do_update(index_elements=[images.c.zoho_id], set_=values))
        if error is None and (before is None or before.deleted_at is not None or before.sha256 != sha256):
            events.entity_synced(conn, entity=IMAGE_ENTITY, zoho_id=item_id, source="pull", last_modified=None,
                                 action="created" if before is None else "updated",
                                 changed={"image_document_id": image_id, "sha256": sha256,
                                          "content_type": content_type, "bytes": size})
    return Outcome(stored=error is None, error=error)


def current(engine: Engine, schema: str, item_id: str) -> dict | None:
    """The item's stored image (its row), if it has one now."""
    images = images_table(schema)
    with engine.connect() as conn:
        row = conn.execute(select(images).where(images.c.zoho_id == item_id, images.c.deleted_at.is_(None),
                                                images.c.sha256.isnot(None))).mappings().first()
    return dict(row) if row else None


PRUNE_AFTER_S = 3600  # a file younger than this may be one whose row is being written: left alone


def prune_files(engine: Engine, schema: str, images_dir: str) -> int:
    """Remove the files no live row names (and temporary files a crash left), older than PRUNE_AFTER_S; how
    many were removed."""
    if not os.path.isdir(images_dir):
        return 0
    oldest = time.time() - PRUNE_AFTER_S
    images = images_table(schema)
    with engine.connect() as conn:
        used = set(conn.execute(select(images.c.sha256).where(and_(images.c.deleted_at.is_(None),
                                                                   images.c.sha256.isnot(None)))).scalars())
    removed = 0
    for directory, _, files in os.walk(images_dir):
        for name in files:
            if name in used:
                continue
            if not name.startswith(".tmp-") and len(name) != 64:
                continue  # not ours
            path = os.path.join(directory, name)
            try:
                if os.stat(path).st_mtime > oldest:
                    continue
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
    return removed
