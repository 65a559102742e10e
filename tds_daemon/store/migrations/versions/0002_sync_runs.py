"""Sync runs and cursors.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from tds_daemon.store import schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    for table in (schema.sync_runs, schema.sync_cursors):
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in (schema.sync_cursors, schema.sync_runs):
        table.drop(bind)
