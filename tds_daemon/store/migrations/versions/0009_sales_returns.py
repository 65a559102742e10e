"""Sales returns, the thirteenth entity: ``<entity schema>.sales_returns``, written out as it stands at
this revision (a later change to its columns gets a migration of its own).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TZ = TIMESTAMP(timezone=True)
NUMERIC = sa.Numeric(20, 6)


def upgrade() -> None:
    schema = context.config.attributes["entity_schema"]
    bind = op.get_bind()
    if sa.inspect(bind).has_table("sales_returns", schema=schema):
        return  # already there (made by hand from the metadata): nothing to do
    op.create_table(
        "sales_returns",
        sa.Column("zoho_id", sa.Text, nullable=False),
        sa.Column("zoho_last_modified", TZ),
        sa.Column("version_at", TZ, nullable=False),
        sa.Column("raw", JSONB, nullable=False),
        sa.Column("synced_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", TZ),
        sa.Column("detail_state", sa.Text, nullable=False, server_default="current"),
        sa.Column("detail_fetched_for", TZ),
        sa.Column("salesreturn_number", sa.Text),
        sa.Column("salesorder_id", sa.Text),
        sa.Column("salesorder_number", sa.Text),
        sa.Column("customer_id", sa.Text),
        sa.Column("customer_name", sa.Text),
        sa.Column("date", sa.Date),
        sa.Column("status", sa.Text),
        sa.Column("receive_status", sa.Text),
        sa.Column("refund_status", sa.Text),
        sa.Column("total", NUMERIC),
        sa.Column("currency_code", sa.Text),
        sa.CheckConstraint("detail_state IN ('current', 'stale', 'missing')", name="ck_sales_returns_detail_state"),
        sa.PrimaryKeyConstraint("zoho_id", name="pk_sales_returns"),
        schema=schema,
    )
    op.create_index("ix_sales_returns_zoho_last_modified", "sales_returns", ["zoho_last_modified"], schema=schema)
    op.execute(f'CREATE INDEX ix_sales_returns_detail_wanted ON "{schema}".sales_returns (version_at DESC) '
               "WHERE detail_state <> 'current' AND deleted_at IS NULL")


def downgrade() -> None:
    op.drop_table("sales_returns", schema=context.config.attributes["entity_schema"])
