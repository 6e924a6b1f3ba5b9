"""Which instance works on an active consultation: owner, heartbeat_at, resumes.

Instances heartbeat the consultations they own; another instance takes over those whose
heartbeat went stale. The partial index holds only active rows, so finding stale ones (and
one owner's) stays cheap however long the history grows.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

_TEXT_TIME = sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
_ACTIVE = sa.text("status IN ('received', 'running')")


def upgrade() -> None:
    """Add the ownership columns and the index of active consultations by owner and heartbeat."""
    op.add_column("consultations", sa.Column("owner", sa.Text))
    op.add_column("consultations", sa.Column("heartbeat_at", _TEXT_TIME))
    op.add_column("consultations", sa.Column("resumes", sa.Integer, nullable=False, server_default="0"))
    op.create_index(
        "consultations_active_by_owner",
        "consultations",
        ["owner", "heartbeat_at"],
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )


def downgrade() -> None:
    """Drop the index and the columns (SQLite 3.35+ drops columns natively)."""
    op.drop_index("consultations_active_by_owner", table_name="consultations")
    op.drop_column("consultations", "resumes")
    op.drop_column("consultations", "heartbeat_at")
    op.drop_column("consultations", "owner")
