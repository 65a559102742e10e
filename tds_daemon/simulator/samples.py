"""Sample content per entity: the generators of ``SAMPLES``, keyed by entity name.

A generator gets a ``Ctx`` and returns the Zoho-shaped fields of one object; the factory in
``data.py`` adds the id, the last-modified fields and generic values for whatever typed column a
generator leaves out, so an entity without a generator here is still served.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from tds_daemon import entities
from tds_daemon.entities import EntitySpec
from tds_daemon.simulator.images import item_image
from tds_daemon.simulator.vocabulary import (
    ADJUST_REASONS,
    BRANDS,
    CATEGORIES,
    CITIES,
    COMPANY_CORE,
    COMPANY_KIND,
    COMPANY_KIND_INITIALS,
    COMPANY_TRADE,
    FIRST,
    LAST,
    PRICE_LISTS,
    PRODUCTS,
    SIZES,
)
from tds_daemon.simulator.zohotime import ORG_TZ

if TYPE_CHECKING:
    from tds_daemon.simulator.data import Factory


def _weighted(rng: random.Random, table: list[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in table], [w for _, w in table])[0]


@dataclass
class Ctx:
    """What a sample generator may use: its random stream, when the object was created, the objects
    of entities generated before it (registry order) and the factory (ids, warehouses, uniqueness)."""

    spec: EntitySpec
    rng: random.Random
    serial: int  # 1, 2, ... per entity, never reused
    created: int  # epoch seconds
    refs: dict[str, list[dict]]
    factory: Factory

    @property
    def date(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.created, ORG_TZ).date()

    def days_after(self, days: int) -> str:
        return (self.date + dt.timedelta(days=days)).isoformat()

    def sub_id(self) -> str:
        return self.factory.sub_id(self.rng)

    def pick(self, entity: str) -> dict | None:
        pool = self.refs.get(entity)
        return self.rng.choice(pool) if pool else None

    def unique(self, kind: str, name: str) -> str:
        return self.factory.unique(kind, name)

    def arabic(self) -> bool:
        return self.rng.random() < 0.5


def _person(c: Ctx) -> tuple[str, str, str, str]:
    """(first, last, display, email-slug) in Arabic or English."""
    (fa, fe), (la, le) = c.rng.choice(FIRST), c.rng.choice(LAST)
    slug = f"{fe}.{le}".lower().replace("-", "")
    return (fa, la, f"{fa} {la}", slug) if c.arabic() else (fe, le, f"{fe} {le}", slug)


def _phone(rng: random.Random) -> str:
    return f"+9665{rng.randrange(10_000_000, 100_000_000)}"


def _address(c: Ctx, attention: str) -> dict:
    city_ar, city_en = c.rng.choice(CITIES)
    arabic = c.arabic()
    street = "طريق الملك فهد" if arabic else "King Fahd Rd"
    return {"attention": attention, "address": f"{c.rng.randint(1, 9999)} {street}",
            "street2": "", "city": city_ar if arabic else city_en, "state": "", "zip": f"{c.rng.randint(11000, 34999)}",
            "country": "المملكة العربية السعودية" if arabic else "Saudi Arabia", "phone": _phone(c.rng), "fax": ""}


def _item(c: Ctx) -> dict:
    r = c.rng
    ar, en, unit, code = r.choice(PRODUCTS)
    size_ar, size_en = r.choice(SIZES[unit])
    brand = r.choice(BRANDS)
    name = c.unique("item", f"{ar} {size_ar} - {brand}" if c.arabic() else f"{en} {size_en} - {brand}")
    rate = round(r.uniform(2, 400), 2)
    locations, on_hand, available = [], 0, 0
    for i, loc in enumerate(c.factory.locations):
        stock = r.randint(0, 300) if i == 0 or r.random() < 0.7 else 0
        committed = r.randint(0, stock // 5) if stock else 0
        on_hand, available = on_hand + stock, available + stock - committed
        locations.append({**loc, "location_stock_on_hand": stock, "location_available_stock": stock - committed,
                          "location_actual_available_stock": stock - committed,
                          "location_committed_stock": committed})
    return {
        "name": name, "sku": f"{code}-{c.serial:05d}", "status": "active" if r.random() < 0.95 else "inactive",
        "item_type": "inventory", "product_type": "goods", "unit": "pcs" if r.random() < 0.6 else unit,
        "description": f"{en} {size_en}, {brand}", "rate": rate,
        "purchase_rate": round(rate * r.uniform(0.55, 0.85), 2),
        "tax_name": "VAT", "tax_percentage": 15, "is_taxable": True, "reorder_level": r.choice([0, 10, 20, 50]),
        "stock_on_hand": on_hand, "available_stock": available, "actual_available_stock": available,
        "category_name": CATEGORIES[code], "brand": brand, "manufacturer": brand, "is_combo_product": False,
        "has_attachment": False, **item_image(c, f"{en} {size_en}"), "locations": locations,
    }


def _contact(c: Ctx, kind: str) -> dict:
    r = c.rng
    first, last, person, slug = _person(c)
    if r.random() < 0.75:
        core_ar, core_en = r.choice(COMPANY_CORE)
        trade_ar, trade_en = r.choice(COMPANY_TRADE)
        city_ar, city_en = r.choice(CITIES)
        company = (f"{r.choice(COMPANY_KIND)} {core_ar} {trade_ar}" if c.arabic() else f"{core_en} {trade_en}")
        if r.random() < 0.5:
            company += f" - {city_ar}" if company[0] in COMPANY_KIND_INITIALS else f" - {city_en}"
        display, sub_type = c.unique("contact", company), "business"
    else:
        company, display, sub_type = "", c.unique("contact", person), "individual"
    terms = r.choice([0, 15, 30, 45, 60])
    address = _address(c, person)
    return {
        "contact_name": display, "company_name": company,
        **({"customer_sub_type": sub_type} if kind == "customer" else {}),
        "status": "active" if r.random() < 0.93 else "inactive",
        "first_name": first, "last_name": last, "email": f"{slug}{c.serial}@example.com",
        "phone": _phone(r), "mobile": _phone(r), "website": "",
        "currency_code": _weighted(r, [("SAR", 85), ("AED", 10), ("USD", 5)]),
        "payment_terms": terms, "payment_terms_label": f"Net {terms}" if terms else "Due on Receipt",
        "outstanding_receivable_amount": round(r.uniform(0, 25000), 2) if kind == "customer" and r.random() < .4
        else 0.0,
        "outstanding_payable_amount": round(r.uniform(0, 60000), 2) if kind == "vendor" and r.random() < .5 else 0.0,
        "unused_credits_receivable_amount": 0.0, "unused_credits_payable_amount": 0.0,
        "billing_address": address, "shipping_address": dict(address),
        "contact_persons": [{"contact_person_id": c.sub_id(), "first_name": first, "last_name": last,
                             "email": f"{slug}{c.serial}@example.com", "phone": address["phone"],
                             "is_primary_contact": True}],
    }


def _lines(c: Ctx, *, price: str = "rate", location: bool = False) -> tuple[list[dict], float, float]:
    """1–5 line items over generated products → (lines, sub_total, tax_total)."""
    r, lines = c.rng, []
    product_id = entities.get("product").id_field
    for _ in range(r.randint(1, 5)):
        item = c.pick("product") or {product_id: c.sub_id(), "name": "Item", "sku": "", "unit": "pcs",
                                     price: round(r.uniform(5, 300), 2)}
        qty, rate = r.randint(1, 40), item[price]
        line = {"line_item_id": c.sub_id(), "item_id": item[product_id], "name": item["name"], "sku": item["sku"],
                "description": "", "quantity": qty, "unit": item["unit"], "rate": rate, "tax_name": "VAT",
                "tax_percentage": 15, "item_total": round(qty * rate, 2)}
        if location:
            loc = r.choice(c.factory.locations)
            line.update(location_id=loc["location_id"], location_name=loc["location_name"])
        lines.append(line)
    sub_total = round(sum(li["item_total"] for li in lines), 2)
    return lines, sub_total, round(sub_total * 0.15, 2)


def _party(c: Ctx, entity: str, role: str) -> dict:
    contact = c.pick(entity)
    if contact is None:
        return {f"{role}_id": c.sub_id(), f"{role}_name": "—", "currency_code": "SAR"}
    return {f"{role}_id": contact[entities.get(entity).id_field], f"{role}_name": contact["contact_name"],
            "currency_code": contact["currency_code"]}


def _balance(c: Ctx, status: str, total: float) -> float:
    if status in ("paid", "void", "closed"):
        return 0.0
    if status == "partially_paid":
        return round(total * c.rng.uniform(0.2, 0.8), 2)
    return total


def _invoice(c: Ctx) -> dict:
    r = c.rng
    status = _weighted(r, [("paid", 45), ("sent", 20), ("overdue", 12), ("partially_paid", 8), ("draft", 10),
                           ("void", 5)])
    lines, sub_total, tax = _lines(c, location=True)
    total = round(sub_total + tax, 2)
    return {"invoice_number": f"INV-{c.serial:06d}", "reference_number": "", **_party(c, "customer", "customer"),
            "status": status, "date": c.date.isoformat(), "due_date": c.days_after(r.choice([0, 15, 30, 45])),
            "exchange_rate": 1.0, "sub_total": sub_total, "tax_total": tax, "total": total,
            "balance": _balance(c, status, total), "is_emailed": status != "draft",
            "salesperson_name": "", "line_items": lines}


def _sales_order(c: Ctx) -> dict:
    r = c.rng
    status = _weighted(r, [("confirmed", 35), ("fulfilled", 40), ("draft", 15), ("void", 5), ("closed", 5)])
    lines, sub_total, tax = _lines(c, location=True)
    loc = r.choice(c.factory.locations)
    return {"salesorder_number": f"SO-{c.serial:05d}", "reference_number": "", **_party(c, "customer", "customer"),
            "status": status, "order_status": status,
            "invoiced_status": "invoiced" if status in ("fulfilled", "closed") else "not_invoiced",
            "shipped_status": "fulfilled" if status in ("fulfilled", "closed") else "pending",
            "date": c.date.isoformat(), "shipment_date": c.days_after(r.randint(0, 10)),
            "delivery_method": r.choice(["Courier", "Pickup", "Own fleet"]), "location_id": loc["location_id"],
            "location_name": loc["location_name"], "sub_total": sub_total, "tax_total": tax,
            "total": round(sub_total + tax, 2), "line_items": lines}


def _payment(c: Ctx) -> dict:
    r = c.rng
    invoice = c.pick("invoice")
    if invoice is not None:
        party = {"customer_id": invoice["customer_id"], "customer_name": invoice["customer_name"],
                 "currency_code": invoice["currency_code"]}
        amount = round(max(invoice["total"] * r.choice([1, 1, 1, 0.5]), 1), 2)
        applied = [{"invoice_id": invoice[entities.get("invoice").id_field],
                    "invoice_number": invoice["invoice_number"], "date": invoice["date"], "amount_applied": amount}]
    else:
        party, amount, applied = _party(c, "customer", "customer"), round(r.uniform(50, 5000), 2), []
    unused = round(r.uniform(0, amount / 4), 2) if r.random() < 0.1 else 0.0
    return {"payment_number": str(c.serial), **party, "payment_mode": r.choice(["cash", "banktransfer", "check",
                                                                                 "creditcard"]),
            "date": c.date.isoformat(), "amount": round(amount + unused, 2), "unused_amount": unused,
            "reference_number": f"TRX{r.randrange(100000, 999999)}", "account_name": r.choice(["Petty Cash",
                                                                                                "Al Rajhi Bank"]),
            "description": "", "invoices": applied}


def _bill(c: Ctx) -> dict:
    r = c.rng
    status = _weighted(r, [("paid", 50), ("open", 25), ("overdue", 10), ("partially_paid", 5), ("draft", 5),
                           ("void", 5)])
    lines, sub_total, tax = _lines(c, price="purchase_rate")
    total = round(sub_total + tax, 2)
    return {"bill_number": f"BILL-{c.serial:05d}", "reference_number": f"PO-{r.randrange(1000, 9999)}",
            **_party(c, "vendor", "vendor"), "status": status, "date": c.date.isoformat(),
            "due_date": c.days_after(r.choice([0, 30, 60])), "sub_total": sub_total, "tax_total": tax,
            "total": total, "balance": _balance(c, status, total), "line_items": lines}


def _credit_note(c: Ctx) -> dict:
    r = c.rng
    status = _weighted(r, [("closed", 55), ("open", 35), ("void", 10)])
    lines, sub_total, tax = _lines(c)
    total = round(sub_total + tax, 2)
    return {"creditnote_number": f"CN-{c.serial:05d}", "reference_number": "", **_party(c, "customer", "customer"),
            "status": status, "date": c.date.isoformat(), "sub_total": sub_total, "tax_total": tax, "total": total,
            "balance": 0.0 if status != "open" else total, "line_items": lines}


def _stock_adjustment(c: Ctx) -> dict:
    r = c.rng
    loc = r.choice(c.factory.locations)
    lines, _, _ = _lines(c, price="purchase_rate", location=True)
    for li in lines:
        li["quantity_adjusted"] = -li["quantity"] if r.random() < 0.7 else li["quantity"]
    return {"reference_number": f"ADJ-{c.serial:05d}", "date": c.date.isoformat(), "reason": r.choice(ADJUST_REASONS),
            "adjustment_type": "quantity" if r.random() < 0.9 else "value",
            "status": "adjusted" if r.random() < 0.9 else "draft", "description": "",
            "location_id": loc["location_id"], "location_name": loc["location_name"],
            "total": round(sum(li["quantity_adjusted"] * li["rate"] for li in lines), 2), "line_items": lines}


def _sales_return(c: Ctx) -> dict:
    """A return of (part of) a sales order: its lines, what was received back and what was refunded."""
    r = c.rng
    order = c.pick("sales_order")
    status = _weighted(r, [("approved", 55), ("pending_approval", 15), ("declined", 10), ("draft", 10),
                           ("void", 10)])
    if order is not None:
        lines = [{**li, "line_item_id": c.sub_id(), "quantity": max(1, li["quantity"] // 2),
                  "salesorder_item_id": li.get("line_item_id")} for li in order["line_items"][:r.randint(1, 2)]]
        party = {"customer_id": order["customer_id"], "customer_name": order["customer_name"],
                 "currency_code": order["currency_code"], "salesorder_id": order[entities.get("sales_order").id_field],
                 "salesorder_number": order["salesorder_number"]}
    else:
        lines, _, _ = _lines(c)
        party = {**_party(c, "customer", "customer"), "salesorder_id": "", "salesorder_number": ""}
    for li in lines:
        li["item_total"] = round(li["quantity"] * li.get("rate", 0), 2)
    received = status == "approved" and r.random() < 0.8
    return {"salesreturn_number": f"RMA-{c.serial:05d}", **party, "date": c.date.isoformat(),
            "reason": r.choice(["Damaged in transit", "Wrong item", "Expired", "تالف", "طلب خاطئ"]),
            "salesreturn_status": status, "salesreturn_type": "return_refund",
            "receive_status": "received" if received else "" if status != "approved" else "pending",
            "refund_status": "refunded" if received and r.random() < 0.7 else "",
            "total": round(sum(li["item_total"] for li in lines), 2), "line_items": lines}


def _price_list(c: Ctx) -> dict:
    r = c.rng
    ar, en = PRICE_LISTS[(c.serial - 1) % len(PRICE_LISTS)]
    per_item = r.random() < 0.75
    product_id = entities.get("product").id_field
    items = c.refs.get("product") or []
    chosen = r.sample(items, min(len(items), r.randint(100, 270))) if per_item else []
    return {"name": c.unique("pricebook", ar if c.arabic() else en), "description": en,
            "currency_code": "SAR", "pricebook_type": "per_item" if per_item else "fixed_percentage",
            "percentage": 0 if per_item else r.choice([5, 10, 15]), "is_increase": False,
            "rounding_type": "no_rounding", "sales_or_purchase_type": "sales",
            "status": "active" if r.random() < 0.9 else "inactive", "is_default": c.serial == 1,
            "pricebook_items": [{"item_id": it[product_id], "name": it["name"], "sku": it["sku"], "rate": it["rate"],
                                 "pricebook_rate": round(it["rate"] * r.uniform(0.8, 0.98), 2)} for it in chosen]}


def _user(c: Ctx) -> dict:
    r = c.rng
    _, _, display, slug = _person(c)
    role = "admin" if c.serial == 1 else _weighted(r, [("staff", 80), ("admin", 10), ("timesheetstaff", 10)])
    return {"name": c.unique("user", display), "email": f"{slug}{c.serial}@example.com",
            "role_id": c.factory.role_id(role), "user_role": role,
            "status": "active" if c.serial == 1 else _weighted(r, [("active", 85), ("inactive", 10), ("invited", 5)]),
            "is_current_user": c.serial == 1, "photo_url": ""}


def _branch(c: Ctx) -> dict:
    ar, en = CITIES[(c.serial - 1) % len(CITIES)]
    name = f"فرع {ar}" if c.arabic() else f"{en} Branch"
    return {"branch_name": c.unique("branch", name), "email": f"{en.lower()}@example.com",
            "is_primary_branch": c.serial == 1, "status": "active", "phone": _phone(c.rng),
            "address": {"city": en, "country": "Saudi Arabia"}}


SAMPLES: dict[str, Callable[[Ctx], dict]] = {
    "product": _item, "customer": partial(_contact, kind="customer"), "vendor": partial(_contact, kind="vendor"),
    "invoice": _invoice, "sales_order": _sales_order, "payment": _payment, "bill": _bill,
    "credit_note": _credit_note, "stock_adjustment": _stock_adjustment, "price_list": _price_list,
    "user": _user, "branch": _branch, "sales_return": _sales_return,
}
