"""The shared Claude budget's queries: one locked step that records what an instance saw and grants turns.

Every change goes through `step`, one write transaction that holds the budget's row lock from the
first statement, so instances' steps run one at a time and never both hand out the last slot:

    SQLite       the transaction began with BEGIN IMMEDIATE: one writer at a time
    PostgreSQL   SELECT ... FOR UPDATE of the one claude_budget row

Inside it, in order: bring the token buckets to now; on a heartbeat, renew the owner's expiries and
drop calls whose owner stopped renewing them (a crashed instance: its slots come back within the
TTL and a heartbeat interval, its reservations stay spent until the buckets refill); end calls
(settling their reservations); take rate-limit observations and a pause; queue newly waiting
calls; then grant waiting calls of ANY instance in order (priority, arrival) while a slot is free
and the first fits (matrec.budget_buckets). An instance learns of its calls granted by another's step at its own
next step; on PostgreSQL a step that freed or granted something for others sends
NOTIFY `NOTIFY_CHANNEL`, delivered at commit, so they look at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.tables import CLAUDE_BUCKET_PREFIXES, CLAUDE_BUDGET_ROW, claude_budget, claude_calls
from matrec.budget import CallCost, Limit, RateLimits
from matrec.budget_buckets import Bucket, BudgetLimits, BudgetState, Grants, Reserved, Waiting
from matrec.results import TokenUsage

NOTIFY_CHANNEL = "matrec_claude_budget"

_b = claude_budget.c
_k = claude_calls.c
_PREFIX = dict(zip(Limit, CLAUDE_BUCKET_PREFIXES, strict=True))
_WAITING = _k.granted_at.is_(None)
_GRANTED = _k.granted_at.is_not(None)


@dataclass(frozen=True)
class Ended:
    """A granted call that ended, billed `usage` (None: failed without one); `sent`: False when it was
    granted but never sent (its waiter was cancelled), so it gets everything back."""

    id: str
    usage: TokenUsage | None
    sent: bool = True


@dataclass
class Step:
    """What one instance brings to a step; see the module docstring for the order it is applied in."""

    owner: str
    ttl_s: float
    joined: Sequence[Waiting] = ()
    ended: Sequence[Ended] = ()  # also calls that were waiting, to withdraw them
    observed: Sequence[RateLimits] = ()
    pause_until: float | None = None
    renew: bool = False
    leave: bool = False  # drop every call of the owner (it stops)
    evict_others: bool = False  # drop every other owner's calls (SQLite: they were a dead process's)


@dataclass(frozen=True)
class Outcome:
    """After a step: the owner's calls granted and all it has, when waiting ones might fit, the pause, the counts."""

    granted: frozenset[str]
    known: frozenset[str] | None  # every call of the owner's, on a renewing step
    retry_at: float | None
    paused_until: float
    in_flight: int
    waiting: int
    notified: bool = False
    evicted: int = 0


async def step(connection: AsyncConnection, change: Step, limits: BudgetLimits, now: float) -> Outcome:
    """Apply `change` and grant what may go, in one transaction (see the module docstring)."""
    locked = sa.select(claude_budget).where(_b.name == CLAUDE_BUDGET_ROW).with_for_update()
    state = _state((await connection.execute(locked)).one())
    state.refill(now, limits)
    expires_at = now + change.ttl_s
    if change.renew:
        renew = sa.update(claude_calls).where(_k.owner == change.owner).values(expires_at=expires_at)
        await connection.execute(renew)
    evicted = 0
    if change.renew:  # any instance's heartbeat clears the calls of instances that stopped renewing theirs
        evicted = (await connection.execute(sa.delete(claude_calls).where(_k.expires_at < now))).rowcount
    if change.evict_others:
        evicted += (await connection.execute(sa.delete(claude_calls).where(_k.owner != change.owner))).rowcount
    freed = await _end(connection, state, change.ended, limits) or evicted > 0
    for observed in change.observed:
        state.observe(observed)
    if change.pause_until is not None:
        state.pause(change.pause_until)
    if change.leave:
        await connection.execute(sa.delete(claude_calls).where(_k.owner == change.owner))
    elif change.joined:
        await connection.execute(
            sa.insert(claude_calls), [_waiting_row(w, change.owner, expires_at) for w in change.joined]
        )
    counts = sa.select(sa.func.count(_k.granted_at), sa.func.count()).select_from(claude_calls)
    in_flight, calls = (await connection.execute(counts)).one()
    grants, others = await _grant(connection, state, in_flight, limits, now, change.owner, expires_at)
    in_flight += len(grants.granted)
    waiting = calls - in_flight
    await connection.execute(sa.update(claude_budget).where(_b.name == CLAUDE_BUDGET_ROW).values(_row(state)))
    granted = frozenset((await connection.scalars(sa.select(_k.id).where(_k.owner == change.owner, _GRANTED))).all())
    known = None
    if change.renew:  # a heartbeat also tells the owner which of its calls the store still has
        known = frozenset((await connection.scalars(sa.select(_k.id).where(_k.owner == change.owner))).all())
    notify = connection.dialect.name == "postgresql" and (others or (freed and waiting > 0))
    if notify:
        await connection.execute(sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, "")))
    return Outcome(
        granted=granted,
        known=known,
        retry_at=grants.retry_at,
        paused_until=state.paused_until,
        in_flight=in_flight,
        waiting=waiting,
        notified=notify,
        evicted=evicted,
    )


async def _end(connection: AsyncConnection, state: BudgetState, ended: Sequence[Ended], limits: BudgetLimits) -> bool:
    """Remove ended (or withdrawn) calls, settling the reservations of those that were granted."""
    if not ended:
        return False
    by_id = {e.id: e for e in ended}
    query = sa.select(_k.id, _k.input_tokens, _k.output_tokens, _k.granted_at).where(_k.id.in_(by_id))
    rows = (await connection.execute(query)).all()
    await connection.execute(sa.delete(claude_calls).where(_k.id.in_(by_id)))
    freed = False
    for call_id, input_tokens, output_tokens, granted_at in rows:
        if granted_at is None:
            continue
        freed = True
        done = by_id[call_id]
        state.settle(Reserved(input_tokens, output_tokens), done.usage, sent=done.sent, limits=limits)
    return freed


async def _grant(
    connection: AsyncConnection,
    state: BudgetState,
    in_flight: int,
    limits: BudgetLimits,
    now: float,
    owner: str,
    expires_at: float,
) -> tuple[Grants, bool]:
    """Grant waiting calls of any owner in order; also whether any grant went to another owner."""
    free = limits.calls - in_flight
    if free <= 0:
        return Grants([], None), False
    query = (
        sa.select(_k.id, _k.owner, _k.priority, _k.arrived_at, _k.input_tokens, _k.output_tokens)
        .where(_WAITING)
        .order_by(_k.priority, _k.arrived_at, _k.id)
        .limit(free)
    )
    rows = (await connection.execute(query)).all()
    queue = [Waiting(r.id, r.priority, r.arrived_at, _cost(r.input_tokens, r.output_tokens)) for r in rows]
    grants = state.admit(queue, in_flight, now, limits)
    if grants.granted:
        update = (
            sa.update(claude_calls)
            .where(_k.id == sa.bindparam("call_id"))
            .values(
                granted_at=now,
                expires_at=expires_at,
                input_tokens=sa.bindparam("reserved_input"),
                output_tokens=sa.bindparam("reserved_output"),
            )
        )
        params = [
            {"call_id": call_id, "reserved_input": held.input_tokens, "reserved_output": held.output_tokens}
            for call_id, held in grants.granted
        ]
        await connection.execute(update, params)
    owners = {r.id: r.owner for r in rows}
    return grants, any(owners[call_id] != owner for call_id, _ in grants.granted)


def _waiting_row(waiting: Waiting, owner: str, expires_at: float) -> dict[str, object]:
    return {
        "id": waiting.id,
        "owner": owner,
        "priority": waiting.priority,
        "arrived_at": waiting.arrived_at,
        "input_tokens": float(waiting.cost.input_tokens),
        "output_tokens": float(waiting.cost.output_tokens),
        "granted_at": None,
        "expires_at": expires_at,
    }


def _cost(input_tokens: float, output_tokens: float) -> CallCost:
    return CallCost(input_tokens=round(input_tokens), output_tokens=round(output_tokens))


def _state(row: sa.Row[Any]) -> BudgetState:
    values = row._mapping
    buckets = {
        limit: Bucket(values[f"{prefix}_level"], values[f"{prefix}_limit"], values[f"{prefix}_rate"])
        for limit, prefix in _PREFIX.items()
    }
    return BudgetState(refilled_at=values["refilled_at"], paused_until=values["paused_until"], buckets=buckets)


def _row(state: BudgetState) -> dict[str, float | None]:
    values: dict[str, float | None] = {"refilled_at": state.refilled_at, "paused_until": state.paused_until}
    for limit, prefix in _PREFIX.items():
        bucket = state.buckets[limit]
        values |= {
            f"{prefix}_level": bucket.level,
            f"{prefix}_limit": bucket.server_limit,
            f"{prefix}_rate": bucket.server_rate,
        }
    return values
