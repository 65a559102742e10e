"""Sync runs of chosen items (a stock refresh of some items): ``item_ids`` and ``item_results`` on
``tds_sync_runs``, NULL for a run of a whole entity.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0002 creates tds_sync_runs from the current metadata, which has these columns: on a new database they
    # are there already, on one migrated before this revision they are added.
    op.execute("ALTER TABLE tds_sync_runs ADD COLUMN IF NOT EXISTS item_ids text[]")
    op.execute("ALTER TABLE tds_sync_runs ADD COLUMN IF NOT EXISTS item_results jsonb")


def downgrade() -> None:
    op.drop_column("tds_sync_runs", "item_results")
    op.drop_column("tds_sync_runs", "item_ids")
