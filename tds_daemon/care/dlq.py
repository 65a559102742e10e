"""The dead-letter queue: sync items in ``tds_sync_queue`` with status ``dead_letter``, listed and replayed.

An item goes to dead_letter on a permanent error (the payload cannot be applied), when its transient
retries are used up, or when the worker applying it keeps dying (``syncqueue``). Each keeps its error
code and message, its attempts and its first and last failure.

Replaying (``tds dlq replay``, ``POST /api/tds/dead-letter/replay``) moves the chosen dead letters back
to ``pending`` and sends their messages after the commit, as intake does. The error fields stay, as
history, until the item completes; ``attempt_count`` is not reset (the healer caps the total), so a
replayed item that fails again goes back to dead_letter with every attempt counted. Only items still
in dead_letter are touched, so replaying the same selection twice does nothing the second time.
Replaying needs a selector: ids, an entity, or everything said explicitly; never "everything" by
omission.
"""

from __future__ import annotations

import datetime as dt
import logging
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from tds_daemon import entities
from tds_daemon.refusal import Refusal
from tds_daemon.store.schema import sync_queue

if TYPE_CHECKING:  # listing must not import prometheus_client (the CLI sets its directory first)
    from tds_daemon.apply.dispatch import Dispatcher

log = logging.getLogger(__name__)
ITEM_FIELDS = ("id", "entity", "zoho_id", "event_id", "error_code", "error_message", "attempts",
               "first_failed_at", "last_failed_at")


class InvalidSelector(Refusal):
    """A list or replay request TDS refuses."""


@dataclass(frozen=True)
class Selector:
    """Which dead letters to replay: ``ids`` or ``all``, optionally narrowed to one ``entity``."""

    ids: tuple[int, ...] = ()
    entity: str | None = None
    all: bool = False

    def describe(self) -> str:
        what = f"ids {', '.join(map(str, self.ids))}" if self.ids else "all"
        return what + (f" of entity {self.entity}" if self.entity else "")


@dataclass
class Replayed:
    replayed: int = 0
    skipped: int = 0
    replayed_ids: list[int] = field(default_factory=list)
    skipped_ids: list[int] = field(default_factory=list)  # requested ids that were not dead letters
    undispatched: int = 0  # messages not sent (Redis down): the workers' recovery sweep sends them

    def as_json(self) -> dict[str, int]:
        return {"replayed": self.replayed, "skipped": self.skipped}


def resolve_entity(name: str | None) -> str | None:
    """An entity name or alias → its name; InvalidSelector (400: a bad value in the request) if unknown."""
    if name is None:
        return None
    spec = entities.resolve(name)
    if spec is None:
        raise InvalidSelector(400, "unknown_entity", entities.unknown(name))
    return spec.name


def selector(ids: Iterable[Any] | None = None, entity: str | None = None, all_: Any = False) -> Selector:
    """Validate a replay request; raises InvalidSelector with a message that says what to send."""
    if ids is not None and not isinstance(ids, list | tuple):
        raise InvalidSelector(400, "invalid_ids", "ids must be a list of sync item ids, e.g. [12, 15]")
    ids = list(ids or [])
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in ids):
        raise InvalidSelector(400, "invalid_ids", "ids must be positive integers (sync item ids, as "
                              "`tds dlq list` shows them)")
    if not isinstance(all_, bool):
        raise InvalidSelector(400, "invalid_all", "all must be true or false")
    if ids and all_:
        raise InvalidSelector(400, "conflicting_selectors", "choose either ids or all, not both")
    name = resolve_entity(entity)
    if not ids and not all_ and name is None:
        raise InvalidSelector(400, "no_selector", "say which dead letters to replay: ids, an entity, or all "
                              "(nothing is replayed by default)")
    return Selector(ids=tuple(dict.fromkeys(ids)), entity=name, all=all_ or (not ids))


def _item(row) -> dict[str, Any]:
    return {
        "id": row.id, "entity": row.entity_type, "zoho_id": row.zoho_id, "event_id": row.event_id,
        "error_code": row.error_code, "error_message": row.error_message, "attempts": row.attempt_count,
        "first_failed_at": row.first_failed_at.isoformat() if row.first_failed_at else None,
        "last_failed_at": row.last_failed_at.isoformat() if row.last_failed_at else None,
    }


def list_items(engine: Engine, *, entity: str | None = None, zoho_id: str | None = None,
               limit: int = 100) -> dict[str, Any]:
    """``{"items": [...], "total": n}``: the most recent failures first, of one entity and/or one Zoho id if
    given; ``total`` counts beyond ``limit``."""
    name = resolve_entity(entity)
    where = [sync_queue.c.status == "dead_letter"]
    if name:
        where.append(sync_queue.c.entity_type == name)
    if zoho_id is not None:
        where.append(sync_queue.c.zoho_id == zoho_id)
    q = (select(sync_queue.c.id, sync_queue.c.entity_type, sync_queue.c.zoho_id, sync_queue.c.event_id,
                sync_queue.c.error_code, sync_queue.c.error_message, sync_queue.c.attempt_count,
                sync_queue.c.first_failed_at, sync_queue.c.last_failed_at)
         .where(*where)
         .order_by(sync_queue.c.last_failed_at.desc().nulls_last(), sync_queue.c.id.desc())
         .limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(q).all()
        total = conn.execute(select(func.count()).select_from(sync_queue).where(*where)).scalar_one()
    return {"items": [_item(r) for r in rows], "total": total}


# Only dead letters move, and only those of entity types this TDS knows (it could not apply the others).
# Row locks make two concurrent replays of the same item move it once.
_REPLAY = text("""
UPDATE tds_sync_queue
SET status = 'pending', next_attempt_at = now(), updated_at = now(), lease_until = NULL,
    dispatched_at = CASE WHEN :dispatch THEN now() END
WHERE status = 'dead_letter' AND entity_type = ANY(:known)
  AND (CAST(:entity AS text) IS NULL OR entity_type = :entity)
  AND (:all OR id = ANY(:ids))
RETURNING id, entity_type
""")


def replay(engine: Engine, dispatcher: Dispatcher, sel: Selector) -> Replayed:
    """Move the selected dead letters back to pending and dispatch them; idempotent."""
    params = {"dispatch": dispatcher.available, "known": list(entities.BY_NAME), "entity": sel.entity,
              "all": sel.all, "ids": list(sel.ids)}
    with engine.begin() as conn:
        rows = conn.execute(_REPLAY, params).all()
    result = Replayed(replayed=len(rows), replayed_ids=sorted(r.id for r in rows))
    if sel.ids:
        moved = set(result.replayed_ids)
        result.skipped_ids = [i for i in sel.ids if i not in moved]
        result.skipped = len(result.skipped_ids)
    # Redis known down: dispatched_at stayed NULL above, and the recovery sweep sends them when it answers.
    unsent = (dispatcher.send_items(engine, [(r.id, r.entity_type) for r in rows]) if params["dispatch"]
              else [r.id for r in rows])
    result.undispatched = len(unsent)
    log.info("dead letters replayed: selector=%s replayed=%d skipped=%d undispatched=%d", sel.describe(),
             result.replayed, result.skipped, result.undispatched)
    return result


def _when(iso: str | None) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if iso else "-"


def render(listing: dict[str, Any], entity: str | None = None, width: int = 100, zoho_id: str | None = None) -> str:
    """``tds dlq list`` as a table, the most recent failures first, times in UTC; each item's error follows
    its row whole, wrapped to ``width`` and indented, never cut."""
    where = (f" of entity {entity}" if entity else "") + (f" with zoho_id {zoho_id}" if zoho_id is not None else "")
    items, total = listing["items"], listing["total"]
    if not total:
        return f"no dead letters{where}"
    lines = [f"{'id':>8}  {'entity':<16} {'zoho_id':<20} {'tries':>5}  {'first failed (UTC)':<19}  "
             f"{'last failed (UTC)':<19}  error code",
             f"{'':>8}  error message"]
    indent = " " * 10
    for i in items:
        lines.append(f"{i['id']:>8}  {i['entity']:<16} {i['zoho_id']:<20} {i['attempts']:>5}  "
                     f"{_when(i['first_failed_at']):<19}  {_when(i['last_failed_at']):<19}  {i['error_code'] or '-'}")
        for part in (i["error_message"] or "-").splitlines() or ["-"]:
            lines.extend(textwrap.wrap(part, width=max(width, 40), initial_indent=indent, subsequent_indent=indent,
                                       break_long_words=True, break_on_hyphens=False) or [indent.rstrip()])
    shown = f", showing the {len(items)} most recent (--limit)" if len(items) < total else ""
    lines.append(f"{total} dead letter(s){where}{shown}; replay with `tds dlq replay --id ID` "
                 "(or --entity E, --all) once the cause is fixed")
    return "\n".join(lines)
