"""The one apply function against real PostgreSQL: newer wins, whatever the order."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from zoho_objects import make_object, new_id

from tds_daemon import entities, upsert

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
