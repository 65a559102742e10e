"""A heartbeat on sync runs, so that a run whose worker died does not stay 'running' for ever.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0002 creates tds_sync_runs from the current metadata, which has this column: on a new database
    # it is already there, on one migrated before this revision it is added.
    op.execute("ALTER TABLE tds_sync_runs ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz")


def downgrade() -> None:
    op.drop_column("tds_sync_runs", "heartbeat_at")
