"""Healer and stats runs.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from tds_daemon.store import schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    for table in (schema.healer_runs, schema.stats_runs):
        table.create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    for table in (schema.stats_runs, schema.healer_runs):
        table.drop(bind)
