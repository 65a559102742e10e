"""Inbox, sync queue and the twelve entity tables.

The entity tables are created from the registry as it stands at this revision. A later change to
an entity's typed columns gets its own migration with the columns written out (ADD COLUMN), and the
schema test (metadata vs. migrated database) fails until it exists.

Revision ID: 0001
Revises:
"""

from alembic import context, op

from tds_daemon import entities
from tds_daemon.store import schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

INITIAL_ENTITIES = ("product", "customer", "vendor", "invoice", "sales_order", "payment", "bill",
                    "credit_note", "stock_adjustment", "price_list", "user", "branch")


def _entity_schema() -> str:
    return context.config.attributes["entity_schema"]


def upgrade() -> None:
    bind = op.get_bind()
    schema.inbox_events.create(bind)
    schema.sync_queue.create(bind)
    for ix in (*schema.inbox_events.indexes, *schema.sync_queue.indexes):
        ix.create(bind, checkfirst=True)
    entity_schema = _entity_schema()
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{entity_schema}"')
    md = schema.entity_metadata(entity_schema)
    for name in INITIAL_ENTITIES:
        md.tables[f"{entity_schema}.{entities.BY_NAME[name].table}"].create(bind)


def downgrade() -> None:
    bind = op.get_bind()
    md = schema.entity_metadata(_entity_schema())
    for name in INITIAL_ENTITIES:
        md.tables[f"{_entity_schema()}.{entities.BY_NAME[name].table}"].drop(bind)
    schema.sync_queue.drop(bind)
    schema.inbox_events.drop(bind)
