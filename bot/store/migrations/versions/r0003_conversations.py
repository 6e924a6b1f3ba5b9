"""Consultations become conversations: kinds and parents, several photos, stored images, follow-up
turns, feedback, muted threads, and the full-text index the team's memory searches.

consultations gains kind, parent_id, requirements, files, channel_type and part_text. Rows already
stored are uploads; their one file becomes `files`, and a finished one's recommended part becomes
`part_text`. The full-text index, `consultation_search`, is one document per consultation keyed by
consultations.seq:

    SQLite       an FTS5 virtual table (porter stemming over unicode61); its rowid is the seq
    PostgreSQL   a table of (seq, body) with a generated tsvector column and a GIN index on it

The store writes the documents itself, in the transaction that changes what they hold; Store.open()
fills in the documents of rows that have none, such as the rows this migration finds.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

_TEXT_TIME = sa.Text().with_variant(postgresql.TIMESTAMP(timezone=True), "postgresql")
_TEXT_JSON = sa.Text().with_variant(postgresql.JSONB(), "postgresql")
_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BYTES = sa.LargeBinary().with_variant(postgresql.BYTEA(), "postgresql")
_FTS5_TABLE = "CREATE VIRTUAL TABLE consultation_search USING fts5(body, tokenize = 'porter unicode61')"
# Uploads with a file get `files` = [that file]; finished ones get the part their recommendation named.
_BACKFILL = {
    "sqlite": (
        "UPDATE consultations SET files = json_array(json_object('id', file_id, 'name', COALESCE(file_name, ''))) "
        "WHERE file_id IS NOT NULL",
        "UPDATE consultations SET part_text = COALESCE(json_extract(recommendation, '$.part'), '') "
        "WHERE recommendation IS NOT NULL",
    ),
    "postgresql": (
        "UPDATE consultations SET files = jsonb_build_array(jsonb_build_object('id', file_id, 'name', "
        "COALESCE(file_name, ''))) WHERE file_id IS NOT NULL",
        "UPDATE consultations SET part_text = COALESCE(recommendation ->> 'part', '') "
        "WHERE recommendation IS NOT NULL AND jsonb_typeof(recommendation) = 'object'",
    ),
}


def _consultation(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([name], ["consultations.id"], ondelete="CASCADE")


def upgrade() -> None:
    """Add the consultation columns, the images, turns, feedback and mutes tables, and the index."""
    dialect = op.get_context().dialect.name
    op.add_column("consultations", sa.Column("kind", sa.Text, nullable=False, server_default="upload"))
    op.add_column("consultations", sa.Column("parent_id", sa.Text))
    op.add_column("consultations", sa.Column("requirements", _TEXT_JSON, nullable=False, server_default="[]"))
    op.add_column("consultations", sa.Column("files", _TEXT_JSON, nullable=False, server_default="[]"))
    op.add_column("consultations", sa.Column("channel_type", sa.Text))
    op.add_column("consultations", sa.Column("part_text", sa.Text, nullable=False, server_default=""))
    op.create_index("consultations_by_parent", "consultations", ["parent_id"])
    for statement in _BACKFILL[dialect]:
        op.execute(statement)
    op.create_table(
        "consultation_images",
        sa.Column("consultation_id", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("media_type", sa.Text, nullable=False),
        sa.Column("data", _BYTES, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("original_width", sa.Integer, nullable=False),
        sa.Column("original_height", sa.Integer, nullable=False),
        sa.Column("original_format", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        _consultation("consultation_id"),
    )
    op.create_table(
        "turns",
        sa.Column("seq", _SEQ, sa.Identity(always=True), primary_key=True),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("consultation_id", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("thread_ts", sa.Text, nullable=False),
        sa.Column("message_ts", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("answer", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("changes", _TEXT_JSON, nullable=False),
        sa.Column("answer_ts", sa.Text),
        sa.Column("created_at", _TEXT_TIME, nullable=False),
        sa.Column("updated_at", _TEXT_TIME, nullable=False),
        _consultation("consultation_id"),
    )
    op.create_index("turns_by_consultation", "turns", ["consultation_id", "created_at"])
    op.create_table(
        "feedback",
        sa.Column("consultation_id", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text, primary_key=True),
        sa.Column("rating", sa.Text),
        sa.Column("chosen", sa.Text),
        sa.Column("updated_at", _TEXT_TIME, nullable=False),
        _consultation("consultation_id"),
    )
    op.create_table(
        "mutes",
        sa.Column("channel", sa.Text, primary_key=True),
        sa.Column("thread_ts", sa.Text, primary_key=True),
        sa.Column("user_id", sa.Text),
        sa.Column("muted_at", _TEXT_TIME, nullable=False),
    )
    if dialect == "sqlite":
        op.execute(_FTS5_TABLE)
        return
    op.create_table(
        "consultation_search",
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("document", postgresql.TSVECTOR, sa.Computed("to_tsvector('english', body)", persisted=True)),
        sa.ForeignKeyConstraint(["seq"], ["consultations.seq"], ondelete="CASCADE"),
    )
    op.create_index("consultation_search_by_document", "consultation_search", ["document"], postgresql_using="gin")


def downgrade() -> None:
    """Drop the index, the new tables and the new columns."""
    op.drop_table("consultation_search")
    for table in ("mutes", "feedback", "turns", "consultation_images"):
        op.drop_table(table)
    op.drop_index("consultations_by_parent", table_name="consultations")
    for column in ("part_text", "channel_type", "files", "requirements", "parent_id", "kind"):
        op.drop_column("consultations", column)
