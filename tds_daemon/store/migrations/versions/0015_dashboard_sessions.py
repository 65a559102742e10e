"""The dashboard's login sessions kept on the server (``tds_dashboard_sessions``), so that logging out ends
a session for good. Written out as it stands at this revision.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TZ = TIMESTAMP(timezone=True)


def upgrade() -> None:
    # 0001 creates every table of the current metadata on a new database: it may be there already.
    if sa.inspect(op.get_bind()).has_table("tds_dashboard_sessions"):
        return
    op.create_table(
        "tds_dashboard_sessions",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("ended_at", TZ),
        sa.Column("client", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_tds_dashboard_sessions"),
    )


def downgrade() -> None:
    op.drop_table("tds_dashboard_sessions")
