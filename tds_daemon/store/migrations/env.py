"""Alembic environment: runs on the connection handed over by tds_daemon.store.migrate."""

from alembic import context

from tds_daemon.store.revisions import VERSION_TABLE
from tds_daemon.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
