"""The shared Slack budget: token buckets per method (and channel), and boards awaiting a pointer.

`slack_budget` holds one row per bucket, refilled lazily at each take (see bot.store.slack_budget).
`slack_pointers` holds boards whose final state went out as a new message because no chat.update
could be afforded in time; each is turned into a pointer to that message later, then deleted.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the slack_budget and slack_pointers tables."""
    op.create_table(
        "slack_budget",
        sa.Column("bucket", sa.Text, primary_key=True),
        sa.Column("tokens", sa.Double, nullable=False),
        sa.Column("at_s", sa.Double, nullable=False),
    )
    op.create_table(
        "slack_pointers",
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("ts", sa.Text, primary_key=True),
        sa.Column("thread_ts", sa.Text, nullable=False),
        sa.Column("target_ts", sa.Text, nullable=False),
        sa.Column("created_s", sa.Double, nullable=False),
        sa.Column("leased_until_s", sa.Double, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("slack_pointers")
    op.drop_table("slack_budget")
