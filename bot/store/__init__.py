"""Consultations and dedupe keys, kept in SQLite or PostgreSQL so restarts and replicas share them.

    store = await Store.open(url)   "sqlite:///relative.db", "sqlite:////abs/path.db",
                                    "sqlite:///:memory:", "postgresql://user:pw@host:port/db"
                                    (or postgres://); one implementation, SQLAlchemy Core over
                                    aiosqlite or asyncpg; Alembic migrations run at open

Modules, one concept each:

    model.py        Consultation (its status, kind, files), what update() may change; the
                    conversation's records: StoredImage, Turn, Feedback; Stats
    urls.py         the DATABASE_URL forms (redact_url is matrec.urls)
    engine.py       the engine per database; write transactions (SQLite: BEGIN IMMEDIATE)
    columns.py      time and JSON column types that behave the same on both databases
    tables.py       the tables as the queries see them
    migrate.py      adopt, lock, upgrade: runs migrations/ (Alembic revisions 0001, 0002, ...)
    dedupe.py       the event and message keys that make each upload start once
    search.py       the full-text index (SQLite FTS5, PostgreSQL tsvector) the store keeps itself
    stats.py        the numbers behind the team's statistics
    ledger.py       the spend cap's dollars reserved and settled per UTC day and channel
    store.py        Store: the public API

Ownership: several instances may share one database. Each adds consultations with `owner` set to
its own name and calls heartbeat(owner) periodically; take_over(owner, stale_after_s=...) hands
an instance the active consultations whose owner fell silent, and release(owner) at shutdown
lets the others take over at once.

Errors:

    ConfigError (matrec.errors)
    ├── DatabaseUrlError   DATABASE_URL is not a form we accept (also a ValueError); shown to
    │                      whoever starts the bot, with the password masked
    └── SchemaTooNewError  a newer bot migrated the database; shown to whoever starts this one
    KeyError               update()/set_feedback()/save_images() of an unknown consultation id,
                           update_turn() of an unknown turn id (a bug in the caller, or a stale button)
    ValueError             add()/claim_and_add()/add_turn() of an id that is already stored (a bug
                           in the caller); a turn of an unknown consultation; images sharing a
                           position; stats() of fewer than one week
    TypeError              update()/update_turn() of a field that is unknown or not updatable
    sqlalchemy.exc.DBAPIError  the database is unreachable or failed; not translated
"""

from __future__ import annotations

from bot.store.errors import DatabaseUrlError, SchemaTooNewError
from bot.store.ledger import Reservation
from bot.store.model import (
    ACTIVE_STATUSES,
    TURN_UPDATABLE_FIELDS,
    UPDATABLE_FIELDS,
    Clock,
    Consultation,
    ConsultationKind,
    ConsultationStatus,
    Feedback,
    Rating,
    Stats,
    StoredFile,
    StoredImage,
    Turn,
    TurnStatus,
    UtcDatetime,
    utc_now,
)
from bot.store.store import (
    HISTORY_LIMIT,
    RECENT_LIMIT,
    SIMILAR_LIMIT,
    STATS_WEEKS,
    TAKE_OVER_LIMIT,
    UNSET,
    Store,
)
from bot.store.urls import ACCEPTED_URL_FORMS
from matrec.urls import redact_url

__all__ = [
    "ACCEPTED_URL_FORMS",
    "ACTIVE_STATUSES",
    "HISTORY_LIMIT",
    "RECENT_LIMIT",
    "SIMILAR_LIMIT",
    "STATS_WEEKS",
    "TAKE_OVER_LIMIT",
    "TURN_UPDATABLE_FIELDS",
    "UNSET",
    "UPDATABLE_FIELDS",
    "Clock",
    "Consultation",
    "ConsultationKind",
    "ConsultationStatus",
    "DatabaseUrlError",
    "Feedback",
    "Rating",
    "Reservation",
    "SchemaTooNewError",
    "Stats",
    "Store",
    "StoredFile",
    "StoredImage",
    "Turn",
    "TurnStatus",
    "UtcDatetime",
    "redact_url",
    "utc_now",
]
