"""Consultations and dedupe keys, kept in SQLite or PostgreSQL so restarts and replicas share them.

    store = await Store.open(url)   "sqlite:///relative.db", "sqlite:////abs/path.db",
                                    "sqlite:///:memory:", "postgresql://user:pw@host:port/db"
                                    (or postgres://); one implementation, SQLAlchemy Core over
                                    aiosqlite or asyncpg; Alembic migrations run at open

Modules, one concept each:

    model.py        Consultation, ConsultationStatus, what update() may change
    urls.py         the DATABASE_URL forms (redact_url is matrec.urls)
    engine.py       the engine per database; write transactions (SQLite: BEGIN IMMEDIATE)
    columns.py      time and JSON column types that behave the same on both databases
    tables.py       the tables as the queries see them
    migrate.py      adopt, lock, upgrade: runs migrations/ (Alembic revisions 0001, 0002, ...)
    dedupe.py       the event and message keys that make each upload start once
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
    KeyError               update() of an unknown consultation id (a bug in the caller)
    ValueError             add()/claim_and_add() of an id that is already stored (a bug in the caller)
    TypeError              update() of a field that is unknown or not updatable (a bug in the caller)
    sqlalchemy.exc.DBAPIError  the database is unreachable or failed; not translated
"""

from __future__ import annotations

from bot.store.errors import DatabaseUrlError, SchemaTooNewError
from bot.store.model import (
    ACTIVE_STATUSES,
    UPDATABLE_FIELDS,
    Clock,
    Consultation,
    ConsultationStatus,
    UtcDatetime,
    utc_now,
)
from bot.store.store import RECENT_LIMIT, TAKE_OVER_LIMIT, Store
from bot.store.urls import ACCEPTED_URL_FORMS
from matrec.urls import redact_url

__all__ = [
    "ACCEPTED_URL_FORMS",
    "ACTIVE_STATUSES",
    "RECENT_LIMIT",
    "TAKE_OVER_LIMIT",
    "UPDATABLE_FIELDS",
    "Clock",
    "Consultation",
    "ConsultationStatus",
    "DatabaseUrlError",
    "SchemaTooNewError",
    "Store",
    "UtcDatetime",
    "redact_url",
    "utc_now",
]
