"""Whole objects: each entity row says whether ``raw`` is the whole Zoho object of its version.

Rows stored before this revision are classified from what they hold: a row whose ``raw`` carries
any field only the single-object read returns is taken as whole ('current'); one without any is a
list row ('missing') and waits for the detail backfill. The detail-only fields are written out here
as they stand at this revision (the registry may change later; this migration must not).

Revision ID: 0008
Revises: 0007
"""

from alembic import context, op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# table → fields only the single-object read carries, at this revision. Tables not named: list rows
# are whole.
DETAIL_FIELDS = {
    "products": ("warehouses", "locations"),
    "customers": ("contact_persons", "billing_address", "shipping_address"),
    "vendors": ("contact_persons", "billing_address", "shipping_address"),
    "invoices": ("line_items", "billing_address", "shipping_address"),
    "sales_orders": ("line_items", "billing_address", "shipping_address"),
    "payments": ("invoices",),
    "bills": ("line_items",),
    "credit_notes": ("line_items",),
    "stock_adjustments": ("line_items",),
    "price_lists": ("pricebook_items",),
}
TABLES = ("products", "customers", "vendors", "invoices", "sales_orders", "payments", "bills", "credit_notes",
          "stock_adjustments", "price_lists", "users", "branches")


def upgrade() -> None:
    schema = context.config.attributes["entity_schema"]
    for table in TABLES:
        t = f'"{schema}"."{table}"'
        # 0001 creates the tables from the current metadata: on a new database these are there already.
        op.execute(f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS detail_state text NOT NULL DEFAULT 'current'")
        op.execute(f"ALTER TABLE {t} ADD COLUMN IF NOT EXISTS detail_fetched_for timestamptz")
        op.execute(f"ALTER TABLE {t} DROP CONSTRAINT IF EXISTS ck_{table}_detail_state")
        op.execute(f"ALTER TABLE {t} ADD CONSTRAINT ck_{table}_detail_state "
                   "CHECK (detail_state IN ('current', 'stale', 'missing'))")
        fields = DETAIL_FIELDS.get(table)
        if fields:
            has_any = " OR ".join(f"raw ? '{f}'" for f in fields)
            op.execute(f"UPDATE {t} SET detail_state = 'missing' WHERE NOT ({has_any})")
        op.execute(f"CREATE INDEX IF NOT EXISTS ix_{table}_detail_wanted ON {t} (version_at DESC) "
                   "WHERE detail_state <> 'current' AND deleted_at IS NULL")


def downgrade() -> None:
    schema = context.config.attributes["entity_schema"]
    for table in TABLES:
        t = f'"{schema}"."{table}"'
        op.execute(f'DROP INDEX IF EXISTS "{schema}".ix_{table}_detail_wanted')
        op.execute(f"ALTER TABLE {t} DROP COLUMN IF EXISTS detail_fetched_for")
        op.execute(f"ALTER TABLE {t} DROP COLUMN IF EXISTS detail_state")
