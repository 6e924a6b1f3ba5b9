"""Connections to one database: reads, and write transactions that are safe across processes.

Dialect differences in connecting and locking live here:

    SQLite       aiosqlite; WAL so readers never wait for the writer; busy_timeout so a writer
                 waits for another process's write lock instead of failing. Every write
                 transaction starts with BEGIN IMMEDIATE, taking the database's one write lock
                 up front, so read-then-write is atomic across tasks and processes; this
                 process's writers queue on an asyncio lock first rather than poll for it.
                 ":memory:" is one connection that tasks take turns on (another connection
                 would open another, empty database).
    PostgreSQL   asyncpg with the DATABASE_URL as given (so its query parameters keep working);
                 plain READ COMMITTED transactions, with row locks where a statement needs them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from bot.store.urls import Database, PostgresDatabase, SqliteDatabase

SQLITE_BUSY_TIMEOUT_MS = 10_000
MS_PER_S = 1000
WAL_SWITCH_RETRY_S = 0.02
POSTGRES_POOL_SIZE = 5
POSTGRES_POOL_MAX_OVERFLOW = 5
POSTGRES_COMMAND_TIMEOUT_S = 30.0
POOL_TIMEOUT_S = 30.0  # how long a task waits for a free connection before failing

# An execution option on the engine write transactions come from; SQLite's BEGIN reads it.
_WRITE_OPTION = "matrec_write"


class Connections:
    """A pool of connections to one database; `read()` and `write()` each lend one."""

    def __init__(self, engine: AsyncEngine, write_gate: AbstractAsyncContextManager[Any]) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})
        self._write_gate = write_gate

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for queries that only read."""
        return self._engine.connect()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that may write: committed on exit, rolled back on an exception."""
        async with self._write_gate, self._writer.begin() as connection:
            yield connection

    async def close(self) -> None:
        """Close every connection."""
        await self._engine.dispose()


def connect(database: Database) -> Connections:
    """Connections to `database`; nothing connects until the first read() or write()."""
    if isinstance(database, SqliteDatabase):
        return Connections(_sqlite_engine(database), asyncio.Lock())
    return Connections(_postgres_engine(database), nullcontext())


def _sqlite_engine(database: SqliteDatabase) -> AsyncEngine:
    if database.in_memory:
        pool: dict[str, Any] = {"poolclass": AsyncAdaptedQueuePool, "pool_size": 1, "max_overflow": 0}
    else:
        Path(database.path).parent.mkdir(parents=True, exist_ok=True)
        pool = {}
    url = sa.URL.create("sqlite+aiosqlite", database=database.path)
    engine = create_async_engine(url, pool_timeout=POOL_TIMEOUT_S, **pool)
    event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own implicit BEGIN is off: _on_sqlite_begin says which BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode = WAL`, which a file still in rollback mode (new, or made by an older
    store) takes only with an exclusive lock, and SQLite answers "database is locked" at once, without
    its busy handler, while another connection holds one: so that busy wait is done here, for up to
    the busy timeout, as the busy handler would (a file already in WAL mode passes at once)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / MS_PER_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except Exception as error:  # the driver's OperationalError, wrapped by the async adapter
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(WAL_SWITCH_RETRY_S)  # runs in the pool's connect hook, not a coroutine


def _on_sqlite_begin(connection: sa.Connection) -> None:
    write = connection.get_execution_options().get(_WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _postgres_engine(database: PostgresDatabase) -> AsyncEngine:
    async def connect() -> Any:
        return await asyncpg.connect(database.dsn, command_timeout=POSTGRES_COMMAND_TIMEOUT_S)

    return create_async_engine(
        "postgresql+asyncpg://",
        async_creator=connect,
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_POOL_MAX_OVERFLOW,
        pool_timeout=POOL_TIMEOUT_S,
    )
