"""The spend cap's ledger: dollars reserved and settled per UTC day, team-wide and per channel.

One row per (day, channel); the team-wide row has channel ''. A consultation reserves its worst
case on both rows at once and settles its actual cost later (see bot.store.ledger). `alerted`
on the team-wide row records that the day's 80% warning was claimed by some instance.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the spend table."""
    op.create_table(
        "spend",
        sa.Column("day", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("reserved_usd", sa.Double, nullable=False, server_default="0"),
        sa.Column("settled_usd", sa.Double, nullable=False, server_default="0"),
        sa.Column("alerted", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    """Drop the spend table."""
    op.drop_table("spend")
