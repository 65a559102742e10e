"""The story of one object: deliveries found by object, duplicate deliveries recorded, and the pull that
last wrote each entity row.

- ``tds_inbox_events (zoho_id)``: an index, to find an object's deliveries;
- ``tds_inbox_duplicates``: one row per delivery refused as a duplicate of a stored event;
- ``last_pull_run_id`` on every entity table: the latest sync run that wrote the row.

Written out as they stand at this revision.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import TIMESTAMP

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("products", "customers", "vendors", "invoices", "sales_orders", "payments", "bills", "credit_notes",
          "stock_adjustments", "price_lists", "users", "branches", "sales_returns")


def upgrade() -> None:
    schema = context.config.attributes["entity_schema"]
    # 0001 creates the inbox and the entity tables from the current metadata: on a new database the index
    # and the column are there already.
    op.execute("CREATE INDEX IF NOT EXISTS ix_tds_inbox_events_zoho_id ON tds_inbox_events (zoho_id)")
    if not sa.inspect(op.get_bind()).has_table("tds_inbox_duplicates"):
        op.create_table(
            "tds_inbox_duplicates",
            sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
            sa.Column("event_id", sa.BigInteger, nullable=False),
            sa.Column("event_type", sa.Text, nullable=False),
            sa.Column("received_at", TIMESTAMP(timezone=True), nullable=False, server_default=sa.func.now()),
            sa.PrimaryKeyConstraint("id", name="pk_tds_inbox_duplicates"),
            sa.ForeignKeyConstraint(["event_id"], ["tds_inbox_events.id"], ondelete="CASCADE",
                                    name="fk_tds_inbox_duplicates_event_id_tds_inbox_events"),
        )
        op.create_index("ix_tds_inbox_duplicates_event_id", "tds_inbox_duplicates", ["event_id"])
    for table in TABLES:
        op.execute(f'ALTER TABLE "{schema}"."{table}" ADD COLUMN IF NOT EXISTS last_pull_run_id bigint')


def downgrade() -> None:
    schema = context.config.attributes["entity_schema"]
    for table in TABLES:
        op.execute(f'ALTER TABLE "{schema}"."{table}" DROP COLUMN IF EXISTS last_pull_run_id')
    op.drop_table("tds_inbox_duplicates")
    op.execute("DROP INDEX IF EXISTS ix_tds_inbox_events_zoho_id")
