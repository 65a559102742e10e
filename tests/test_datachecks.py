"""The data checks against real PostgreSQL: a consistent copy of every entity (written through the upsert) has no
finding; each defect, written the same way or by direct SQL, is found and named (entity, zoho_id, what is wrong);
deleted rows are not checked; findings are bounded with their total; the endpoint wants the admin token; a stats
run stores the counts and ``/metrics`` shows them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from support import ADMIN_TOKEN
from support.zoho_objects import make_object, new_id

from tds_daemon import entities
from tds_daemon.apply import upsert
from tds_daemon.care import datachecks, stats
from tds_daemon.config import load

SCHEMA = "zoho"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
NOW = dt.datetime.now(dt.UTC)


def put(engine, entity: str, zoho_id: str | None = None, *, deleted: bool = False, **fields) -> str:
    obj = make_object(entity, zoho_id, **fields)
    with engine.begin() as c:
        upsert.apply(c, entities.get(entity), SCHEMA, [upsert.Change(obj, NOW, deleted)])
    return obj[entities.get(entity).id_field]


def lines(*pairs: tuple[str, float]) -> list[dict]:
    return [{"line_item_id": new_id(), "item_id": item, "quantity": 1, "rate": amount, "item_total": amount}
            for item, amount in pairs]


def consistent_copy(engine) -> dict[str, str]:
    """One row of every entity, each reference held, every total and stock adding up."""
    ids = {"customer": put(engine, "customer", created_time="2025-11-01T10:00:00+0300"),
           "vendor": put(engine, "vendor")}
    ids["product"] = put(engine, "product", sku="OIL-1L", created_time="2025-11-01T10:00:00Z", warehouses=[
        {"warehouse_id": "1", "warehouse_stock_on_hand": 100, "warehouse_available_stock": 90},
        {"warehouse_id": "2", "warehouse_stock_on_hand": "40", "warehouse_available_stock": 42}])
    ids["product2"] = put(engine, "product", sku="OIL-5L", stock_on_hand=7, available_stock=7, locations=[
        {"location_id": "1", "location_stock_on_hand": 7, "location_available_stock": 7}])
    p, p2, c = ids["product"], ids["product2"], ids["customer"]
    ids["invoice"] = put(engine, "invoice", customer_id=c, sub_total=35.5, line_items=lines((p, 25.0), (p2, 10.5)))
    ids["sales_order"] = put(engine, "sales_order", customer_id=c, sub_total="530.00",
                             line_items=lines((p, 500.0), (p2, 30.0)))
    ids["payment"] = put(engine, "payment", customer_id=c, invoices=[{"invoice_id": ids["invoice"],
                                                                      "amount_applied": 500}])
    ids["bill"] = put(engine, "bill", vendor_id=ids["vendor"], sub_total=980.5, line_items=lines((p, 980.5)))
    ids["credit_note"] = put(engine, "credit_note", customer_id=c, line_items=lines((p2, 75.0)), sub_total=75)
    ids["stock_adjustment"] = put(engine, "stock_adjustment", line_items=[{"item_id": p, "quantity_adjusted": -3}])
    ids["sales_return"] = put(engine, "sales_return", customer_id=c, salesorder_id=ids["sales_order"],
                              line_items=lines((p, 53.0)))
    for entity in ("price_list", "user", "branch"):
        ids[entity] = put(engine, entity)
    return ids


def found(result: dict) -> set[tuple[str, str, str]]:
    return {(f["entity"], f["rule"], f["zoho_id"]) for f in result["findings"]}


def check(engine, name: str, limit: int = datachecks.DEFAULT_LIMIT) -> dict:
    return datachecks.run(engine, SCHEMA, name, limit)


def test_a_consistent_copy_has_no_finding(clean_db):
    consistent_copy(clean_db)
    for name in ("orphans", "products", "integrity"):
        result = check(clean_db, name)
        assert result["total"] == 0 and result["findings"] == [] and result["counts"] == {}, result


def test_orphans_name_each_reference_tds_does_not_hold(clean_db):
    ids = consistent_copy(clean_db)
    gone_customer, gone_vendor, gone_invoice, gone_order = new_id(), new_id(), new_id(), new_id()
    held = lines((ids["product"], 53.0))
    invoice = put(clean_db, "invoice", customer_id=gone_customer, line_items=held)
    bill = put(clean_db, "bill", vendor_id=gone_vendor)
    payment = put(clean_db, "payment", customer_id=ids["customer"],
                  invoices=[{"invoice_id": ids["invoice"]}, {"invoice_id": gone_invoice}])
    sales_return = put(clean_db, "sales_return", customer_id=ids["customer"], salesorder_id=gone_order,
                       line_items=held)
    put(clean_db, "product", ids["product2"], deleted=True)  # held, but deleted: the lines naming it are orphans
    put(clean_db, "invoice", customer_id=new_id(), deleted=True)  # a deleted row is not checked

    result = check(clean_db, "orphans")
    assert found(result) == {
        ("invoice", "customer_id", invoice), ("bill", "vendor_id", bill),
        ("payment", "invoices[].invoice_id", payment), ("sales_return", "salesorder_id", sales_return),
        ("invoice", "line_items[].item_id", ids["invoice"]), ("sales_order", "line_items[].item_id",
                                                                ids["sales_order"]),
        ("credit_note", "line_items[].item_id", ids["credit_note"])}
    assert result["total"] == 7 and result["counts"] == {"invoice": 2, "bill": 1, "payment": 1, "sales_return": 1,
                                                         "sales_order": 1, "credit_note": 1}
    problems = {(f["entity"], f["rule"]): f["problem"] for f in result["findings"]}
    assert problems[("invoice", "customer_id")] == f"names customer {gone_customer} (customer_id), which TDS does " \
                                                   "not hold"
    assert problems[("sales_order", "line_items[].item_id")] == \
        f"line_items names product {ids['product2']} (item_id), which TDS holds only as deleted"
    assert gone_invoice in problems[("payment", "invoices[].invoice_id")]
    assert next(f for f in result["findings"] if f["zoho_id"] == bill)["label"] == "BILL-12"


def test_products_finds_shared_skus_missing_fields_negative_rates_and_stock_off_its_warehouses(clean_db):
    ids = consistent_copy(clean_db)
    twin = put(clean_db, "product", sku="OIL-1L")
    put(clean_db, "product", sku="OIL-1L", deleted=True)  # a deleted product shares nothing
    nameless, skuless = put(clean_db, "product", name="", sku="NO-NAME"), put(clean_db, "product", sku=None)
    cheap = put(clean_db, "product", sku="NEG-1", rate=-1, purchase_rate="-0.5")
    off = put(clean_db, "product", sku="OFF-1", stock_on_hand=10, available_stock=5,
              warehouses=[{"warehouse_stock_on_hand": 4, "warehouse_available_stock": 5},
                          {"warehouse_stock_on_hand": 4, "warehouse_available_stock": 0}])

    result = check(clean_db, "products")
    assert found(result) == {
        ("product", "duplicate_sku", ids["product"]), ("product", "duplicate_sku", twin),
        ("product", "missing_name", nameless), ("product", "missing_sku", skuless),
        ("product", "negative_rate", cheap), ("product", "negative_purchase_rate", cheap),
        ("product", "stock_on_hand_vs_warehouses", off)}
    problems = {(f["rule"], f["zoho_id"]): f["problem"] for f in result["findings"]}
    assert problems[("duplicate_sku", twin)] == f"SKU 'OIL-1L' is shared by 2 live products " \
                                                f"({', '.join(sorted([ids['product'], twin]))})"
    assert problems[("stock_on_hand_vs_warehouses", off)] == \
        "stock_on_hand is 10 but its 2 warehouses add up to 8"
    assert problems[("negative_rate", cheap)] == "rate is negative (-1)"
    assert result["counts"] == {"product": 7}


def test_integrity_finds_typed_columns_off_raw_totals_off_their_lines_and_future_times(clean_db):
    ids = consistent_copy(clean_db)
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S+0000")
    ahead = put(clean_db, "customer", last_modified_time=future)
    short = put(clean_db, "invoice", customer_id=ids["customer"], sub_total=100,
                line_items=lines((ids["product"], 60.0), (ids["product"], 30.0)))
    with clean_db.begin() as c:  # hands on the table: the typed columns no longer say what raw says
        c.execute(text("UPDATE zoho.products SET rate = 99 WHERE zoho_id = :i"), {"i": ids["product"]})
        c.execute(text("UPDATE zoho.branches SET is_primary_branch = false WHERE zoho_id = :i"), {"i": ids["branch"]})
        c.execute(text("UPDATE zoho.bills SET raw = jsonb_set(raw, '{date}', '\"2025-12-01\"') WHERE zoho_id = :i"),
                  {"i": ids["bill"]})

    result = check(clean_db, "integrity")
    assert found(result) == {
        ("customer", "future_modified", ahead), ("invoice", "sub_total_vs_line_items", short),
        ("product", "typed_column", ids["product"]), ("branch", "typed_column", ids["branch"]),
        ("bill", "typed_column", ids["bill"])}
    problems = {(f["rule"], f["zoho_id"]): f["problem"] for f in result["findings"]}
    assert problems[("typed_column", ids["product"])] == "column rate holds '99.000000' but raw.rate is '12.5'"
    assert problems[("typed_column", ids["bill"])] == "column date holds '2025-11-10' but raw.date is '2025-12-01'"
    assert problems[("sub_total_vs_line_items", short)] == "sub_total is 100 but its 2 line_items add up to 90 " \
                                                           "(item_total)"
    assert "is in the future" in problems[("future_modified", ahead)]


def test_findings_are_bounded_with_their_total(clean_db):
    made = sorted(put(clean_db, "product", sku=None) for _ in range(4))
    result = check(clean_db, "products", limit=2)
    assert result["total"] == 4 and result["truncated"] and result["rules"] == {"product.missing_sku": 4}
    assert [f["zoho_id"] for f in result["findings"]] == made[:2]
    with pytest.raises(datachecks.UnknownCheck):
        check(clean_db, "everything")


def test_the_endpoint_wants_the_admin_token(clean_db, api):
    put(clean_db, "invoice", customer_id=new_id(), line_items=[])
    client = api()
    assert client.simulate_get("/api/tds/data-validation/orphans").status_code == 401
    r = client.simulate_get("/api/tds/data-validation/orphans", headers=ADMIN, params={"limit": "10"})
    assert r.status_code == 200 and r.json["total"] == 1 and r.json["limit"] == 10, r.text
    assert r.json["findings"][0]["entity"] == "invoice" and r.json["findings"][0]["rule"] == "customer_id"
    assert client.simulate_get("/api/tds/data-validation/everything", headers=ADMIN).json["error"] == "unknown_check"
    assert client.simulate_get("/api/tds/data-validation/products", headers=ADMIN,
                               params={"limit": "0"}).status_code == 400


class NoZoho:
    """A Zoho client that cannot reach Zoho: the stats run reports each entity's error and still runs the checks."""

    requests = 0

    def iter_pages(self, spec, newest_first=False):
        raise ConnectionError("Zoho is not part of this test")


def test_a_stats_run_stores_the_counts_and_metrics_show_them(clean_db, api, pg_url):
    client = api()
    assert "tds_data_check_findings" not in client.simulate_get("/metrics").text  # never checked: no gauge
    put(clean_db, "bill", vendor_id=new_id())
    put(clean_db, "product", sku=None)
    config = load(environ={"TDS_DATABASE_URL": pg_url})
    report = stats.run(config, clean_db, None, "cli", ["product"], client=NoZoho())
    assert report["errors"] and report["data_checks"]["orphans"]["counts"] == {"bill": 1}
    assert report["data_checks"]["products"]["findings"][0]["rule"] == "missing_sku"
    body = client.simulate_get("/metrics").text
    assert 'tds_data_check_findings{check="orphans",entity="bill"} 1.0' in body
    assert 'tds_data_check_findings{check="products",entity="product"} 1.0' in body
    assert 'tds_data_check_findings{check="integrity",entity="invoice"} 0.0' in body
