"""The shared Slack budget's queries: token buckets every instance takes from, and pending pointers.

A bucket is one row: `tokens` as counted at `at_s` (Unix seconds). A take refills it lazily
(`per_s` since `at_s`, up to `burst`) and spends `cost` tokens if at least `floor + cost` are
there; a lower priority asks for a higher floor, so room is always kept for final states. The
row is locked for the take, so takes from any number of instances never overspend it:

    SQLite       the write transaction began with BEGIN IMMEDIATE: one writer at a time
    PostgreSQL   the row is inserted if new, then SELECT ... FOR UPDATE

A clock that is behind the row's (another instance's) refills nothing and never moves `at_s` back.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.tables import slack_budget, slack_pointers

_b = slack_budget.c
_p = slack_pointers.c


@dataclass(frozen=True)
class BucketRate:
    """One bucket's limit: `per_s` tokens a second, at most `burst` at once."""

    per_s: float
    burst: float


@dataclass(frozen=True)
class Pointer:
    """A board to turn into a pointer to the message that now shows its final state."""

    channel: str
    ts: str
    thread_ts: str
    target_ts: str


def _insert(connection: AsyncConnection) -> type[postgresql.Insert] | type[sqlite.Insert]:
    return postgresql.Insert if connection.dialect.name == "postgresql" else sqlite.Insert


async def take(
    connection: AsyncConnection, bucket: str, rate: BucketRate, *, now_s: float, floor: float, cost: float = 1.0
) -> float:
    """Spend `cost` tokens of `bucket` if `floor + cost` are there: 0.0; else the seconds until they would be."""
    new = {"bucket": bucket, "tokens": rate.burst, "at_s": now_s}
    await connection.execute(_insert(connection)(slack_budget).values(new).on_conflict_do_nothing())
    locked = sa.select(_b.tokens, _b.at_s).where(_b.bucket == bucket).with_for_update()
    row = (await connection.execute(locked)).one()
    stored, at_s = float(row.tokens), float(row.at_s)
    tokens = min(rate.burst, stored + max(now_s - at_s, 0.0) * rate.per_s)
    needed = min(floor, rate.burst - cost) + cost  # a floor the bucket can never reach would starve the call
    wait_s = 0.0
    if tokens >= needed:
        tokens -= cost
    else:
        wait_s = (needed - tokens) / rate.per_s
    statement = sa.update(slack_budget).where(_b.bucket == bucket).values(tokens=tokens, at_s=max(now_s, at_s))
    await connection.execute(statement)
    return wait_s


async def prune(connection: AsyncConnection, *, before_s: float) -> int:
    """Forget buckets untouched since `before_s` (full again by now, as a missing row is); how many."""
    return (await connection.execute(sa.delete(slack_budget).where(_b.at_s < before_s))).rowcount


async def add_pointer(connection: AsyncConnection, pointer: Pointer, *, now_s: float) -> None:
    """Record that `pointer.ts` must point at `pointer.target_ts` (the newest target wins)."""
    row = {
        "channel": pointer.channel,
        "ts": pointer.ts,
        "thread_ts": pointer.thread_ts,
        "target_ts": pointer.target_ts,
        "created_s": now_s,
        "leased_until_s": 0.0,
    }
    statement = _insert(connection)(slack_pointers).values(row)
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[_p.channel, _p.ts], set_={"target_ts": pointer.target_ts, "leased_until_s": 0.0}
        )
    )


async def lease_pointers(connection: AsyncConnection, *, now_s: float, lease_s: float, limit: int) -> list[Pointer]:
    """Up to `limit` pointers nobody holds, oldest first, held by the caller for `lease_s`."""
    query = (
        sa.select(_p.channel, _p.ts, _p.thread_ts, _p.target_ts)
        .where(_p.leased_until_s <= now_s)
        .order_by(_p.created_s)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    found = [Pointer(r.channel, r.ts, r.thread_ts, r.target_ts) for r in (await connection.execute(query)).all()]
    for pointer in found:
        held = sa.update(slack_pointers).where(_p.channel == pointer.channel, _p.ts == pointer.ts)
        await connection.execute(held.values(leased_until_s=now_s + lease_s))
    return found


async def drop_pointer(connection: AsyncConnection, pointer: Pointer) -> None:
    """The pointer landed (or its board is gone): forget it, unless it was re-aimed meanwhile."""
    statement = sa.delete(slack_pointers).where(
        _p.channel == pointer.channel, _p.ts == pointer.ts, _p.target_ts == pointer.target_ts
    )
    await connection.execute(statement)


async def pending_pointers(connection: AsyncConnection) -> list[Pointer]:
    """Every pointer not landed yet, oldest first."""
    query = sa.select(_p.channel, _p.ts, _p.thread_ts, _p.target_ts).order_by(_p.created_s)
    return [Pointer(r.channel, r.ts, r.thread_ts, r.target_ts) for r in (await connection.execute(query)).all()]
