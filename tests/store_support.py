"""The store's test fixtures: a fresh database of each backend, a fake clock, sample consultations.

Test modules import the fixtures (`*_fixture`, registered under the name after `name=`) on one line:
pytest finds them in the module's namespace.
PostgreSQL runs when MATREC_TEST_POSTGRES_URL is set (scripts/postgres.sh prints one); each test
gets its own schema. Without it the PostgreSQL cases are skipped, and fail in CI.
"""

from __future__ import annotations

import itertools
import os
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.store import Consultation, Store
from bot.store.migrate import MIGRATIONS_LOCATION
from matrec.choices import Mode, Strategy
from matrec.materials import MaterialClass
from matrec.results import ImageInfo, Recommendation, Timing, TokenUsage, UsageReport
from matrec.schema import ScreenedOut
from tests.factories import failed, ok

M = MaterialClass
POSTGRES_URL_ENV = "MATREC_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", "postgres")
START = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)

Opener = Callable[[], Awaitable[Store]]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def recommendation() -> Recommendation:
    """A complete recommendation: metal over polymer, ceramic screened out, wood failed."""
    branches = [ok(M.METAL, 8), ok(M.POLYMER, 7), ok(M.CERAMIC, 3, hard_screen="brittle"), failed(M.WOOD)]
    usage = TokenUsage(input_tokens=1200, output_tokens=340, cache_read_tokens=900)
    return Recommendation(
        part="bracket",
        best=M.METAL,
        runner_up=M.POLYMER,
        rationale="Metal carries the load; polymer creeps.",
        confidence="medium",
        scores={M.METAL: 8.0, M.POLYMER: 7.0, M.CERAMIC: 3.0, M.WOOD: None},
        screened_out=[ScreenedOut(material=M.CERAMIC, reason="brittle under impact")],
        questions=["What load?"],
        strategy=Strategy.WEIGHTED,
        mode=Mode.PARALLEL,
        branches=branches,
        missing=[M.WOOD],
        notes=["wood failed"],
        usage=UsageReport(branches=usage, aggregation=TokenUsage(), total=usage, cost_usd=0.0123, calls=4),
        timing=Timing(wall_s=12.5, slowest_branch_s=9.0, aggregation_s=2.0, prepare_s=0.4),
        image=ImageInfo(
            media_type="image/jpeg",
            width=1024,
            height=768,
            original_width=4032,
            original_height=3024,
            encoded_bytes=180_000,
            sha256="ab" * 32,
        ),
        context="outdoor, 5 kg",
    )


def consultation(clock: FakeClock, *, channel: str = "C1", ts: str = "100.1", **fields: Any) -> Consultation:
    """A RECEIVED consultation for the upload at (channel, ts), created now."""
    values: dict[str, Any] = {
        "channel": channel,
        "thread_ts": ts,
        "message_ts": ts,
        "user_id": "U1",
        "file_id": "F1",
        "file_name": "part.jpg",
        "context": "outdoor, 5 kg",
        "created_at": clock(),
        "updated_at": clock(),
    }
    return Consultation(**(values | fields))


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite test URL, None for PostgreSQL."""
    prefix = "sqlite:///"
    return Path(url[len(prefix) :]) if url.startswith(prefix) else None


async def execute_raw(url: str, statements: Sequence[str], rows: Sequence[tuple[str, Sequence[Any]]] = ()) -> None:
    """Run `statements`, then each (SQL, parameters) of `rows`, through the bare driver, in one transaction.

    Placeholders are `?`; for PostgreSQL they become $1, $2, ... as asyncpg takes them.
    """
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as db, db:
            for statement in statements:
                db.execute(statement)
            for sql, parameters in rows:
                db.execute(sql, tuple(parameters))
        return
    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            for statement in statements:
                await connection.execute(statement)
            for sql, parameters in rows:
                await connection.execute(_numbered(sql), *parameters)
    finally:
        await connection.close()


def _numbered(sql: str) -> str:
    numbers = itertools.count(1)
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


async def fetch_raw(url: str, query: str) -> list[tuple[Any, ...]]:
    """The rows `query` returns, through the bare driver."""
    path = sqlite_file(url)
    if path is not None:
        with closing(sqlite3.connect(path)) as db:
            return [tuple(row) for row in db.execute(query)]
    connection = await asyncpg.connect(url)
    try:
        return [tuple(record) for record in await connection.fetch(query)]
    finally:
        await connection.close()


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def backend_of(url: str) -> str:
    """ "sqlite" or "postgres": the backend a test URL names."""
    return "sqlite" if sqlite_file(url) is not None else "postgres"


@asynccontextmanager
async def fresh_database(backend: str, directory: Path) -> AsyncIterator[str]:
    """The URL of a new, empty database: an SQLite file in `directory`, or a PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'matrec.db'}"
        return
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        message = f"{POSTGRES_URL_ENV} is not set: start PostgreSQL with scripts/postgres.sh and export its URL"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    schema = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        # asyncpg sends unknown URL parameters as server settings: every test gets its own schema.
        yield f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture(name="url", params=BACKENDS)
async def url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each backend."""
    async with fresh_database(request.param, tmp_path / "db") as url:
        yield url


@pytest.fixture(name="clock")
def clock_fixture() -> FakeClock:
    """A fake clock at START."""
    return FakeClock()


@pytest.fixture(name="store")
async def store_fixture(url: str, clock: FakeClock) -> AsyncIterator[Store]:
    """A store on a fresh database, on the fake clock."""
    async with await Store.open(url, clock=clock) as opened:
        yield opened


@pytest.fixture(name="opener")
def opener_fixture(url: str, clock: FakeClock) -> Opener:
    """Opens another Store on the same database: another replica, or the bot after a restart."""

    async def open_again() -> Store:
        return await Store.open(url, clock=clock)

    return open_again


def inspection_engine(url: str) -> AsyncEngine:
    """An engine on a test database with no store in between, for reflection and raw Alembic runs."""
    path = sqlite_file(url)
    if path is not None:
        return create_async_engine(sa.URL.create("sqlite+aiosqlite", database=str(path)))

    async def connect() -> Any:
        return await asyncpg.connect(url)

    return create_async_engine("postgresql+asyncpg://", async_creator=connect)


async def describe_schema(url: str) -> dict[str, Any]:
    """Every table but the first store's schema_version, as reflection sees it."""
    engine = inspection_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_describe)
    finally:
        await engine.dispose()


def _describe(connection: sa.Connection) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    described: dict[str, Any] = {}
    for table in sorted(set(inspector.get_table_names()) - {"schema_version"}):
        columns = [
            (c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("identity"))
            for c in inspector.get_columns(table)
        ]
        indexes = sorted(
            (
                i["name"],
                tuple(i["column_names"]),
                i["unique"],
                {k: str(v) for k, v in i.get("dialect_options", {}).items()},
            )
            for i in inspector.get_indexes(table)
        )
        unique = sorted(tuple(u["column_names"]) for u in inspector.get_unique_constraints(table))
        described[table] = (columns, inspector.get_pk_constraint(table)["constrained_columns"], unique, indexes)
    return described


async def run_alembic(url: str, action: str, revision: str) -> None:
    """`alembic upgrade|downgrade revision` on a test database, as Store.open() would run it but to any revision."""

    def run(connection: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", MIGRATIONS_LOCATION)
        config.set_main_option("path_separator", "os")
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = inspection_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()
