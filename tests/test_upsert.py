"""The one apply function against real PostgreSQL: newer wins, whatever the order."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from support.zoho_objects import make_object, new_id, zoho_time

from tds_daemon import entities
from tds_daemon.apply import upsert

SCHEMA = "zoho"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def apply(engine, entity, obj, *, deleted=False, arrived=T0):
    with engine.begin() as c:
        return upsert.apply(c, entities.get(entity), SCHEMA, [upsert.Change(obj, arrived, deleted)])


def stored(engine, entity, zoho_id):
    with engine.connect() as c:
        return c.execute(text(f"SELECT * FROM {SCHEMA}.{entities.get(entity).table} WHERE zoho_id = :i"),
                         {"i": zoho_id}).mappings().one()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(list(range(6))), repeat=st.lists(st.integers(0, 5), max_size=4))
def test_any_order_of_versions_ends_at_the_newest(engine, order, repeat):
    zoho_id = new_id()
    versions = {m: make_object("product", zoho_id, minutes=m, name=f"v{m}") for m in range(6)}
    newest_seen = -1
    for m in [*order, *repeat]:  # every version once, in any order, then some duplicates
        outcome = apply(engine, "product", versions[m])[zoho_id]
        if m > newest_seen:
            assert outcome == ("created" if newest_seen < 0 else "updated")
            newest_seen = m
        else:
            assert outcome == ("unchanged" if m == newest_seen else "stale")
    row = stored(engine, "product", zoho_id)
    assert row["name"] == "v5" and row["raw"] == versions[5]


def test_without_last_modified_arrival_order_decides_and_identical_content_is_unchanged(engine):
    obj = make_object("user")
    zid = obj["user_id"]
    assert apply(engine, "user", obj, arrived=T0)[zid] == "created"
    assert apply(engine, "user", obj, arrived=T0 + dt.timedelta(seconds=1))[zid] == "unchanged"
    renamed = {**obj, "name": "new"}
    assert apply(engine, "user", renamed, arrived=T0 + dt.timedelta(seconds=3))[zid] == "updated"
    # an older arrival (a slow worker with an earlier delivery) does not overwrite
    assert apply(engine, "user", obj, arrived=T0 + dt.timedelta(seconds=2))[zid] == "stale"
    assert stored(engine, "user", zid)["name"] == "new"


def test_equal_version_same_content_is_unchanged(engine):
    obj = make_object("invoice")
    zid = obj["invoice_id"]
    assert apply(engine, "invoice", obj)[zid] == "created"
    assert apply(engine, "invoice", obj)[zid] == "unchanged"


def test_delete_is_terminal_unless_a_newer_version_arrives(engine):
    zid = new_id()
    v1 = make_object("product", zid, minutes=1, name="v1")
    apply(engine, "product", v1)
    assert apply(engine, "product", {"item_id": zid, "last_modified_time": v1["last_modified_time"]},
                 deleted=True)[zid] == "deleted"
    row = stored(engine, "product", zid)
    assert row["deleted_at"] is not None and row["name"] == "v1"
    # a late older update does not resurrect it; a repeated delete changes nothing
    assert apply(engine, "product", make_object("product", zid, minutes=0, name="v0"))[zid] == "stale"
    assert apply(engine, "product", v1, deleted=True)[zid] == "unchanged"
    assert stored(engine, "product", zid)["deleted_at"] is not None
    # a delete of an object never seen leaves a tombstone row
    other = new_id()
    assert apply(engine, "product", {"item_id": other}, deleted=True)[other] == "deleted"
    assert stored(engine, "product", other)["deleted_at"] is not None


def test_batch_dedupes_keys_and_keeps_the_newest(engine):
    zid = new_id()
    changes = [upsert.Change(make_object("product", zid, minutes=m, name=f"v{m}"), T0) for m in (2, 4, 1)]
    with engine.begin() as c:
        outcomes = upsert.apply(c, entities.get("product"), SCHEMA, changes)
    assert outcomes == {zid: "created"}
    assert stored(engine, "product", zid)["name"] == "v4"


@pytest.mark.parametrize("field,value", [("rate", "abc"), ("stock_on_hand", True), ("created_time", "soon")])
def test_a_field_of_the_wrong_type_is_a_permanent_error_naming_the_field(engine, field, value):
    obj = make_object("product", **{field: value})
    with pytest.raises(upsert.InvalidObject) as info:
        apply(engine, "product", obj)
    assert field in str(info.value) and obj["item_id"] in str(info.value)


def summary(entity: str, obj: dict) -> dict:
    """What Zoho's list endpoint returns for ``obj``: the object without its detail-only fields."""
    return {k: v for k, v in obj.items() if k not in entities.get(entity).detail_fields}


def apply_list_row(engine, entity, obj, arrived=T0):
    with engine.begin() as c:
        return upsert.apply(c, entities.get(entity), SCHEMA, [upsert.Change(obj, arrived, whole=False)])


def test_a_list_row_at_the_same_version_keeps_the_whole_object(engine):
    whole = make_object("invoice", minutes=5)
    zid = whole["invoice_id"]
    assert apply(engine, "invoice", whole)[zid] == "created"
    assert stored(engine, "invoice", zid)["detail_state"] == "current"
    assert apply_list_row(engine, "invoice", summary("invoice", whole))[zid] == "unchanged"
    row = stored(engine, "invoice", zid)
    assert row["raw"] == whole and row["detail_state"] == "current"


def test_a_newer_list_row_updates_the_list_fields_and_marks_the_detail_stale(engine):
    whole = make_object("invoice", minutes=5)
    zid = whole["invoice_id"]
    apply(engine, "invoice", whole)
    newer = make_object("invoice", zid, minutes=9, status="paid", balance=0,
                        line_items=[{"item_id": "4815000000000009999", "quantity": 3, "rate": 12.5}])
    assert apply_list_row(engine, "invoice", summary("invoice", newer))[zid] == "updated"
    row = stored(engine, "invoice", zid)
    assert row["status"] == "paid" and row["raw"]["status"] == "paid"
    assert row["raw"]["line_items"] == whole["line_items"]  # the old detail is kept, and said to be stale
    assert row["detail_state"] == "stale"
    assert row["zoho_last_modified"] == upsert.zohovalues.parse_timestamp(newer["last_modified_time"])
    # The whole object of that version (the backfill's read, or a webhook) makes it current.
    assert apply(engine, "invoice", newer)[zid] == "updated"
    row = stored(engine, "invoice", zid)
    assert row["raw"] == newer and row["detail_state"] == "current"
    # An older list row changes nothing.
    assert apply_list_row(engine, "invoice", summary("invoice", whole))[zid] == "stale"
    assert stored(engine, "invoice", zid)["raw"] == newer


def test_a_row_first_seen_in_a_list_is_missing_its_detail_until_a_whole_object_arrives(engine):
    whole = make_object("sales_order", minutes=3)
    zid = whole["salesorder_id"]
    assert apply_list_row(engine, "sales_order", summary("sales_order", whole))[zid] == "created"
    row = stored(engine, "sales_order", zid)
    assert row["detail_state"] == "missing" and "line_items" not in row["raw"]
    # A newer summary: still missing (there never was a whole object to be stale).
    apply_list_row(engine, "sales_order", summary("sales_order", {**whole, "last_modified_time": zoho_time(4)}))
    assert stored(engine, "sales_order", zid)["detail_state"] == "missing"
    # An older whole object is stale; the whole object at the row's version completes it.
    assert apply(engine, "sales_order", whole)[zid] == "stale"
    current = {**whole, "last_modified_time": zoho_time(4)}
    assert apply(engine, "sales_order", current)[zid] == "updated"
    row = stored(engine, "sales_order", zid)
    assert row["detail_state"] == "current" and row["raw"] == current


def test_entities_whose_list_rows_are_whole_never_wait_for_detail(engine):
    obj = make_object("branch")
    zid = obj["branch_id"]
    with engine.begin() as c:
        spec = entities.get("branch")
        upsert.apply(c, spec, SCHEMA, [upsert.Change(obj, T0, whole=spec.lists_whole)])
    assert stored(engine, "branch", zid)["detail_state"] == "current"


def test_last_modified_time_orders_versions_wherever_the_object_carries_it(engine):
    # Price lists, users and branches may lack the field; when they carry it, it decides, not arrival.
    zid = new_id()
    v2 = make_object("user", zid, name="v2", last_modified_time=zoho_time(2))
    v1 = make_object("user", zid, name="v1", last_modified_time=zoho_time(1))
    assert apply(engine, "user", v2, arrived=T0)[zid] == "created"
    assert apply(engine, "user", v1, arrived=T0 + dt.timedelta(hours=1))[zid] == "stale"
    row = stored(engine, "user", zid)
    assert row["name"] == "v2" and row["zoho_last_modified"] == upsert.zohovalues.parse_timestamp(zoho_time(2))


def test_a_stock_change_marks_an_items_warehouse_detail_stale(engine):
    whole = make_object("product", locations=[{"location_id": "1", "location_stock_on_hand": 140}])
    zid = whole["item_id"]
    apply(engine, "product", whole)
    spec = entities.get("product")
    with engine.begin() as c:
        assert upsert.apply_stock(c, spec, SCHEMA, [{**summary("product", whole)}]) == {zid: "unchanged"}
    assert stored(engine, "product", zid)["detail_state"] == "current"
    with engine.begin() as c:
        upsert.apply_stock(c, spec, SCHEMA, [{**summary("product", whole), "stock_on_hand": 99}])
    row = stored(engine, "product", zid)
    assert row["stock_on_hand"] == 99 and row["detail_state"] == "stale" and row["raw"]["locations"]


def test_a_recent_transaction_marks_only_the_items_whose_stock_it_moved(engine):
    now = dt.datetime.now(dt.UTC)

    def at(minutes: int) -> str:
        return (now + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S%z")

    items = [make_object("product", locations=[]) for _ in range(2)]
    for item in items:
        apply(engine, "product", item)
    a, b = (i["item_id"] for i in items)

    def states():
        return {zid: stored(engine, "product", zid)["detail_state"] for zid in (a, b)}

    def refresh():  # the backfill read them: current again
        for item in items:
            with engine.begin() as c:
                c.execute(text("UPDATE zoho.products SET detail_state = 'current' WHERE zoho_id = :i"),
                          {"i": item["item_id"]})

    lines = [{"item_id": a, "quantity": 2}, {"item_id": b, "quantity": 1}]
    invoice = make_object("invoice", status="sent", line_items=lines, last_modified_time=at(-5))
    zid = invoice["invoice_id"]
    apply(engine, "invoice", invoice)
    assert states() == {a: "stale", b: "stale"}, "a new sale moves every line's stock"
    refresh()
    apply(engine, "invoice", {**invoice, "status": "paid", "last_modified_time": at(-4)})
    assert states() == {a: "current", b: "current"}, "being paid moves no stock"
    apply(engine, "invoice", {**invoice, "status": "paid", "last_modified_time": at(-3),
                              "line_items": [{"item_id": a, "quantity": 5}, lines[1]]})
    assert states() == {a: "stale", b: "current"}, "only the changed line"
    refresh()
    apply(engine, "invoice", {**invoice, "status": "void", "last_modified_time": at(-2),
                              "line_items": [{"item_id": a, "quantity": 5}, lines[1]]})
    assert states() == {a: "stale", b: "stale"}, "a void gives every line's stock back"
    refresh()
    old = make_object("invoice", line_items=lines)  # changed in 2025: history, not news
    apply(engine, "invoice", old)
    assert states() == {a: "current", b: "current"}
    assert stored(engine, "invoice", zid)["status"] == "void"
