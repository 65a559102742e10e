"""Drop the index of sync items by (entity_type, zoho_id): no query of TDS uses it, and every claim and
completion of an item wrote an entry into it, on the path of every webhook (docs/PERFORMANCE.md).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # 0001 creates tds_sync_queue from the current metadata, which no longer has it: IF EXISTS.
    op.execute("DROP INDEX IF EXISTS ix_tds_sync_queue_entity_type_zoho_id")


def downgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS ix_tds_sync_queue_entity_type_zoho_id "
               "ON tds_sync_queue (entity_type, zoho_id)")
