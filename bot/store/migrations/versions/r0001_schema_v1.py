"""The schema as first shipped (the old store's schema_version 1): consultations and dedupe keys.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

# Frozen with this revision (the runtime types may change; this schema may not).
_TEXT_TIME = sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
_TEXT_JSON = sa.Text().with_variant(postgresql.JSONB(), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: INTEGER PRIMARY KEY is the rowid
_REAL: sa.types.TypeEngine[float] = sa.Double().with_variant(sa.REAL(), "sqlite")
_FLAG = sa.Integer().with_variant(sa.Boolean(), "postgresql")


def upgrade() -> None:
    """Create the three tables and their indexes."""
    # As shipped, SQLite declared these primary keys without NOT NULL; PostgreSQL implies it.
    pk_nullable = op.get_context().dialect.name == "sqlite"
    op.create_table(
        "consultations",
        sa.Column("seq", _SEQ, sa.Identity(always=True), primary_key=True, nullable=pk_nullable),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("thread_ts", sa.Text, nullable=False),
        sa.Column("message_ts", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("file_id", sa.Text),
        sa.Column("file_name", sa.Text),
        sa.Column("image_sha256", sa.Text),
        sa.Column("context", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("board_ts", sa.Text),
        sa.Column("branches", _TEXT_JSON, nullable=False),
        sa.Column("recommendation", _TEXT_JSON),
        sa.Column("usage_cost_usd", _REAL),
        sa.Column("error", sa.Text),
        sa.Column("created_at", _TEXT_TIME, nullable=False),
        sa.Column("updated_at", _TEXT_TIME, nullable=False),
    )
    op.create_index("consultations_by_message", "consultations", ["channel", "message_ts"])
    op.create_index("consultations_by_thread", "consultations", ["channel", "thread_ts", "created_at"])
    op.create_index("consultations_by_channel", "consultations", ["channel", "created_at"])
    op.create_index("consultations_by_created", "consultations", ["created_at"])
    op.create_index("consultations_by_status", "consultations", ["status"])
    op.create_table(
        "seen_events",
        sa.Column("event_id", sa.Text, primary_key=True, nullable=pk_nullable),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("ts", sa.Text, nullable=False),
        sa.Column("seen_at", _TEXT_TIME, nullable=False),
    )
    op.create_index("seen_events_by_time", "seen_events", ["seen_at"])
    op.create_table(
        "seen_messages",
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("ts", sa.Text, primary_key=True),
        sa.Column("seen_at", _TEXT_TIME, nullable=False),
        sa.Column("reclaimable", _FLAG, nullable=False, server_default=sa.false()),
    )
    op.create_index("seen_messages_by_time", "seen_messages", ["seen_at"])


def downgrade() -> None:
    """Drop everything: the store keeps no data outside these tables."""
    op.drop_table("seen_messages")
    op.drop_table("seen_events")
    op.drop_table("consultations")
