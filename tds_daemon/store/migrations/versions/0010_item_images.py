"""Item images: ``<entity schema>.item_images``, one row per item that has (or had) an image.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import TIMESTAMP

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TZ = TIMESTAMP(timezone=True)


def upgrade() -> None:
    schema = context.config.attributes["entity_schema"]
    if sa.inspect(op.get_bind()).has_table("item_images", schema=schema):
        return  # already there: nothing to do
    op.create_table(
        "item_images",
        sa.Column("zoho_id", sa.Text, nullable=False),
        sa.Column("image_document_id", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text),
        sa.Column("content_type", sa.Text),
        sa.Column("bytes", sa.Integer),
        sa.Column("path", sa.Text),
        sa.Column("synced_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", TZ),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("zoho_id", name="pk_item_images"),
        schema=schema,
    )
    op.create_index("ix_item_images_sha256", "item_images", ["sha256"], schema=schema)


def downgrade() -> None:
    op.drop_table("item_images", schema=context.config.attributes["entity_schema"])
