"""Dedupe keys: the Slack event_ids and (channel, message ts) already seen, so each upload starts once.

The app_mention + message pair of one upload and Slack's retries carry the same (channel, ts);
recording both keys in the transaction that adds the consultations makes the first delivery win.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.tables import seen_events, seen_messages


async def record_keys(
    connection: AsyncConnection, *, event_id: str | None, channel: str, ts: str, now: datetime
) -> tuple[bool, bool]:
    """Record the event and message keys; whether each was new (the event's is True if None)."""
    event_is_new = event_id is None or await _insert_if_new(
        connection, seen_events, {"event_id": event_id, "channel": channel, "ts": ts, "seen_at": now}
    )
    message_is_new = await _insert_if_new(connection, seen_messages, {"channel": channel, "ts": ts, "seen_at": now})
    return event_is_new, message_is_new


async def prune_keys(connection: AsyncConnection, *, seen_before: datetime) -> int:
    """Forget keys recorded before `seen_before`; return how many."""
    removed = 0
    for table in (seen_events, seen_messages):
        result = await connection.execute(sa.delete(table).where(table.c.seen_at < seen_before))
        removed += result.rowcount
    return removed


async def _insert_if_new(connection: AsyncConnection, table: sa.Table, values: dict[str, object]) -> bool:
    # INSERT ... ON CONFLICT DO NOTHING is spelt the same by both, but built by each dialect's insert().
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    result = await connection.execute(insert(table).values(values).on_conflict_do_nothing())
    return result.rowcount == 1
