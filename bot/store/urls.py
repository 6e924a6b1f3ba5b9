"""DATABASE_URL: the forms the store accepts, what each names, and how to log one safely."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.errors import DatabaseUrlError
from matrec.urls import redact_url

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")
SQLITE_MEMORY = ":memory:"
ACCEPTED_URL_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory: "
    "or postgresql://user:password@host:port/database"
)


@dataclass(frozen=True)
class SqliteDatabase:
    """An SQLite file (relative to the working directory unless absolute) or ":memory:"."""

    path: str

    @property
    def in_memory(self) -> bool:
        """Whether the database lives only as long as its one connection."""
        return self.path == SQLITE_MEMORY


@dataclass(frozen=True)
class PostgresDatabase:
    """A PostgreSQL database; `dsn` is the URL as given, handed to asyncpg unchanged."""

    dsn: str


Database = SqliteDatabase | PostgresDatabase


def parse_database_url(url: str) -> Database:
    """The database `url` names; DatabaseUrlError (password masked) if it is no accepted form."""
    if url.startswith(SQLITE_PREFIX) and len(url) > len(SQLITE_PREFIX):
        return SqliteDatabase(url[len(SQLITE_PREFIX) :])
    if url.startswith(POSTGRES_PREFIXES):
        return PostgresDatabase(url)
    raise DatabaseUrlError(f"DATABASE_URL {redact_url(url)!r} is not supported; use {ACCEPTED_URL_FORMS}")
