"""Consultations and dedupe keys, kept in SQLite or PostgreSQL so restarts and replicas share them.

    Store.open(url)      "sqlite:///relative.db", "sqlite:////abs/path.db", "sqlite:///:memory:"
                         -> SqliteStore (bot/store_sqlite.py); "postgresql://user:pw@host:port/db"
                         -> PostgresStore (bot/store_postgres.py)

Errors:

    ConfigError (matrec.errors)
    └── DatabaseUrlError  DATABASE_URL is not a form we accept (also a ValueError); shown to
                          whoever starts the bot, with the password masked
    KeyError              update() of an unknown consultation id (a bug in the caller)
    ValueError            add() of an id that is already stored (a bug in the caller)
    TypeError             update() of a field that is unknown or not updatable (a bug in the caller)

Dedupe: `claim_message` records the Slack event_id and the (channel, message ts) of an upload when
its event arrives, so the app_mention + message pair and Slack's retries start one consultation.
A message whose every consultation was interrupted by a restart can be claimed once more, because
after a restart Slack's retry may be the only delivery left.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Annotated, Any, Protocol, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from matrec.errors import ConfigError
from matrec.results import BranchResult, Recommendation

logger = logging.getLogger(__name__)

INTERRUPTED_ERROR = "interrupted by a restart"
ACCEPTED_URL_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:///:memory: "
    "or postgresql://user:password@host:port/database"
)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


class DatabaseUrlError(ConfigError, ValueError):
    """DATABASE_URL is not a form the store accepts; shown to whoever starts the bot."""


class ConsultationStatus(StrEnum):
    """Where a consultation is in its life."""

    RECEIVED = "received"  # claimed and recorded, work not started
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the engine gave no recommendation (quorum, timeout, bad image…)
    REJECTED = "rejected"  # not analysed at all (not an image, too many images…)
    INTERRUPTED = "interrupted"  # the process stopped while it was RECEIVED or RUNNING


ACTIVE_STATUSES = (ConsultationStatus.RECEIVED, ConsultationStatus.RUNNING)


class Consultation(BaseModel):
    """One uploaded image's consultation, as stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    channel: str
    thread_ts: str
    message_ts: str
    user_id: str | None = None
    file_id: str | None = None
    file_name: str | None = None
    image_sha256: str | None = None
    context: str = ""
    status: ConsultationStatus = ConsultationStatus.RECEIVED
    board_ts: str | None = None
    branches: list[BranchResult] = Field(default_factory=list)
    recommendation: Recommendation | None = None
    usage_cost_usd: float | None = None
    error: str | None = None
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)


UPDATABLE_FIELDS = frozenset(Consultation.model_fields) - {
    "id",
    "channel",
    "thread_ts",
    "message_ts",
    "created_at",
    "updated_at",
}
COLUMNS = tuple(Consultation.model_fields)
_BRANCHES = TypeAdapter(list[BranchResult])


def apply_changes(current: Consultation, changes: Mapping[str, Any], now: datetime) -> Consultation:
    """`current` with `changes` validated and applied and `updated_at` set to `now`."""
    bad = sorted(set(changes) - UPDATABLE_FIELDS)
    if bad:
        raise TypeError(f"cannot update {', '.join(bad)}; updatable: {', '.join(sorted(UPDATABLE_FIELDS))}")
    return Consultation.model_validate({**dict(current), **changes, "updated_at": now})


def to_row(consultation: Consultation) -> dict[str, Any]:
    """Column values for `consultation`; JSON columns hold pydantic JSON text."""
    row = dict(consultation)
    row["branches"] = _BRANCHES.dump_json(consultation.branches).decode()
    row["recommendation"] = consultation.recommendation.model_dump_json() if consultation.recommendation else None
    row["status"] = consultation.status.value
    return row


class Row(Protocol):
    """A database row that can be read by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...


def from_row(row: Row) -> Consultation:
    """The consultation a row holds (datetimes as ISO text or datetime, JSON columns as text)."""
    values = {name: row[name] for name in COLUMNS}
    values["branches"] = _BRANCHES.validate_json(row["branches"])
    recommendation = row["recommendation"]
    values["recommendation"] = Recommendation.model_validate_json(recommendation) if recommendation else None
    return Consultation.model_validate(values)


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, safe to log."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = rest.rfind("@")
    colon = rest.find(":")
    if at == -1 or colon == -1 or colon > at:
        return url
    return f"{scheme}://{rest[:colon]}:***{rest[at:]}"


def sqlite_path(url: str) -> str | None:
    """The file path (or ":memory:") of a sqlite URL, None if `url` is not one."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        return None
    return url[len(prefix) :]


def is_postgres_url(url: str) -> bool:
    """Whether `url` names a PostgreSQL database."""
    return url.startswith(("postgresql://", "postgres://"))


class Store(ABC):
    """Consultation history and dedupe keys; `Store.open(url)` picks the backend."""

    @staticmethod
    async def open(url: str, *, clock: Clock = utc_now) -> Store:
        """Connect to `url`, create or migrate the schema, and return the store."""
        path = sqlite_path(url)
        store: Store
        if path is not None:
            from bot.store_sqlite import SqliteStore

            store = await SqliteStore.connect(path, clock=clock)
        elif is_postgres_url(url):
            from bot.store_postgres import PostgresStore

            store = await PostgresStore.connect(url, clock=clock)
        else:
            raise DatabaseUrlError(f"DATABASE_URL {redact_url(url)!r} is not supported; use {ACCEPTED_URL_FORMS}")
        logger.info("store opened: %s", redact_url(url))
        return store

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @abstractmethod
    async def close(self) -> None:
        """Release the connection(s)."""

    @abstractmethod
    async def claim_message(self, *, event_id: str | None, channel: str, ts: str) -> bool:
        """True exactly once per message (and again once after a restart interrupted all its work)."""

    @abstractmethod
    async def add(self, consultation: Consultation) -> None:
        """Store a new consultation."""

    @abstractmethod
    async def update(self, consultation_id: str, **changes: Any) -> Consultation:
        """Apply `changes`, bump updated_at and return the stored consultation."""

    @abstractmethod
    async def get(self, consultation_id: str) -> Consultation | None:
        """The consultation with this id, if any."""

    @abstractmethod
    async def for_message(self, channel: str, ts: str) -> list[Consultation]:
        """Consultations started by one message, oldest first."""

    @abstractmethod
    async def for_thread(self, channel: str, thread_ts: str) -> list[Consultation]:
        """Consultations in one thread, oldest first."""

    @abstractmethod
    async def recent(self, *, channel: str | None = None, limit: int = 20) -> list[Consultation]:
        """The latest consultations, newest first, optionally in one channel."""

    @abstractmethod
    async def mark_interrupted(self, *, idle_for_s: float = 0.0) -> int:
        """At start-up: RECEIVED/RUNNING consultations untouched for `idle_for_s` become INTERRUPTED.

        A single process passes 0 (everything in flight died with the old process); replicas sharing
        one database pass more than the longest a live consultation can go without an update, so
        they never interrupt each other's work. Returns how many were marked.
        """

    @abstractmethod
    async def prune_dedupe(self, older_than_s: float) -> int:
        """Forget dedupe keys recorded more than `older_than_s` ago; return how many."""
