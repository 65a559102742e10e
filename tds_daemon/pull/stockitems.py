"""A stock refresh of chosen items (``POST /api/tds/sync/stock/specific``, ``tds sync products --stock --id``).

Each item's whole object is read now (one Zoho call each: it carries the stock and the per-warehouse stock)
and applied by the one newer-wins upsert, so that its row, its detail and the events outbox (source
``pull``) are as any pull leaves them. The reads go through the run's client and the entity's breaker
(``pulls.Syncer``): the shared rate limit, the day's budget and the breakers count them like every other
call. What became of each id is recorded in the run (``item_results``):

- ``created`` / ``updated`` / ``unchanged`` / ``stale``: the upsert's outcome, with the stock Zoho gave;
- ``not_found``: Zoho answered 404 (no such item); the row, if TDS has one, is left as it is;
- ``refused``: Zoho refused the read otherwise (4xx), or the object could not be stored; the reason.

Zoho unavailable, an open breaker, the rate limit or the budget end the run (failed, or skipped before
the first call): the ids not reached have no result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from tds_daemon import entities, zohovalues
from tds_daemon.apply import upsert
from tds_daemon.entities import EntitySpec
from tds_daemon.oneline import first_line
from tds_daemon.pull.zoho import ZohoError
from tds_daemon.pull.zoho.errors import ZohoAuthError
from tds_daemon.refusal import Refusal

ITEM = next(e for e in entities.ENTITIES if e.stock_columns)  # product: the one entity with stock
MAX_ITEMS = 100  # ids in one request: one call each, within the shared rate limit


def chosen(value: object) -> list[str]:
    """The item ids of a request, checked: a non-empty list of at most MAX_ITEMS strings of digits (Zoho's
    ids, checked as every id that goes into a URL path is: ``zohovalues.checked_id``), each once, in the
    order given. Refusal 400 ``invalid_item_ids`` saying what to send otherwise."""
    if not isinstance(value, list) or not value:
        raise Refusal(400, "invalid_item_ids", 'send {"item_ids": ["<Zoho item id>", ...]}: a non-empty list of '
                      f"at most {MAX_ITEMS} item ids")
    if len(value) > MAX_ITEMS:
        raise Refusal(400, "invalid_item_ids", f"{len(value)} item ids given, at most {MAX_ITEMS} per request; "
                      "split the list, or refresh the stock of every item (POST /api/tds/sync/products?kind=stock)")
    for item_id in value:
        if not (isinstance(item_id, str) and zohovalues.is_zoho_id(item_id)):
            shown = repr(item_id)[:60]
            raise Refusal(400, "invalid_item_ids", f"item id {shown} is not a Zoho item id: each must be a string "
                          'of digits, e.g. "4815000000044137"')
    return list(dict.fromkeys(value))


Fetch = Callable[[str], dict]


def refresh(engine, schema: str, spec: EntitySpec, item_ids: list[str], fetch: Fetch, tally,
            progress: Callable | None = None) -> None:
    """Read and apply each item in turn; its result goes into ``tally.items`` as soon as it is known.

    ``fetch(id)`` is the run's read of one object (the client's GET through the entity's breaker); a
    ZohoError it raises for Zoho's unavailability, the budget, the rate limit, an open breaker or refused
    credentials ends the run; a 404 or another refusal of one id is that id's result."""
    tally.items = {}
    for item_id in item_ids:
        tally.items[item_id] = _one(engine, schema, spec, item_id, fetch, tally)
        if progress:
            progress(tally)


def _one(engine, schema: str, spec: EntitySpec, item_id: str, fetch: Fetch, tally) -> dict:
    try:
        body = fetch(item_id)
    except ZohoError as e:
        if e.transient or isinstance(e, ZohoAuthError):
            raise
        if e.status == 404:
            return {"outcome": "not_found", "error": f"Zoho has no {spec.object_key} {item_id} (HTTP 404)"}
        return {"outcome": "refused", "error": first_line(str(e), 300)}
    obj = body.get(spec.object_key)
    if not isinstance(obj, dict) or zohovalues.zoho_id(obj.get(spec.id_field)) != item_id:
        return {"outcome": "refused", "error": f"Zoho's answer for {item_id} holds no {spec.object_key} of that id"}
    try:
        with engine.begin() as conn:
            outcomes = upsert.apply(conn, spec, schema, [upsert.Change(obj, dt.datetime.now(dt.UTC), whole=True)],
                                    run_id=tally.run_id)
    except upsert.InvalidObject as e:
        return {"outcome": "refused", "error": first_line(str(e), 300)}
    with tally.lock:
        tally.add(outcomes)
        tally.objects += 1
    return {"outcome": outcomes[item_id], **{name: obj.get(name) for name in spec.stock_columns}}
