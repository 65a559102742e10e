"""Deterministic Zoho-shaped objects: the same seed and counts give the same objects, byte for byte.

Every entity comes from the registry (``tds_daemon.entities.ENTITIES``): its id field, its
last-modified field, its ``list_params`` (``contact_type`` of customers and vendors) and its typed
columns. What differs per entity is only *sample content*, a table of generators keyed by entity
name (``SAMPLES``); an entity without one gets generic values for its typed columns, so a newly
registered entity is served without touching this file. Whatever a generator leaves out that a
typed column reads is filled generically too: list rows always carry every column TDS stores.

Objects look like Zoho's: 19-digit string ids, ``2025-11-13T08:40:00+0300`` timestamps, numbers as
JSON numbers, Arabic and English names, line items on documents, items with per-warehouse
``locations`` and image fields (``images.py``: about 60 % have an image, the rest empty strings).
List rows leave out the heavy parts (``DETAIL_ONLY``) as Zoho's list APIs do; the single-object
read returns everything.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from tds_daemon import entities
from tds_daemon.entities import EntitySpec
from tds_daemon.simulator.images import item_image
from tds_daemon.simulator.zohotime import DATA_END, ORG_TZ, from_epoch

# Keys only the single-object read carries (Zoho's list APIs return a flatter row).
DETAIL_ONLY = frozenset({"line_items", "locations", "contact_persons", "billing_address", "shipping_address",
                         "pricebook_items", "invoices"})

SPAN_S = 730 * 86400  # generated objects were created within the two years before DATA_END

_INDEX = {e.name: i + 1 for i, e in enumerate(entities.ENTITIES)}
_SUB_INDEX = 98  # line items, contact persons
_LOCATION_INDEX = 99

PRODUCTS = [  # (Arabic, English, unit, sku code)
    ("زيت زيتون", "Olive Oil", "ltr", "OIL"), ("أرز بسمتي", "Basmati Rice", "kg", "RICE"),
    ("سكر أبيض", "White Sugar", "kg", "SUG"), ("طحين", "Flour", "kg", "FLR"),
    ("حليب مجفف", "Milk Powder", "g", "MLK"), ("شاي أحمر", "Black Tea", "g", "TEA"),
    ("قهوة عربية", "Arabic Coffee", "g", "COF"), ("تمر سكري", "Sukkari Dates", "kg", "DAT"),
    ("عسل طبيعي", "Natural Honey", "g", "HNY"), ("معكرونة", "Pasta", "g", "PAS"),
    ("معجون طماطم", "Tomato Paste", "g", "TOM"), ("جبنة بيضاء", "White Cheese", "g", "CHS"),
    ("زبدة", "Butter", "g", "BTR"), ("ملح", "Salt", "g", "SLT"), ("عدس أحمر", "Red Lentils", "kg", "LEN"),
    ("حمص", "Chickpeas", "kg", "CHK"), ("فول مدمس", "Fava Beans", "g", "FAV"), ("تونة", "Tuna", "g", "TUN"),
    ("بسكويت", "Biscuits", "g", "BIS"), ("ماء معدني", "Mineral Water", "ltr", "WTR"),
]
SIZES = {"ltr": [("1 لتر", "1L"), ("1.5 لتر", "1.5L"), ("5 لتر", "5L"), ("500 مل", "500ml")],
         "kg": [("1 كغ", "1kg"), ("2 كغ", "2kg"), ("5 كغ", "5kg"), ("10 كغ", "10kg")],
         "g": [("250 غ", "250g"), ("400 غ", "400g"), ("500 غ", "500g"), ("800 غ", "800g")]}
BRANDS = ["Al Marai", "Nadec", "Al Walimah", "Halwani", "Sunbulah", "Goody", "Afia", "Al Alali", "Baladna",
          "Puck", "Americana", "Al Osra"]
CATEGORIES = {"OIL": "Oils", "RICE": "Grains", "SUG": "Baking", "FLR": "Baking", "MLK": "Dairy", "TEA": "Beverages",
              "COF": "Beverages", "DAT": "Dates", "HNY": "Sweeteners", "PAS": "Pasta", "TOM": "Canned",
              "CHS": "Dairy", "BTR": "Dairy", "SLT": "Spices", "LEN": "Legumes", "CHK": "Legumes", "FAV": "Canned",
              "TUN": "Canned", "BIS": "Snacks", "WTR": "Beverages"}
FIRST = [("محمد", "Mohammed"), ("أحمد", "Ahmed"), ("فاطمة", "Fatima"), ("نورة", "Noura"), ("عبدالله", "Abdullah"),
         ("خالد", "Khalid"), ("سارة", "Sara"), ("ريم", "Reem"), ("يوسف", "Yousef"), ("مريم", "Maryam"),
         ("سلمان", "Salman"), ("هند", "Hind"), ("فيصل", "Faisal"), ("لمى", "Lama")]
LAST = [("الحربي", "Al-Harbi"), ("العتيبي", "Al-Otaibi"), ("القحطاني", "Al-Qahtani"), ("الشمري", "Al-Shammari"),
        ("الدوسري", "Al-Dosari"), ("الزهراني", "Al-Zahrani"), ("الغامدي", "Al-Ghamdi"), ("المطيري", "Al-Mutairi"),
        ("السبيعي", "Al-Subaie"), ("العنزي", "Al-Anazi")]
COMPANY_KIND = ["شركة", "مؤسسة", "مجموعة", "متجر"]
COMPANY_KIND_INITIALS = {k[0] for k in COMPANY_KIND}
COMPANY_CORE = [("النور", "Al Noor"), ("الأمل", "Al Amal"), ("الفجر", "Al Fajr"), ("السلام", "Al Salam"),
                ("الرياض", "Riyadh"), ("الخليج", "Gulf"), ("البركة", "Al Baraka"), ("الوفاء", "Al Wafa"),
                ("الهدى", "Al Huda"), ("الصفا", "Al Safa"), ("المدينة", "Madina"), ("الشرق", "Al Sharq"),
                ("الواحة", "Oasis"), ("النخيل", "Palm")]
COMPANY_TRADE = [("للتجارة", "Trading"), ("للتموين", "Catering Supplies"), ("للمواد الغذائية", "Foodstuff"),
                 ("التجارية", "Trading Co."), ("للاستيراد", "Import"), ("للتوزيع", "Distribution")]
CITIES = [("الرياض", "Riyadh"), ("جدة", "Jeddah"), ("الدمام", "Dammam"), ("مكة المكرمة", "Makkah"),
          ("المدينة المنورة", "Madinah"), ("الخبر", "Khobar"), ("أبها", "Abha")]
WAREHOUSES = ["Riyadh Main Warehouse", "Jeddah Warehouse", "Dammam Warehouse"]
PRICE_LISTS = [("قائمة الجملة", "Wholesale"), ("قائمة التجزئة", "Retail"), ("كبار العملاء", "VIP Customers"),
               ("الموزعين", "Distributors"), ("عروض رمضان", "Ramadan Offers"), ("الشركات", "Corporate"),
               ("المطاعم", "Restaurants"), ("الفنادق", "Hotels")]
ADJUST_REASONS = ["Damaged goods", "Stocktaking results", "Expired goods", "Stolen goods", "تلف أثناء النقل",
                  "نتائج الجرد", "انتهاء الصلاحية"]


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


def _generic(c: Ctx, column: entities.Column) -> object:
    if column.type == "numeric":
        return round(c.rng.uniform(1, 1000), 2)
    if column.type == "date":
        return c.date.isoformat()
    if column.type == "timestamptz":
        return from_epoch(c.created)
    if column.type == "boolean":
        return c.rng.random() < 0.5
    return f"{c.spec.name} {column.field} {c.serial}"


class Factory:
    """Makes objects. One per data set: it owns the id counters and the names already used."""

    def __init__(self, seed: int, *, last_modified_everywhere: bool = False):
        self.seed = seed
        self.lm_everywhere = last_modified_everywhere
        root = random.Random(f"tds-sim:{seed}")
        self.prefix = root.randrange(1_000_000, 10_000_000)  # 7 digits: ids are 19 digits
        self.counters: dict[int, int] = {}
        self.serials: dict[str, int] = {}
        self.names: dict[str, set[str]] = {}
        self.roles: dict[str, str] = {}
        self.images: dict = {}  # images.py's: the shared image's fields, images changed so far
        self.locations = [{"location_id": self._id(_LOCATION_INDEX, root), "location_name": en, "status": "active",
                           "is_primary": i == 0} for i, en in enumerate(WAREHOUSES)]

    # --- ids and names ---
    def _id(self, index: int, rng: random.Random) -> str:
        n = self.counters.get(index, 0) + rng.randint(1, 7)
        self.counters[index] = n
        return f"{self.prefix}00{index:02d}{n:08d}"

    def sub_id(self, rng: random.Random) -> str:
        return self._id(_SUB_INDEX, rng)

    def role_id(self, role: str) -> str:
        if role not in self.roles:
            self.roles[role] = self._id(_SUB_INDEX, random.Random(f"tds-sim:{self.seed}:role:{role}"))
        return self.roles[role]

    def unique(self, kind: str, name: str) -> str:
        used = self.names.setdefault(kind, set())
        candidate, n = name, 1
        while candidate in used:
            n += 1
            candidate = f"{name} {n}"
        used.add(candidate)
        return candidate

    def last_modified_field(self, spec: EntitySpec) -> str | None:
        # Where the registry says the field may be absent (price lists, users, branches), the simulator
        # leaves it out unless told otherwise: TDS must work either way.
        if spec.last_modified and (spec.modified_always or self.lm_everywhere):
            return spec.last_modified
        return None

    # --- objects ---
    def make(self, spec: EntitySpec, rng: random.Random, created: int, modified: int,
             refs: dict[str, list[dict]], fields: dict | None = None) -> dict:
        serial = self.serials.get(spec.name, 0) + 1
        self.serials[spec.name] = serial
        ctx = Ctx(spec, rng, serial, created, refs, self)
        obj: dict = {spec.id_field: self._id(_INDEX.get(spec.name, 97), rng)}
        sample = SAMPLES.get(spec.name)
        if sample is not None:
            obj.update(sample(ctx))
        for column in spec.columns:  # every typed column has something to read
            if column.field not in obj and column.field != spec.last_modified:
                obj[column.field] = _generic(ctx, column)
        obj.update(dict(spec.list_params))
        lm_field = self.last_modified_field(spec)
        if lm_field:
            obj["created_time"] = from_epoch(created)
            obj[lm_field] = from_epoch(modified)
        if fields:
            obj.update(fields)
        return obj

    def generate(self, counts: dict[str, int]) -> dict[str, list[dict]]:
        """Every registry entity's objects, in registry order (later ones reference earlier ones)."""
        refs: dict[str, list[dict]] = {}
        end = int(DATA_END.timestamp())
        for spec in entities.ENTITIES:
            rng = random.Random(f"tds-sim:{self.seed}:{spec.name}")
            objs = []
            for _ in range(counts.get(spec.name, 0)):
                created = end - rng.randint(86400, SPAN_S)
                modified = created if rng.random() < 0.35 else created + rng.randint(0, end - created)
                objs.append(self.make(spec, rng, created, modified, refs))
            refs[spec.name] = objs
        return refs

    def new(self, spec: EntitySpec, refs: dict[str, list[dict]], now: int, fields: dict | None = None) -> dict:
        """An object created at run time (control API): generated content, ``fields`` on top."""
        serial = self.serials.get(spec.name, 0) + 1
        rng = random.Random(f"tds-sim:{self.seed}:{spec.name}:new:{serial}")
        return self.make(spec, rng, now, now, refs, fields)


def list_row(obj: dict) -> dict:
    """The row a list API returns for ``obj``: everything but the heavy detail parts."""
    return {k: v for k, v in obj.items() if k not in DETAIL_ONLY}
