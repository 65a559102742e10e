"""The day's Zoho calls (``tds_zoho_calls``) and Zoho's daily-quota refusals (``tds_zoho_quota_stops``),
kept in PostgreSQL so that a Redis restart or flush cannot give the daemon a second day's budget.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TZ = TIMESTAMP(timezone=True)


def upgrade() -> None:
    have = sa.inspect(op.get_bind()).has_table
    if not have("tds_zoho_calls"):
        op.create_table(
            "tds_zoho_calls",
            sa.Column("day", sa.Date, nullable=False),
            sa.Column("purpose", sa.Text, nullable=False),
            sa.Column("calls", sa.BigInteger, nullable=False),
            sa.PrimaryKeyConstraint("day", "purpose", name="pk_tds_zoho_calls"),
        )
    if not have("tds_zoho_quota_stops"):
        op.create_table(
            "tds_zoho_quota_stops",
            sa.Column("until", TZ, nullable=False),
            sa.Column("recorded_at", TZ, nullable=False, server_default=sa.func.now()),
            sa.PrimaryKeyConstraint("until", name="pk_tds_zoho_quota_stops"),
        )


def downgrade() -> None:
    op.drop_table("tds_zoho_quota_stops")
    op.drop_table("tds_zoho_calls")
