"""An index on completed items by completion time, for retention and the 24 h success rate.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0001 creates tds_sync_queue from the current metadata, which has this index: IF NOT EXISTS.
    op.execute("CREATE INDEX IF NOT EXISTS ix_tds_sync_queue_completed ON tds_sync_queue (completed_at) "
               "WHERE status = 'completed'")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_tds_sync_queue_completed")
