"""The story of one Zoho object (``tds trace``, ``GET /api/tds/objects/{entity}/{zoho_id}``).

What TDS knows of it, from its own tables: the entity row; every delivery (inbox events, and the
deliveries refused as their duplicates); the sync items that applied them; the pulls that saw it; and an
item's image. Pulls: the latest one that wrote the row (``last_pull_run_id``), and the succeeded full
pulls since the row was last written while it stayed live: a full pull meets every live row, in its
list or by the read that confirms a row it did not list, and found this one as stored. Other pulls
that met it unchanged leave no trace. Finished runs, completed items and their deliveries are deleted
after ``healer.retain_days``: the story is as long as that.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from tds_daemon import entities
from tds_daemon.refusal import Refusal
from tds_daemon.store.schema import entity_table, images_table, inbox_duplicates, inbox_events, sync_queue, sync_runs

LIMIT = 100  # deliveries and sync items shown, the most recent; the totals count them all
FULL_PULLS_SHOWN = 10


class TraceError(Refusal):
    """A story TDS cannot tell (unknown entity, unknown id)."""


def resolve_entity(name: str) -> entities.EntitySpec:
    """An entity name or alias → its spec; TraceError (404 unknown_entity) naming the known ones."""
    spec = entities.resolve(name)
    if spec is None:
        raise TraceError(404, "unknown_entity", entities.unknown(name))
    return spec


def _json(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f")
    return value


def _run(run, seen: str) -> dict[str, Any]:
    return {"run_id": run.id, "seen": seen, "kind": run.kind, "status": run.status, "origin": run.origin,
            "started_at": _json(run.started_at), "finished_at": _json(run.finished_at), "error": run.error}


def story(engine: Engine, schema: str, entity: str, zoho_id: str, *, limit: int = LIMIT) -> dict[str, Any]:
    """Everything TDS holds about one object, as JSON-ready data (shape in README).

    Raises TraceError: 404 ``unknown_entity`` for an entity that is not known, 404 ``not_found`` when
    there is no row, no delivery and no sync item for the id."""
    spec = resolve_entity(entity)
    table = entity_table(spec, schema)
    if "\x00" in zoho_id:  # never in a Zoho id, and PostgreSQL cannot take it as a parameter
        raise TraceError(404, "not_found", f"TDS knows no {spec.name} with an id containing NUL")
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.zoho_id == zoho_id)).first()
        events = conn.execute(
            select(inbox_events.c.id, inbox_events.c.event_type, inbox_events.c.received_at,
                   inbox_events.c.zoho_last_modified, sync_queue.c.id.label("item_id"))
            .select_from(inbox_events.outerjoin(sync_queue, sync_queue.c.event_id == inbox_events.c.id))
            .where(inbox_events.c.entity_type == spec.name, inbox_events.c.zoho_id == zoho_id)).all()
        event_ids = [e.id for e in events]
        duplicates = conn.execute(
            select(inbox_duplicates).where(inbox_duplicates.c.event_id.in_(event_ids))).all() if event_ids else []
        items = conn.execute(
            select(sync_queue).where(sync_queue.c.event_id.in_(event_ids))
            .order_by(sync_queue.c.id.desc()).limit(limit)).all() if event_ids else []
        pulls = _pulls(conn, spec, row)
        image = None
        if spec.name == "product":
            images = images_table(schema)
            image = conn.execute(select(images).where(images.c.zoho_id == zoho_id)).first()
    if row is None and not events:
        raise TraceError(404, "not_found", f"TDS knows no {spec.name} {zoho_id[:60]!r}: no row in "
                         f"{schema}.{spec.table}, no delivery and no sync item (a pull or a webhook brings it)")
    by_event = {e.id: e for e in events}
    received = [(e.received_at, False, e.id, e.event_type, e.item_id) for e in events]
    received += [(d.received_at, True, d.event_id, d.event_type, None) for d in duplicates]
    received.sort(key=lambda r: (r[0], r[1]), reverse=True)
    deliveries = [{"event_id": event_id, "received_at": _json(at), "event_type": event_type,
                   "zoho_last_modified": _json(by_event[event_id].zoho_last_modified), "duplicate": duplicate,
                   "sync_item_id": item_id} for at, duplicate, event_id, event_type, item_id in received]
    return {
        "entity": spec.name,
        "zoho_id": zoho_id,
        "table": f"{schema}.{spec.table}",
        "row": _row(spec, row),
        "deliveries": deliveries[:limit],
        "sync_items": [_item(i) for i in items],
        "pulls": pulls,
        "image": _image(image) if spec.name == "product" else None,
        "totals": {"deliveries": len(deliveries), "duplicates": len(duplicates),
                   "sync_items": sum(1 for e in events if e.item_id)},
    }


def _row(spec: entities.EntitySpec, row) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "zoho_last_modified": _json(row.zoho_last_modified), "version_at": _json(row.version_at),
        "synced_at": _json(row.synced_at), "deleted_at": _json(row.deleted_at), "deleted": row.deleted_at is not None,
        "detail_state": row.detail_state, "detail_fetched_for": _json(row.detail_fetched_for),
        "last_pull_run_id": row.last_pull_run_id,
        "columns": {c.name: _json(getattr(row, c.name)) for c in spec.columns},
    }


def _item(item) -> dict[str, Any]:
    return {
        "id": item.id, "event_id": item.event_id, "status": item.status, "outcome": item.outcome,
        "attempts": item.attempt_count, "error_code": item.error_code, "error_message": item.error_message,
        "created_at": _json(item.created_at), "updated_at": _json(item.updated_at),
        "completed_at": _json(item.completed_at), "next_attempt_at": _json(item.next_attempt_at),
        "first_failed_at": _json(item.first_failed_at), "last_failed_at": _json(item.last_failed_at),
    }


def _pulls(conn, spec: entities.EntitySpec, row) -> list[dict[str, Any]]:
    """The pull that last wrote the row ("wrote"), then the succeeded full pulls since, newest first ("unchanged")."""
    if row is None:
        return []
    out = []
    if row.last_pull_run_id is not None:
        run = conn.execute(select(sync_runs).where(sync_runs.c.id == row.last_pull_run_id)).first()
        out.append(_run(run, "wrote") if run else
                   {"run_id": row.last_pull_run_id, "seen": "wrote", "kind": None, "status": None, "origin": None,
                    "started_at": None, "finished_at": None, "error": "the run's record was deleted by retention"})
    if row.deleted_at is None:
        later = conn.execute(
            select(sync_runs).where(sync_runs.c.entity_type == spec.name, sync_runs.c.kind == "full",
                                    sync_runs.c.status == "succeeded", sync_runs.c.started_at > row.synced_at)
            .order_by(sync_runs.c.id.desc()).limit(FULL_PULLS_SHOWN)).all()
        out[:0] = [_run(r, "unchanged") for r in later]
    return out


def _image(image) -> dict[str, Any] | None:
    if image is None:
        return None
    return {"image_document_id": image.image_document_id, "sha256": image.sha256, "content_type": image.content_type,
            "bytes": image.bytes, "path": image.path, "fetched_at": _json(image.synced_at),
            "deleted_at": _json(image.deleted_at), "error": image.error}


def _when(iso: str | None) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if iso else "-"


def _cut(text: str | None, width: int = 160) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "\u2026"


def render(s: dict[str, Any]) -> str:
    """``tds trace`` for an operator: the row, the deliveries, the sync items, the pulls, the image; times in UTC."""
    lines = [f"{s['entity']} {s['zoho_id']} ({s['table']}); times in UTC"]
    row = s["row"]
    if row is None:
        lines.append("row: none (never applied: see the deliveries and sync items below)")
    else:
        state = f"deleted {_when(row['deleted_at'])}" if row["deleted"] else "live"
        fetched = f", read for {_when(row['detail_fetched_for'])}" if row["detail_fetched_for"] else ""
        lines.append(f"row: {state}; Zoho last modified {_when(row['zoho_last_modified'])}; synced "
                     f"{_when(row['synced_at'])}; detail {row['detail_state']}{fetched}")
        shown = ", ".join(f"{k} {v}" for k, v in row["columns"].items() if v not in (None, ""))
        if shown:
            lines.append(f"  {_cut(shown)}")
    totals = s["totals"]
    lines.append(f"deliveries: {totals['deliveries']} ({totals['duplicates']} duplicate)"
                 + (f", the {len(s['deliveries'])} most recent" if len(s["deliveries"]) < totals["deliveries"] else ""))
    for d in s["deliveries"]:
        what = (f"duplicate of event {d['event_id']}" if d["duplicate"]
                else f"event {d['event_id']}, sync item {d['sync_item_id'] or '-'}")
        lines.append(f"  {_when(d['received_at'])}  {d['event_type']:<8} {what}; Zoho last modified "
                     f"{_when(d['zoho_last_modified'])}")
    lines.append(f"sync items: {totals['sync_items']}")
    for i in s["sync_items"]:
        status = i["status"] + (f" ({i['outcome']})" if i["outcome"] else "")
        done = f", completed {_when(i['completed_at'])}" if i["completed_at"] else ""
        lines.append(f"  {i['id']:>8}  {status:<22} {i['attempts']} attempt(s), created {_when(i['created_at'])}{done}")
        if i["error_code"]:
            lines.append(f"            {i['error_code']}: {_cut(i['error_message'])}")
    lines.append(f"pulls that saw it: {len(s['pulls'])}")
    for p in s["pulls"]:
        how = "wrote the row (the latest pull that did)" if p["seen"] == "wrote" else "found it as stored"
        lines.append(f"  run {p['run_id']:>6}  {p['kind'] or '-':<11} {p['status'] or '-':<9} "
                     f"{_when(p['started_at'])} -> {_when(p['finished_at'])}  {how}")
    if s["entity"] == "product":
        image = s["image"]
        if image is None:
            lines.append("image: none stored (the item names none, or it is not fetched yet)")
        elif image["error"]:
            lines.append(f"image: {image['image_document_id']} not storable: {_cut(image['error'])}")
        else:
            gone = f"; deleted {_when(image['deleted_at'])}" if image["deleted_at"] else ""
            lines.append(f"image: {image['image_document_id']} sha256 {image['sha256']}, {image['bytes']} bytes "
                         f"{image['content_type']}, fetched {_when(image['fetched_at'])}{gone}")
    return "\n".join(lines)
