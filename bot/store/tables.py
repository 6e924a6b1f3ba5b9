"""The tables as the queries see them (the migrations in bot/store/migrations build them)."""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa

from bot.store.columns import BranchesJson, FilesJson, RecommendationJson, StringsJson, UtcTimestamp
from bot.store.model import COLUMNS, TURN_COLUMNS, ConsultationKind, ConsultationStatus, TurnStatus
from matrec.materials import MaterialClass

metadata = sa.MetaData()


def _values_of(enum: type[StrEnum]) -> sa.Enum:
    """Text holding the member's value; read back as the enum."""
    return sa.Enum(enum, native_enum=False, values_callable=lambda members: [member.value for member in members])


_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

consultations = sa.Table(
    "consultations",
    metadata,
    # Insertion order within one instant: ORDER BY created_at, seq.
    sa.Column("seq", _SEQ, primary_key=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("thread_ts", sa.Text, nullable=False),
    sa.Column("message_ts", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text),
    sa.Column("file_id", sa.Text),
    sa.Column("file_name", sa.Text),
    sa.Column("image_sha256", sa.Text),
    sa.Column("context", sa.Text, nullable=False),
    sa.Column("status", _values_of(ConsultationStatus), nullable=False),
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
    sa.Column("kind", _values_of(ConsultationKind), nullable=False),
    sa.Column("parent_id", sa.Text),
    sa.Column("requirements", StringsJson(), nullable=False),
    sa.Column("files", FilesJson(), nullable=False),
    sa.Column("channel_type", sa.Text),
    sa.Column("part_text", sa.Text, nullable=False),
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

consultation_images = sa.Table(
    "consultation_images",
    metadata,
    sa.Column("consultation_id", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("original_width", sa.Integer, nullable=False),
    sa.Column("original_height", sa.Integer, nullable=False),
    sa.Column("original_format", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
)

turns = sa.Table(
    "turns",
    metadata,
    # Insertion order within one instant: ORDER BY created_at, seq.
    sa.Column("seq", _SEQ, primary_key=True),
    sa.Column("id", sa.Text, nullable=False, unique=True),
    sa.Column("consultation_id", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("thread_ts", sa.Text, nullable=False),
    sa.Column("message_ts", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text),
    sa.Column("status", _values_of(TurnStatus), nullable=False),
    sa.Column("changes", StringsJson(), nullable=False),
    sa.Column("answer_ts", sa.Text),
    sa.Column("created_at", UtcTimestamp(), nullable=False),
    sa.Column("updated_at", UtcTimestamp(), nullable=False),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("consultation_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, primary_key=True),
    sa.Column("rating", sa.Text),
    sa.Column("chosen", _values_of(MaterialClass)),
    sa.Column("updated_at", UtcTimestamp(), nullable=False),
)

mutes = sa.Table(
    "mutes",
    metadata,
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("thread_ts", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text),
    sa.Column("muted_at", UtcTimestamp(), nullable=False),
)

# The consultation's fields, in model order: what every SELECT reads and every INSERT writes.
CONSULTATION_COLUMNS = tuple(consultations.c[name] for name in COLUMNS)
TURN_COLUMNS_IN_ORDER = tuple(turns.c[name] for name in TURN_COLUMNS)

# One row per UTC day and channel; channel '' is the team-wide total (revision 0004).
spend = sa.Table(
    "spend",
    metadata,
    sa.Column("day", sa.Text, primary_key=True),
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("reserved_usd", sa.Double, nullable=False),
    sa.Column("settled_usd", sa.Double, nullable=False),
    sa.Column("alerted", sa.Boolean, nullable=False),
)

# CLAUDE-BUDGET (issue 9 item 2, revision 0005): the Claude budget every instance shares.
# Times are time.time() seconds (Double): the budget's arithmetic is in seconds on both databases.
CLAUDE_BUDGET_ROW = "org"  # the one row of claude_budget
CLAUDE_BUCKET_PREFIXES = ("requests", "input", "output")  # a bucket's columns: <prefix>_level, _limit, _rate

claude_budget = sa.Table(
    "claude_budget",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("refilled_at", sa.Double, nullable=False),
    sa.Column("paused_until", sa.Double, nullable=False),
    *(
        sa.Column(f"{prefix}_{part}", sa.Double)
        for prefix in CLAUDE_BUCKET_PREFIXES
        for part in ("level", "limit", "rate")
    ),
)

# One row per call waiting for its turn (granted_at NULL) or in flight; a row whose owner stopped
# renewing expires_at is gone at the next step, so a crashed instance's slots come back.
claude_calls = sa.Table(
    "claude_calls",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("arrived_at", sa.Double, nullable=False),
    sa.Column("input_tokens", sa.Double, nullable=False),  # the cost while waiting, the reservation once granted
    sa.Column("output_tokens", sa.Double, nullable=False),
    sa.Column("granted_at", sa.Double),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Index("claude_calls_queue", "granted_at", "priority", "arrived_at", "id"),
    sa.Index("claude_calls_owner", "owner"),
    sa.Index("claude_calls_expires", "expires_at"),
)

# --- SLACK-BUDGET (revision 0006) -------------------------------------------------------------
# Slack's app-wide rate limits as token buckets every instance shares (bot.store.slack_budget):
# one row per bucket, a method ("chat.update") or a method in one channel ("chat.postMessage C1").
slack_budget = sa.Table(
    "slack_budget",
    metadata,
    sa.Column("bucket", sa.Text, primary_key=True),
    sa.Column("tokens", sa.Double, nullable=False),
    sa.Column("at_s", sa.Double, nullable=False),  # when `tokens` was counted, Unix seconds
)

# Boards whose final state was posted as a new message: each is turned into a pointer to it, by
# whichever instance has budget first (leased while one tries).
slack_pointers = sa.Table(
    "slack_pointers",
    metadata,
    sa.Column("channel", sa.Text, primary_key=True),
    sa.Column("ts", sa.Text, primary_key=True),
    sa.Column("thread_ts", sa.Text, nullable=False),
    sa.Column("target_ts", sa.Text, nullable=False),
    sa.Column("created_s", sa.Double, nullable=False),
    sa.Column("leased_until_s", sa.Double, nullable=False),
)
