"""Deprecated: the first store's claim-then-interrupt protocol, kept until bot/ stops calling it.

claim_message() claimed a message before its consultations existed; mark_interrupted() at start-up
marked the dead process's work INTERRUPTED and its messages reclaimable, so Slack's retry could
start them again. claim_and_add() and take_over() replace both; delete this module with them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.dedupe import record_keys
from bot.store.model import ACTIVE_STATUSES, INTERRUPTED_ERROR, ConsultationStatus
from bot.store.tables import consultations, seen_messages

_c = consultations.c
_m = seen_messages.c


async def claim_message(
    connection: AsyncConnection, *, event_id: str | None, channel: str, ts: str, now: datetime
) -> bool:
    """True exactly once per message, and once more after a restart interrupted all its work."""
    event_is_new, message_is_new = await record_keys(connection, event_id=event_id, channel=channel, ts=ts, now=now)
    if message_is_new:
        return event_is_new
    unfinished = sa.exists().where(
        _c.channel == channel, _c.message_ts == ts, _c.status != ConsultationStatus.INTERRUPTED
    )
    # Re-evaluated on the locked row (PostgreSQL) or under the write lock (SQLite): one retry wins.
    reclaim = (
        sa.update(seen_messages)
        .where(_m.channel == channel, _m.ts == ts, _m.reclaimable, ~unfinished)
        .values(reclaimable=False, seen_at=now)
    )
    return (await connection.execute(reclaim)).rowcount == 1


async def mark_interrupted(connection: AsyncConnection, *, idle_for_s: float, now: datetime) -> int:
    """Active consultations idle for `idle_for_s` become INTERRUPTED, their messages reclaimable."""
    idle = sa.and_(_c.status.in_(ACTIVE_STATUSES), _c.updated_at <= now - timedelta(seconds=idle_for_s))
    await connection.execute(
        sa.update(seen_messages)
        .where(sa.exists().where(_c.channel == _m.channel, _c.message_ts == _m.ts, idle))
        .values(reclaimable=True)
    )
    interrupted = await connection.execute(
        sa.update(consultations)
        .where(idle)
        .values(status=ConsultationStatus.INTERRUPTED, error=INTERRUPTED_ERROR, updated_at=now)
    )
    return interrupted.rowcount
