"""Alerts.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from tds_daemon.store import schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.alerts.create(op.get_bind())


def downgrade() -> None:
    schema.alerts.drop(op.get_bind())
