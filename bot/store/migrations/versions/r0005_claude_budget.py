"""The Claude budget every instance shares: its one state row, and the calls waiting or in flight.

`claude_budget` holds one row ('org'): when its token buckets were last refilled, the shared pause
(a 429's retry-after), and per bucket (requests, input, output tokens per minute) its level and
the limit and refill rate Anthropic last reported. `claude_calls` has a row per call waiting for
its turn or in flight, with its owner (the instance), priority, arrival, reservation and an
expiry the owner renews (see bot.store.claude_budget). Times are time.time() seconds.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

_BUCKETS = ("requests", "input", "output")


def upgrade() -> None:
    """Create both tables and the state row."""
    budget = op.create_table(
        "claude_budget",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("refilled_at", sa.Double, nullable=False),
        sa.Column("paused_until", sa.Double, nullable=False),
        *(sa.Column(f"{prefix}_{part}", sa.Double) for prefix in _BUCKETS for part in ("level", "limit", "rate")),
    )
    op.bulk_insert(budget, [{"name": "org", "refilled_at": 0.0, "paused_until": 0.0}])
    op.create_table(
        "claude_calls",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("arrived_at", sa.Double, nullable=False),
        sa.Column("input_tokens", sa.Double, nullable=False),
        sa.Column("output_tokens", sa.Double, nullable=False),
        sa.Column("granted_at", sa.Double),
        sa.Column("expires_at", sa.Double, nullable=False),
    )
    op.create_index("claude_calls_queue", "claude_calls", ["granted_at", "priority", "arrived_at", "id"])
    op.create_index("claude_calls_owner", "claude_calls", ["owner"])
    op.create_index("claude_calls_expires", "claude_calls", ["expires_at"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("claude_calls")
    op.drop_table("claude_budget")
