"""Column types that read and write the same Python values on SQLite and PostgreSQL.

The two databases store times and JSON differently; these types are the one place that knows:

    UtcTimestamp   SQLite: fixed-width ISO-8601 text ("2026-11-27T10:00:00.000000+00:00"), which
                   sorts and compares in time order; PostgreSQL: timestamptz
    PydanticJson   SQLite: JSON text; PostgreSQL: jsonb; either way validated by a pydantic adapter
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from bot.store.model import StoredFile
from matrec.results import BranchResult, Recommendation

POSTGRESQL = "postgresql"


class UtcTimestamp(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime: ISO text in SQLite, timestamptz in PostgreSQL."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == POSTGRESQL:
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be stored: {value!r}")
        utc = value.astimezone(UTC)
        return utc if dialect.name == POSTGRESQL else utc.isoformat(timespec="microseconds")

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(parsed, datetime):
            raise TypeError(f"a timestamp column held {value!r}")
        return parsed.astimezone(UTC)


class PydanticJson(sa.types.TypeDecorator[Any]):
    """JSON validated by `adapter`: JSON text in SQLite, jsonb in PostgreSQL; None is SQL NULL."""

    impl = sa.JSON
    cache_ok = True
    adapter: ClassVar[TypeAdapter[Any]]

    def __init__(self) -> None:
        super().__init__(none_as_null=True)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == POSTGRESQL:
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.adapter.dump_python(value, mode="json")

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.adapter.validate_python(value)


class BranchesJson(PydanticJson):
    """A consultation's branch results."""

    cache_ok = True
    adapter = TypeAdapter(list[BranchResult])


class RecommendationJson(PydanticJson):
    """A consultation's recommendation."""

    cache_ok = True
    adapter = TypeAdapter(Recommendation)


class StringsJson(PydanticJson):
    """A list of short texts: a re-run's added requirements, a turn's proposed changes."""

    cache_ok = True
    adapter = TypeAdapter(list[str])


class FilesJson(PydanticJson):
    """A consultation's Slack files."""

    cache_ok = True
    adapter = TypeAdapter(list[StoredFile])
