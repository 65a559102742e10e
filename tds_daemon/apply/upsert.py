"""The one way rows are written: a batched upsert guarded by the Zoho version (newer wins).

Webhooks (a batch of one), list pages (200) and detail reads all come through ``apply``, so duplicates and
out-of-order deliveries never regress a row. A whole object replaces ``raw`` and makes the detail current;
a list row is merged over the stored ``raw`` and, when newer, leaves the detail stale. A delete sets
``deleted_at``. Text PostgreSQL cannot store is stored with U+FFFD in its place, logged, and found by the
``replaced_text`` data check. The version and outcome rules: docs/ARCHITECTURE.md, "The upsert".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import Text, case, column, func, literal, literal_column, or_, select
from sqlalchemy import values as sa_values
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.engine import Connection

from tds_daemon import jsoncodec, zohovalues
from tds_daemon.apply import events
from tds_daemon.entities import ENTITIES, EntitySpec
from tds_daemon.store.db import execute_values
from tds_daemon.store.schema import entity_table

log = logging.getLogger(__name__)

# A transaction changed this recently may have moved the stock of the items it names (_recent_transactions).
TOUCH_WINDOW = dt.timedelta(days=1)
STOCK_ENTITIES = tuple(e for e in ENTITIES if e.stock_columns)


class InvalidObject(Exception):
    """The object cannot be stored as it is (a permanent error, with a message a person can act on)."""

    code = "invalid_field"


@dataclass(frozen=True)
class Change:
    obj: dict
    version_at: dt.datetime  # arrival time, used when the object has no last-modified time
    deleted: bool = False
    whole: bool = True  # the whole object (webhook, single read); False: a list row (a summary)


def storable(spec: EntitySpec, obj: dict) -> dict:
    """``obj`` with text PostgreSQL cannot store replaced by U+FFFD (``zohovalues.storable``), logged with
    the fields where it was (never their text); ``obj`` itself when there was none."""
    cleaned, where = zohovalues.storable(obj)
    if where:
        log.warning("%s %s: text PostgreSQL cannot store (NUL, lone surrogate) replaced by U+FFFD in %s",
                    spec.name, zohovalues.zoho_id(cleaned.get(spec.id_field)), ", ".join(where[:10])[:300])
    return cleaned


def _row(spec: EntitySpec, change: Change, now: dt.datetime, run_id: int | None) -> dict[str, Any]:
    obj = change.obj
    zoho_id = zohovalues.zoho_id(obj.get(spec.id_field))
    if zoho_id is None:
        raise InvalidObject(f"{spec.name} object has no {spec.id_field}; it cannot be stored")
    row: dict[str, Any] = {"zoho_id": zoho_id, "raw": obj, "synced_at": now,
                           "deleted_at": now if change.deleted else None,
                           "detail_state": "current" if change.whole else "missing", "detail_fetched_for": None,
                           "last_pull_run_id": run_id}
    modified = None
    for col in spec.columns:
        try:
            row[col.name] = zohovalues.convert(col.type, obj.get(col.field))
        except zohovalues.InvalidValue as e:
            raise InvalidObject(f"{spec.name} {zoho_id}: field {col.field} {e}; correct it in Zoho "
                                f"(the next change or sync brings it) or replay after a fix") from None
    if spec.last_modified:
        try:
            modified = zohovalues.parse_timestamp(obj.get(spec.last_modified))
        except zohovalues.InvalidValue as e:
            raise InvalidObject(f"{spec.name} {zoho_id}: field {spec.last_modified} {e}") from None
    row["zoho_last_modified"] = modified
    row["version_at"] = modified or change.version_at
    return row


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per id (PostgreSQL refuses a batch touching a row twice): the newest, later on ties."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = best.get(row["zoho_id"])
        if kept is None or row["version_at"] >= kept["version_at"]:
            best[row["zoho_id"]] = row
    return list(best.values())


def apply(conn: Connection, spec: EntitySpec, schema: str, changes: list[Change], *,
          run_id: int | None = None, source: str = "pull") -> dict[str, str]:
    """Write the changes; return {zoho_id: outcome} with outcome created|updated|deleted|unchanged|stale.
    ``run_id``: the pull writing them, recorded on each row it writes (``last_pull_run_id``). Each row
    created, updated or deleted has its event in the same transaction (``events``), from ``source``."""
    if not changes:
        return {}
    now = dt.datetime.now(dt.UTC)
    table = entity_table(spec, schema)
    changes = [dataclasses.replace(c, obj=storable(spec, c.obj)) for c in changes]
    rows = [_row(spec, c, now, run_id) for c in changes]
    old = _typed_before(conn, spec, table, {r["zoho_id"] for r in rows})
    recent = _recent_transactions(spec, changes, now) if spec.moves_stock else []
    before = _stock_lines(conn, table, [zid for zid, _ in recent]) if recent else {}
    outcomes: dict[str, str] = {}
    for deleted, whole in ((False, True), (False, False), (True, True)):
        # In id order: concurrent batches touching the same rows then lock them in the same order.
        batch = sorted(_dedupe([r for r, c in zip(rows, changes, strict=True)
                                if c.deleted == deleted and (deleted or c.whole == whole)]),
                       key=lambda r: r["zoho_id"])
        if batch:
            written = _write(conn, table, batch, deleted, whole)
            outcomes.update(written)
            _events(conn, spec, batch, written, old, source)
    touched: set[str] = set()
    for zoho_id, obj in recent:
        if outcomes.get(zoho_id) in ("created", "updated"):
            touched |= _moved(before.get(zoho_id), _stock_view(obj.get("line_items"), obj.get("status")))
    if touched:
        mark_stock_stale(conn, schema, touched)
    return outcomes


def _typed_before(conn: Connection, spec: EntitySpec, table, zoho_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The typed columns of the stored rows, locked in id order (the order the writes lock them in), so
    that an event names exactly the columns its change set."""
    names = [c.name for c in spec.columns]
    rows = conn.execute(select(table.c.zoho_id, *(table.c[n] for n in names))
                        .where(table.c.zoho_id.in_(sorted(zoho_ids))).order_by(table.c.zoho_id).with_for_update())
    return {r[0]: dict(zip(names, r[1:], strict=True)) for r in rows}


def _events(conn: Connection, spec: EntitySpec, batch: list[dict[str, Any]], written: dict[str, str],
            old: dict[str, dict[str, Any]], source: str) -> None:
    for row in batch:
        action = written.get(row["zoho_id"])
        if action not in events.ACTIONS:
            continue  # stale or unchanged: no news, no event
        before = old.get(row["zoho_id"], {})
        changed = {} if action == "deleted" else {
            c.name: row[c.name] for c in spec.columns
            if action == "created" or before.get(c.name) != row[c.name]}
        events.entity_synced(conn, entity=spec.name, zoho_id=row["zoho_id"], action=action, source=source,
                             last_modified=row["zoho_last_modified"], changed=changed)


# A transaction in one of these states moves no stock; leaving or entering one moves all of its lines.
_NO_STOCK_STATES = frozenset({"draft", "void"})

StockView = tuple[bool, frozenset[tuple[str, str]]]  # (moves stock, {(item id, quantity)})


def _recent_transactions(spec: EntitySpec, changes: list[Change], now: dt.datetime) -> list[tuple[str, dict]]:
    """Whole transactions changed within TOUCH_WINDOW (a first copy's history moved stock long ago: reading
    its items again would tell nothing new)."""
    out = []
    for change in changes:
        if change.deleted or not change.whole:
            continue
        try:
            modified = zohovalues.parse_timestamp(change.obj.get(spec.last_modified)) or change.version_at
        except zohovalues.InvalidValue:
            continue
        zoho_id = zohovalues.zoho_id(change.obj.get(spec.id_field))
        if zoho_id and now - modified <= TOUCH_WINDOW:
            out.append((zoho_id, change.obj))
    return out


def _stock_view(lines: Any, status: Any) -> StockView:
    pairs = set()
    for line in lines if isinstance(lines, list) else ():
        item_id = zohovalues.zoho_id(line.get("item_id")) if isinstance(line, dict) else None
        if item_id:
            pairs.add((item_id, str(line.get("quantity", line.get("quantity_adjusted", "")))))
    return status not in _NO_STOCK_STATES, frozenset(pairs)


def _stock_lines(conn: Connection, table, zoho_ids: list[str]) -> dict[str, StockView]:
    """What the stored rows of these transactions say about stock, before they are written (only rows whose
    whole object is stored: a list row's lines are unknown)."""
    rows = conn.execute(select(table.c.zoho_id, table.c.raw["line_items"], table.c.raw["status"].astext)
                        .where(table.c.zoho_id.in_(zoho_ids), table.c.raw.has_key("line_items")))
    return {zid: _stock_view(lines, status) for zid, lines, status in rows}


def _moved(old: StockView | None, new: StockView) -> set[str]:
    """The items whose stock a change from ``old`` (None: unknown) to ``new`` may have moved."""
    if old is None:
        return {item for item, _ in new[1]} if new[0] else set()
    if old[0] != new[0]:
        return {item for item, _ in old[1] | new[1]}
    if not new[0]:
        return set()
    return {item for item, _ in old[1] ^ new[1]}


def mark_stock_stale(conn: Connection, schema: str, item_ids: set[str]) -> None:
    """The stock of these items moved: their whole object (stock, per-warehouse stock) is to be read again.
    Rows are locked in id order, so that transactions naming the same items cannot deadlock."""
    for spec in STOCK_ENTITIES:
        t = entity_table(spec, schema)
        locked = (select(t.c.zoho_id).where(t.c.zoho_id.in_(sorted(item_ids)), t.c.deleted_at.is_(None),
                                            ~((t.c.detail_state != "current") & t.c.detail_fetched_for.is_(None)))
                  .order_by(t.c.zoho_id).with_for_update().subquery())
        conn.execute(t.update().where(t.c.zoho_id == locked.c.zoho_id).values(**_stale_detail(spec, t)))


def _write(conn: Connection, table, batch: list[dict[str, Any]], deleted: bool, whole: bool) -> dict[str, str]:
    sql, template = _sql(table, deleted, whole)
    for row in batch:
        row["raw"] = jsoncodec.dumps(row["raw"])
    # The statement SQLAlchemy compiled once, with a page of 200 rows as one string of VALUES.
    returned = execute_values(conn, sql, template, batch)
    written = dict(returned)
    outcomes: dict[str, str] = {}
    for zid, inserted in written.items():
        if deleted:
            outcomes[zid] = "deleted"
        else:
            outcomes[zid] = "created" if inserted else "updated"
    missing = [r for r in batch if r["zoho_id"] not in written]
    if missing:
        old = table.c
        current = dict(conn.execute(
            select(old.zoho_id, old.version_at).where(old.zoho_id.in_([r["zoho_id"] for r in missing]))).all())
        for r in missing:
            stored = current.get(r["zoho_id"])
            outcomes[r["zoho_id"]] = "stale" if stored is not None and stored > r["version_at"] else "unchanged"
    return outcomes


# Constants written into the statement, not bound: ``execute_values`` takes one placeholder, the rows'.
_CURRENT, _STALE, _MISSING = (literal_column(f"'{state}'") for state in ("current", "stale", "missing"))


@lru_cache(maxsize=64)
def _sql(table, deleted: bool, whole: bool) -> tuple[str, str]:
    """The upsert as psycopg2 SQL for ``execute_values``: (statement with one ``%s`` for the rows,
    the template of one row)."""
    compiled = str(_statement(table, deleted, whole).compile(dialect=postgresql.psycopg2.dialect()))
    head, _, rest = compiled.partition(") VALUES (")
    row, _, tail = rest.partition(") ON CONFLICT ")
    if not tail:
        raise RuntimeError(f"unexpected upsert statement for {table.name}: {compiled[:200]}")
    return f"{head}) VALUES %s ON CONFLICT {tail}", f"({row})"


def _statement(table, deleted: bool, whole: bool):
    """One upsert per table and kind (delete, whole object, list row), compiled once.

    A row is rewritten only when the write is newer, or as new with other content; an object without
    a last-modified time whose content is what the row holds leaves it alone (its arrival is no news).
    A whole object also rewrites a row at its version whose detail is not current.
    """
    stmt = insert(table)
    new, old = stmt.excluded, table.c
    if deleted:
        # Keep what we know of the object; only mark it gone. Not stale if the delete is as new.
        set_ = {"deleted_at": new.deleted_at, "synced_at": new.synced_at,
                "version_at": func.greatest(old.version_at, new.version_at)}
        where = (old.deleted_at.is_(None)) & (new.version_at >= old.version_at)
    else:
        raw = new.raw if whole else old.raw.op("||")(new.raw)
        changed = raw.is_distinct_from(old.raw)
        newer = new.version_at > old.version_at
        set_ = {c.name: new[c.name] for c in table.columns
                if c.name not in ("zoho_id", "raw", "detail_state", "detail_fetched_for", "last_pull_run_id")}
        set_["raw"] = raw
        # A webhook or a detail read leaves the last pull that wrote the row as it is.
        set_["last_pull_run_id"] = func.coalesce(new.last_pull_run_id, old.last_pull_run_id)
        if whole:
            set_["detail_state"] = _CURRENT
        else:
            # A newer summary: the list fields are current, the rest waits for its whole object.
            set_["detail_state"] = case((newer & (old.detail_state != _MISSING), _STALE), else_=old.detail_state)
        conditions = [
            newer & or_(new.zoho_last_modified.isnot(None), old.deleted_at.isnot(None), changed),
            (new.version_at == old.version_at) & old.deleted_at.is_(None) & changed,
        ]
        if whole:
            conditions.append((new.version_at >= old.version_at) & (old.detail_state != _CURRENT))
        where = or_(*conditions)
    stmt = stmt.on_conflict_do_update(index_elements=[old.zoho_id], set_=set_, where=where)
    # xmax is 0 for a freshly inserted tuple and non-zero for an updated one.
    return stmt.returning(old.zoho_id, literal_column("(xmax = 0)").label("inserted"))


def apply_stock(conn: Connection, spec: EntitySpec, schema: str, objects: list[dict], *,
                run_id: int | None = None) -> dict[str, str]:
    """Refresh only the spec's stock columns (and the same fields inside ``raw``) of known rows.

    A row whose stock changed has whole-object detail (per-warehouse stock) that no longer adds up:
    it becomes 'stale' and may be read again. Returns {zoho_id: updated|unchanged|missing}; a missing
    object is one this table has never seen, which the caller applies in full instead.
    """
    table = entity_table(spec, schema)
    kinds = {c.name: c.type for c in spec.columns}
    values: dict[str, dict[str, Any]] = {}
    for obj in objects:
        obj = storable(spec, obj)
        zoho_id = zohovalues.zoho_id(obj.get(spec.id_field))
        if zoho_id is None:
            continue
        try:
            values[zoho_id] = {name: zohovalues.convert(kinds[name], obj.get(name)) for name in spec.stock_columns}
        except zohovalues.InvalidValue as e:
            raise InvalidObject(f"{spec.name} {zoho_id}: stock field {e}") from None
        values[zoho_id]["_raw"] = {name: obj.get(name) for name in spec.stock_columns}
    if not values:
        return {}
    old = _typed_before(conn, spec, table, set(values))
    known = set(old)
    outcomes = {zid: "missing" for zid in values if zid not in known}
    if not known:
        return outcomes
    names = list(spec.stock_columns)
    incoming = sa_values(column("zoho_id", Text), *(column(n, table.c[n].type) for n in names),
                         column("raw_part", JSONB), name="incoming").data(
        [(zid, *(values[zid][n] for n in names), values[zid]["_raw"]) for zid in known])
    stmt = (table.update()
            .where(table.c.zoho_id == incoming.c.zoho_id,
                   or_(*(table.c[n].is_distinct_from(incoming.c[n]) for n in names)))
            .values(**{n: incoming.c[n] for n in names}, raw=table.c.raw.op("||")(incoming.c.raw_part),
                    synced_at=func.now(), **_stale_detail(spec, table),
                    **({"last_pull_run_id": run_id} if run_id is not None else {}))
            .returning(table.c.zoho_id, table.c.zoho_last_modified))
    updated = {r[0]: r[1] for r in conn.execute(stmt)}  # a stock change keeps the row's last-modified time
    outcomes.update({zid: "updated" if zid in updated else "unchanged" for zid in known})
    for zid in sorted(updated):
        events.entity_synced(conn, entity=spec.name, zoho_id=zid, action="updated", source="pull",
                             last_modified=updated[zid],
                             changed={n: values[zid][n] for n in names if values[zid][n] != old[zid][n]})
    return outcomes


def _stale_detail(spec: EntitySpec, table) -> dict[str, Any]:
    """Column values that mark a row's whole-object detail as out of date (to be read again)."""
    if spec.lists_whole:
        return {}
    return {"detail_state": case((table.c.detail_state == "current", literal("stale")), else_=table.c.detail_state),
            "detail_fetched_for": None}
