"""The events outbox: ``tds_events``, and the push state of subscribers (``tds_event_subscribers``,
``tds_event_dead_letters``). Written out as they stand at this revision.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TZ = TIMESTAMP(timezone=True)


def upgrade() -> None:
    # 0001 creates every table of the current metadata on a new database: these may be there already.
    have = sa.inspect(op.get_bind()).has_table
    if not have("tds_events"):
        op.create_table(
            "tds_events",
            sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
            sa.Column("type", sa.Text, nullable=False),
            sa.Column("entity", sa.Text),
            sa.Column("zoho_id", sa.Text),
            sa.Column("payload", JSONB, nullable=False),
            sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
            sa.PrimaryKeyConstraint("id", name="pk_tds_events"),
        )
        op.create_index("ix_tds_events_created_at", "tds_events", ["created_at"])
    if not have("tds_event_subscribers"):
        op.create_table(
            "tds_event_subscribers",
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("cursor", sa.BigInteger, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
            sa.Column("failing_since", TZ),
            sa.Column("next_attempt_at", TZ),
            sa.Column("last_error", sa.Text),
            sa.Column("delivered_at", TZ),
            sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
            sa.PrimaryKeyConstraint("url", name="pk_tds_event_subscribers"),
        )
    if not have("tds_event_dead_letters"):
        op.create_table(
            "tds_event_dead_letters",
            sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
            sa.Column("url", sa.Text, nullable=False),
            sa.Column("event_id", sa.BigInteger, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("first_failed_at", TZ, nullable=False),
            sa.Column("failed_at", TZ, nullable=False, server_default=sa.func.now()),
            sa.Column("last_error", sa.Text, nullable=False),
            sa.Column("replay_requested_at", TZ),
            sa.PrimaryKeyConstraint("id", name="pk_tds_event_dead_letters"),
        )
        op.create_index("ix_tds_event_dead_letters_url_event_id", "tds_event_dead_letters", ["url", "event_id"],
                        unique=True)


def downgrade() -> None:
    op.drop_table("tds_event_dead_letters")
    op.drop_table("tds_event_subscribers")
    op.drop_table("tds_events")
