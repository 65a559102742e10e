"""Zoho-shaped objects for tests: 19-digit string ids, Zoho timestamps, line items, Arabic names."""

from __future__ import annotations

import datetime as dt
import itertools

from tds_daemon import entities

_counter = itertools.count(1)
BASE_TIME = dt.datetime(2025, 11, 13, 8, 40, tzinfo=dt.timezone(dt.timedelta(hours=3)))


def zoho_time(minutes: int = 0) -> str:
    """Zoho's format: offset without a colon."""
    return (BASE_TIME + dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S%z")


def new_id() -> str:
    return str(4815000000000000000 + next(_counter) * 1009)


_SAMPLE = {
    "product": {"name": "زيت زيتون 1 لتر", "sku": "OIL-1L", "rate": 12.5, "purchase_rate": "9.75",
                "stock_on_hand": 140, "available_stock": 132, "status": "active", "unit": "pcs"},
    "customer": {"contact_name": "شركة النور للتجارة", "company_name": "Al Noor Trading", "status": "active",
                 "email": "orders@alnoor.example", "currency_code": "SAR", "contact_type": "customer"},
    "vendor": {"contact_name": "Gulf Supplies LLC", "status": "active", "contact_type": "vendor"},
    "invoice": {"invoice_number": "INV-000731", "customer_id": "4815000000000000001", "customer_name": "Al Noor",
                "status": "sent", "date": "2025-11-13", "due_date": "2025-12-13", "total": 1150.0,
                "balance": 1150.0, "currency_code": "SAR",
                "line_items": [{"item_id": "4815000000000009999", "name": "زيت", "quantity": 2, "rate": 12.5}]},
    "sales_order": {"salesorder_number": "SO-00412", "customer_id": "4815000000000000001", "status": "confirmed",
                    "date": "2025-11-12", "total": "530.00",
                    "line_items": [{"item_id": "4815000000000009999", "quantity": 10}]},
    "payment": {"payment_number": "PAY-88", "customer_id": "4815000000000000001", "amount": 500,
                "date": "2025-11-13", "payment_mode": "bank_transfer"},
    "bill": {"bill_number": "BILL-12", "vendor_id": "4815000000000000002", "vendor_name": "Gulf Supplies",
             "status": "open", "date": "2025-11-10", "total": 980.5, "balance": 980.5},
    "credit_note": {"creditnote_number": "CN-00009", "customer_id": "4815000000000000001", "status": "open",
                    "date": "2025-11-11", "total": 75},
    "stock_adjustment": {"reference_number": "ADJ-7", "date": "2025-11-13", "reason": "Damaged",
                         "adjustment_type": "quantity",
                         "line_items": [{"item_id": "4815000000000009999", "quantity_adjusted": -3}]},
    "price_list": {"name": "قائمة الجملة", "currency_code": "SAR", "pricebook_type": "fixed_percentage",
                   "status": "active", "is_default": False},
    "user": {"name": "Fatima Al-Harbi", "email": "fatima@example.com", "role_id": "4815000000000000077",
             "status": "active", "user_role": "staff"},
    "branch": {"branch_name": "Riyadh Main", "email": "riyadh@example.com", "is_primary_branch": True,
               "status": "active"},
    "sales_return": {"salesreturn_number": "RMA-00012", "salesorder_id": "4815000000000000412",
                     "salesorder_number": "SO-00412", "customer_id": "4815000000000000001", "customer_name": "Al Noor",
                     "date": "2025-11-14", "salesreturn_status": "approved", "receive_status": "received",
                     "refund_status": "refunded", "total": 53.0, "currency_code": "SAR",
                     "line_items": [{"item_id": "4815000000000009999", "quantity": 1, "rate": 53.0}]},
}


def make_object(entity: str, zoho_id: str | None = None, minutes: int = 0, **fields) -> dict:
    spec = entities.get(entity)
    obj = {spec.id_field: zoho_id or new_id(), **_SAMPLE[entity]}
    if spec.modified_always:  # where Zoho may leave it out, a test adds it when it wants it
        obj[spec.last_modified] = zoho_time(minutes)
    obj.update(fields)
    return obj


def default_payload(entity: str, obj: dict) -> dict:
    return {entities.get(entity).object_key: obj}
