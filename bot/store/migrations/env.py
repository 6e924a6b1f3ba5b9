"""Alembic's entry point: run the revisions on the connection bot.store.migrate passes in.

There is no alembic.ini and no engine here: Store.open() holds the migration lock on that
connection, inside one transaction, and commits when the upgrade is done.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("the store's migrations run inside Store.open(), which passes them a connection")

context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
