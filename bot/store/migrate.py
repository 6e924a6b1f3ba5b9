"""Bring a database's schema to this code's head revision, once, however many instances start.

Store.open() runs `migrate` in one transaction that first takes the migration lock:

    PostgreSQL   pg_advisory_xact_lock(POSTGRES_MIGRATION_LOCK_KEY), released at commit
    SQLite       the database's write lock, taken by BEGIN IMMEDIATE (see bot.store.engine)

so concurrent openers wait, then find the schema current and do nothing. Inside the lock:

    1. A database made by the first store (a `schema_version` table, no `alembic_version`) is
       adopted: its version 1 is revision 0001, so it is stamped 0001. Its tables stay as they
       are, as does `schema_version`, so a rolled-back bot still opens it.
    2. A revision this code does not know means a newer bot migrated the database:
       SchemaTooNewError, before anything changes.
    3. alembic upgrade head.
    4. Consultations without a search document (rows from before revision 0003, or from before a
       downgrade and upgrade) get one: the index is derived data the store writes itself.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.store import search
from bot.store.engine import Connections
from bot.store.errors import SchemaTooNewError

logger = logging.getLogger(__name__)

MIGRATIONS_LOCATION = "bot.store:migrations"
POSTGRES_MIGRATION_LOCK_KEY = 0x6D617472656301  # "matrec" + 01; the first store used it too
LEGACY_VERSION_TABLE = "schema_version"
LEGACY_VERSION = 1  # the only schema_version the first store shipped
LEGACY_REVISION = "0001"  # ...which is this revision
_UPGRADE_HINT = "upgrade the bot or point DATABASE_URL at another database"


async def migrate(connections: Connections) -> None:
    """Adopt a first-store database if it is one, refuse a newer schema, upgrade to head, index."""
    async with connections.write() as connection:
        await connection.run_sync(_migrate)
        filled = await search.fill_missing(connection)
    if filled:
        logger.info("search index: wrote the documents of %d earlier consultations", filled)


def _migrate(connection: sa.Connection) -> None:
    _take_migration_lock(connection)
    config = _alembic_config(connection)
    script = ScriptDirectory.from_config(config)
    current = set(MigrationContext.configure(connection).get_current_heads())
    if not current and _legacy_version(connection) == LEGACY_VERSION:
        command.stamp(config, LEGACY_REVISION)
    unknown = current - {revision.revision for revision in script.walk_revisions()}
    if unknown:
        raise SchemaTooNewError(
            f"the database schema is at revision {', '.join(sorted(unknown))}, newer than this bot's "
            f"{script.get_current_head()}: {_UPGRADE_HINT}"
        )
    command.upgrade(config, "head")


def _take_migration_lock(connection: sa.Connection) -> None:
    # SQLite's lock is already held: the transaction began with BEGIN IMMEDIATE.
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(POSTGRES_MIGRATION_LOCK_KEY)))


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_LOCATION)
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def _legacy_version(connection: sa.Connection) -> int:
    """The first store's schema_version (0 if it never ran); SchemaTooNewError past version 1."""
    if not sa.inspect(connection).has_table(LEGACY_VERSION_TABLE):
        return 0
    version = connection.scalar(sa.text(f"SELECT COALESCE(MAX(version), 0) FROM {LEGACY_VERSION_TABLE}"))  # noqa: S608
    if not isinstance(version, int) or version > LEGACY_VERSION:
        raise SchemaTooNewError(
            f"the database schema is version {version}, newer than this bot's {LEGACY_VERSION} "
            f"(revision {LEGACY_REVISION}): {_UPGRADE_HINT}"
        )
    return version
