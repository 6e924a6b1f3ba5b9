"""The spend cap's ledger: dollars reserved and settled per UTC day, team-wide and per channel.

A reservation adds its amount to the day's team-wide row (channel '') and to its channel's row in
one write transaction, and only if both stay within their caps; both rows are locked first, in
one order, so concurrent reservations from any number of instances queue instead of overshooting:

    SQLite       the transaction began with BEGIN IMMEDIATE: one writer at a time
    PostgreSQL   SELECT ... FOR UPDATE of the two rows (inserted first if new), team-wide row first

Settling moves a reservation's amount from reserved to settled at its actual cost; releasing
drops it. A reservation an instance never settles (it crashed) stays reserved until the day ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.tables import spend

TEAM: str = ""  # the channel of the team-wide row
# Float sums of many small amounts drift by far less than this; a cap is never missed by it.
CAP_TOLERANCE_USD = 1e-9

_s = spend.c


@dataclass(frozen=True)
class Reservation:
    """Dollars held against one day's caps, for one channel, until settled or released."""

    day: date
    channel: str
    amount_usd: float


async def reserve(
    connection: AsyncConnection, reservation: Reservation, *, cap_day: float | None, cap_channel: float | None
) -> bool:
    """Add `reservation` to the day's rows if both stay within their caps (None: no cap); whether it was."""
    day = reservation.day.isoformat()
    rows = sorted({TEAM, reservation.channel})
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    new = [{"day": day, "channel": c, "reserved_usd": 0.0, "settled_usd": 0.0, "alerted": False} for c in rows]
    await connection.execute(insert(spend).values(new).on_conflict_do_nothing())
    locked = (
        sa.select(_s.channel, _s.reserved_usd + _s.settled_usd)
        .where(_s.day == day, _s.channel.in_(rows))
        .order_by(_s.channel)
        .with_for_update()
    )
    used = {channel: float(total) for channel, total in (await connection.execute(locked)).all()}
    for channel, cap in ((TEAM, cap_day), (reservation.channel, cap_channel)):
        if cap is not None and used[channel] + reservation.amount_usd > cap + CAP_TOLERANCE_USD:
            return False
    await _add(connection, day, rows, reserved=reservation.amount_usd)
    return True


async def settle(connection: AsyncConnection, reservation: Reservation, actual_usd: float) -> None:
    """Replace the reservation by its actual cost."""
    rows = sorted({TEAM, reservation.channel})
    await _add(connection, reservation.day.isoformat(), rows, reserved=-reservation.amount_usd, settled=actual_usd)


async def spent(connection: AsyncConnection, day: date, channel: str = TEAM) -> tuple[float, float]:
    """The day's (reserved, settled) dollars, team-wide or in one channel."""
    query = sa.select(_s.reserved_usd, _s.settled_usd).where(_s.day == day.isoformat(), _s.channel == channel)
    row = (await connection.execute(query)).first()
    return (0.0, 0.0) if row is None else (float(row[0]), float(row[1]))


async def claim_alert(connection: AsyncConnection, day: date) -> bool:
    """Mark the day's warning as sent; True for exactly one caller per day."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    row = {"day": day.isoformat(), "channel": TEAM, "reserved_usd": 0.0, "settled_usd": 0.0, "alerted": False}
    await connection.execute(insert(spend).values(row).on_conflict_do_nothing())
    statement = (
        sa.update(spend)
        .where(_s.day == day.isoformat(), _s.channel == TEAM, _s.alerted.is_(False))
        .values(alerted=True)
    )
    return (await connection.execute(statement)).rowcount == 1


async def _add(
    connection: AsyncConnection, day: str, channels: list[str], *, reserved: float, settled: float = 0.0
) -> None:
    # Rounding can leave a released amount a hair below zero: reserved never shows less than nothing.
    new_reserved = sa.case((_s.reserved_usd + reserved < 0, 0.0), else_=_s.reserved_usd + reserved)
    statement = (
        sa.update(spend)
        .where(_s.day == day, _s.channel.in_(channels))
        .values(reserved_usd=new_reserved, settled_usd=_s.settled_usd + settled)
    )
    await connection.execute(statement)
