"""The entity registry: one EntitySpec per Zoho entity type, the single source of truth.

Tables, webhook routes, Dramatiq queues and actors, metric labels and (later) sync jobs and breaker
names are all derived from these specs; nothing per entity is written anywhere else. Adding an
entity type is one spec here and one migration.

Facts marked *unconfirmed* (whether price lists, users and branches carry ``last_modified_time``,
which fields only Zoho's single-object read returns) are expressed as data, so being wrong about them
costs a one-line change here, not a rewrite. An object without its last-modified field is ordered by
arrival (``tds_daemon.apply.upsert``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """A typed column copied out of the Zoho object for querying; ``raw`` keeps everything."""

    name: str
    type: str  # text | numeric | date | timestamptz | boolean
    source: str | None = None  # Zoho field name, default: the column name

    @property
    def field(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class EntitySpec:
    name: str
    app: str  # books | inventory
    list_path: str
    list_key: str
    object_key: str  # key of Zoho's default webhook payload
    id_field: str
    last_modified: str | None
    table: str
    columns: tuple[Column, ...]
    aliases: tuple[str, ...] = ()
    list_params: tuple[tuple[str, str], ...] = ()
    stock_columns: tuple[str, ...] = ()  # refreshed alone by a stock sync
    # Fields only the single-object read (and a webhook) carries, not the list rows: a row written from
    # a list page keeps them from the stored object and waits for the detail backfill. Empty: list rows
    # are whole objects.
    detail_fields: tuple[str, ...] = ()
    # Whether the objects always carry ``last_modified`` so that lists can be sorted by it and an
    # incremental pull can stop at its cursor. False where Zoho may leave the field out (*unconfirmed*):
    # such an entity is listed whole, and its objects ordered by the field when they have it.
    modified_always: bool = True
    # How often its incremental pull runs, by how often it changes: "hot" (the hourly incremental job),
    # "warm" (every few hours), "cold" (only the daily full pull: price lists, users, branches change
    # rarely, and their webhooks bring the changes). A pull costs one Zoho call at least, whatever it finds.
    pull_tier: str = "hot"
    # A transaction whose line items move stock (invoices, sales orders, bills, credit notes, stock
    # adjustments): a recent change of one makes the stock of the items it names stale.
    moves_stock: bool = False

    @property
    def lists_whole(self) -> bool:
        """Whether a list row is the whole object (no detail read is ever needed)."""
        return not self.detail_fields

    @property
    def queue(self) -> str:
        return f"tds.{self.name}"

    @property
    def actor_name(self) -> str:
        return f"apply_{self.name}"

    @property
    def route_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def extract_object(spec: EntitySpec, body: dict) -> dict:
    """The entity object of a webhook body: Zoho's default payload ``{"<object key>": {...}}``, or
    ``{"data": {...}}``, or the bare object. One function for intake (before storing) and apply (on the
    stored body), so the two never disagree about what a delivery meant."""
    for key in (spec.object_key, "data"):
        inner = body.get(key)
        if isinstance(inner, dict):
            return inner
    return body

def _cols(*specs: str) -> tuple[Column, ...]:
    """'name:type' or 'name:type:zoho_field' → Columns (a compact table, read top to bottom)."""
    out = []
    for spec in specs:
        parts = spec.split(":")
        out.append(Column(parts[0], parts[1], parts[2] if len(parts) > 2 else None))
    return tuple(out)


_DOCUMENT_DETAIL = ("line_items", "billing_address", "shipping_address")
_CONTACT_DETAIL = ("contact_persons", "billing_address", "shipping_address")
_CONTACT = _cols("contact_name:text", "company_name:text", "email:text", "phone:text", "status:text",
                 "currency_code:text", "outstanding_receivable_amount:numeric",
                 "outstanding_payable_amount:numeric", "created_time:timestamptz")

ENTITIES: tuple[EntitySpec, ...] = (
    EntitySpec("product", "inventory", "/items", "items", "item", "item_id", "last_modified_time", "products",
               _cols("name:text", "sku:text", "status:text", "unit:text", "rate:numeric",
                     "purchase_rate:numeric", "stock_on_hand:numeric", "available_stock:numeric",
                     "category_name:text", "brand:text", "created_time:timestamptz"),
               aliases=("products", "items", "item"), stock_columns=("stock_on_hand", "available_stock"),
               detail_fields=("warehouses", "locations")),
    EntitySpec("customer", "books", "/contacts", "contacts", "contact", "contact_id", "last_modified_time",
               "customers", _CONTACT, aliases=("customers", "contacts"),
               list_params=(("contact_type", "customer"),), detail_fields=_CONTACT_DETAIL),
    EntitySpec("vendor", "books", "/contacts", "contacts", "contact", "contact_id", "last_modified_time",
               "vendors", _CONTACT, aliases=("vendors",), list_params=(("contact_type", "vendor"),),
               detail_fields=_CONTACT_DETAIL, pull_tier="warm"),
    EntitySpec("invoice", "books", "/invoices", "invoices", "invoice", "invoice_id", "last_modified_time",
               "invoices",
               _cols("invoice_number:text", "customer_id:text", "customer_name:text", "status:text",
                     "date:date", "due_date:date", "currency_code:text", "total:numeric",
                     "balance:numeric"),
               aliases=("invoices",), detail_fields=_DOCUMENT_DETAIL, moves_stock=True),
    EntitySpec("sales_order", "inventory", "/salesorders", "salesorders", "salesorder", "salesorder_id",
               "last_modified_time", "sales_orders",
               _cols("salesorder_number:text", "customer_id:text", "customer_name:text", "status:text",
                     "date:date", "shipment_date:date", "currency_code:text", "total:numeric"),
               aliases=("orders", "salesorders", "sales-orders"), detail_fields=_DOCUMENT_DETAIL, moves_stock=True),
    EntitySpec("payment", "books", "/customerpayments", "customerpayments", "payment", "payment_id",
               "last_modified_time", "payments",
               _cols("payment_number:text", "customer_id:text", "customer_name:text", "payment_mode:text",
                     "date:date", "amount:numeric", "unused_amount:numeric", "currency_code:text"),
               aliases=("payments", "customerpayments"), detail_fields=("invoices",)),
    EntitySpec("bill", "books", "/bills", "bills", "bill", "bill_id", "last_modified_time", "bills",
               _cols("bill_number:text", "vendor_id:text", "vendor_name:text", "status:text", "date:date",
                     "due_date:date", "currency_code:text", "total:numeric", "balance:numeric"),
               aliases=("bills",), detail_fields=("line_items",), pull_tier="warm", moves_stock=True),
    EntitySpec("credit_note", "books", "/creditnotes", "creditnotes", "creditnote", "creditnote_id",
               "last_modified_time", "credit_notes",
               _cols("creditnote_number:text", "customer_id:text", "customer_name:text", "status:text",
                     "date:date", "currency_code:text", "total:numeric", "balance:numeric"),
               aliases=("credit-notes", "creditnotes"), detail_fields=("line_items",), pull_tier="warm",
               moves_stock=True),
    EntitySpec("stock_adjustment", "inventory", "/inventoryadjustments", "inventory_adjustments",
               "inventory_adjustment", "inventory_adjustment_id", "last_modified_time", "stock_adjustments",
               _cols("reference_number:text", "date:date", "reason:text", "adjustment_type:text",
                     "status:text", "total:numeric"),
               aliases=("stock", "inventory-adjustments"), detail_fields=("line_items",), pull_tier="warm",
               moves_stock=True),
    EntitySpec("price_list", "books", "/pricebooks", "pricebooks", "pricebook", "pricebook_id",
               "last_modified_time", "price_lists",
               _cols("name:text", "currency_code:text", "pricebook_type:text", "status:text",
                     "is_default:boolean"),
               aliases=("prices", "pricebooks", "pricelists"), detail_fields=("pricebook_items",),
               modified_always=False, pull_tier="cold"),
    EntitySpec("user", "books", "/users", "users", "user", "user_id", "last_modified_time", "users",
               _cols("name:text", "email:text", "role_id:text", "status:text", "user_role:text"),
               aliases=("users",), modified_always=False, pull_tier="cold"),
    EntitySpec("branch", "books", "/branches", "branches", "branch", "branch_id", "last_modified_time",
               "branches",
               _cols("branch_name:text", "email:text", "is_primary_branch:boolean", "status:text"),
               aliases=("branches",), modified_always=False, pull_tier="cold"),
    EntitySpec("sales_return", "inventory", "/salesreturns", "salesreturns", "salesreturn", "salesreturn_id",
               "last_modified_time", "sales_returns",
               _cols("salesreturn_number:text", "salesorder_id:text", "salesorder_number:text", "customer_id:text",
                     "customer_name:text", "date:date", "status:text:salesreturn_status", "receive_status:text",
                     "refund_status:text", "total:numeric", "currency_code:text"),
               aliases=("sales_returns", "returns", "salesreturns", "sales-returns"), detail_fields=("line_items",),
               pull_tier="warm", moves_stock=True),
)

BY_NAME: dict[str, EntitySpec] = {e.name: e for e in ENTITIES}
# Events about an item's image name it by this entity (its row in ``item_images``, keyed by the item id).
IMAGE_ENTITY = "product_image"
_ROUTES: dict[str, EntitySpec] = {alias: e for e in ENTITIES for alias in e.route_names}
# Two specs sharing a route would silently shadow one another; refuse at import instead.
assert len(_ROUTES) == sum(len(e.route_names) for e in ENTITIES), "an alias is claimed twice"

COLUMN_TYPES = ("text", "numeric", "date", "timestamptz", "boolean")
PULL_TIERS = ("hot", "warm", "cold")
assert all(e.pull_tier in PULL_TIERS for e in ENTITIES)
assert all(c.type in COLUMN_TYPES for e in ENTITIES for c in e.columns)


def unknown(name: str, *, with_all: bool = False) -> str:
    """The one answer to an entity name that is not known: the name (cut) and every known one."""
    known = ", ".join((["all"] if with_all else []) + list(BY_NAME))
    return f"no entity type {name[:60]!r}; known: {known}"


def resolve(name: str) -> EntitySpec | None:
    """Entity by name or alias (case-insensitive), or None."""
    return _ROUTES.get(name.lower())


def get(name: str) -> EntitySpec:
    """Entity by canonical name; KeyError names the valid ones."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; known: {', '.join(BY_NAME)}") from None

