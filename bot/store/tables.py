"""The tables as the queries see them (the migrations in bot/store/migrations build them)."""

from __future__ import annotations

import sqlalchemy as sa

from bot.store.columns import BranchesJson, RecommendationJson, UtcTimestamp
from bot.store.model import COLUMNS, ConsultationStatus

metadata = sa.MetaData()

# Text holding the status's value; read back as the enum.
_STATUS = sa.Enum(
    ConsultationStatus, native_enum=False, values_callable=lambda statuses: [status.value for status in statuses]
)

consultations = sa.Table(
    "consultations",
    metadata,
    # Insertion order within one instant: ORDER BY created_at, seq.
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("thread_ts", sa.Text, nullable=False),
    sa.Column("message_ts", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text),
    sa.Column("file_id", sa.Text),
    sa.Column("file_name", sa.Text),
    sa.Column("image_sha256", sa.Text),
    sa.Column("context", sa.Text, nullable=False),
    sa.Column("status", _STATUS, nullable=False),
    sa.Column("board_ts", sa.Text),
    sa.Column("branches", BranchesJson(), nullable=False),
    sa.Column("recommendation", RecommendationJson()),
    sa.Column("usage_cost_usd", sa.Double),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UtcTimestamp(), nullable=False),
    sa.Column("updated_at", UtcTimestamp(), nullable=False),
    sa.Column("owner", sa.Text),
    sa.Column("heartbeat_at", UtcTimestamp()),
    sa.Column("resumes", sa.Integer, nullable=False),
)

seen_events = sa.Table(
    "seen_events",
    metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("ts", sa.Text, nullable=False),
    sa.Column("seen_at", UtcTimestamp(), nullable=False),
)

seen_messages = sa.Table(
    "seen_messages",
    metadata,
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("ts", sa.Text, primary_key=True),
    sa.Column("seen_at", UtcTimestamp(), nullable=False),
    sa.Column("reclaimable", sa.Boolean, nullable=False, default=False),
)

# The consultation's fields, in model order: what every SELECT reads and every INSERT writes.
CONSULTATION_COLUMNS = tuple(consultations.c[name] for name in COLUMNS)
