"""The Claude budget every instance shares, kept in the store: matrec's `SharedBudget` over SQLite or PostgreSQL.

`MATREC_CONCURRENCY` and the optional `MATREC_CLAUDE_*_PER_MINUTE` limits hold for all instances
on one database together; every instance applies the values it was started with, so give them
all the same. The rules (token buckets, rate-limit headers, order) are matrec.budget_buckets';
the transaction that applies them is bot.store.claude_budget's `step`.

One task per instance (the pump) runs the steps: it gathers what the engine asked for since the
last one (calls that want a slot, calls that ended with their usage, a 429's pause, the latest
rate-limit headers) and brings it to the database in one transaction, which also grants turns to
the waiting calls of every instance and reports this instance's granted ones. `acquire` waits for
its call to be granted; `release`, `pause` and `observe` only queue and wake the pump, so they
never block.

Leases: each call's row has an expiry, renewed for all of the instance's calls every
`ttl_s / 3` (the heartbeat, a step of its own when nothing else is due). A crashed instance
stops renewing, and the next step of any instance, once the TTL has passed, drops its rows: its
slots come back. An instance that stops cleanly drops its rows at once (`aclose`).

Wake-ups, so that a freed slot is used again within milliseconds:
    this instance    a release wakes the pump at once; its step frees the slot and grants it to the
                     first waiting call, local or not, in the same transaction
    other instances  PostgreSQL LISTEN/NOTIFY on a connection of the budget's own: a step that
                     freed a slot others wait for, or granted one of their calls, notifies at
                     commit, and their pumps step at once. Polling fast enough to re-use a slot
                     within tens of milliseconds would mean a transaction every few milliseconds
                     per instance while anything waits; NOTIFY costs nothing while nothing happens.
    safety net       while calls wait, a step at least every `POLL_INTERVAL_S` (a notification lost
                     with its connection), or every `UNLISTENED_POLL_INTERVAL_S` while LISTEN is not
                     possible (a pooler in transaction mode; the connection is retried), and at the
                     time the first waiting call fits the token buckets or a pause ends
SQLite serves one instance (several need PostgreSQL), so what the file holds at start-up was a
dead process's and is dropped at the first step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from bot.store import Store
from bot.store.claude_budget import NOTIFY_CHANNEL, Ended, Outcome, Step
from bot.store.urls import PostgresDatabase, parse_database_url
from matrec.budget import CallCost, Lease, Limit, RateLimits
from matrec.budget_buckets import BudgetLimits, Waiting
from matrec.limiter import Priority
from matrec.results import TokenUsage
from matrec.settings import EngineSettings

log = logging.getLogger(__name__)

POLL_INTERVAL_S: Final = 0.5
UNLISTENED_POLL_INTERVAL_S: Final = 0.05
HEARTBEATS_PER_TTL: Final = 3
STEP_RETRY_S: Final = 0.5  # after a failed step (the database did not answer), doubling up to the maximum
STEP_RETRY_MAX_S: Final = 5.0
LISTEN_RETRY_S: Final = 5.0  # between attempts to (re)open the LISTEN connection; also how often it is checked
CLOSE_TIMEOUT_S: Final = 5.0
PUMP_TASK: Final = "claude-budget"  # for the last step at shutdown, which hands this instance's slots back


@dataclass(frozen=True)
class Ticket:
    """A granted call: its row in the store."""

    id: str


def budget_limits(settings: EngineSettings) -> BudgetLimits:
    """The configured limits: calls in flight and, where set, per minute."""
    return BudgetLimits(
        calls=settings.concurrency,
        per_minute={
            Limit.REQUESTS: settings.claude_requests_per_minute,
            Limit.INPUT_TOKENS: settings.claude_input_tokens_per_minute,
            Limit.OUTPUT_TOKENS: settings.claude_output_tokens_per_minute,
        },
    )


class StoreBudget:
    """The shared budget over a Store; `await start()` before use, `await aclose()` at the end.

    `single`: this is the only instance on the database, so other owners' calls are a dead
    process's (default: so on SQLite). `poll_s` and `clock` (time.time()) are for tests.
    """

    def __init__(
        self,
        store: Store,
        limits: BudgetLimits,
        *,
        owner: str,
        ttl_s: float,
        database_url: str,
        single: bool | None = None,
        poll_s: float = POLL_INTERVAL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.owner = owner
        self.limits = limits
        self.ttl_s = ttl_s
        self.last: Outcome | None = None  # the latest step's outcome (counts for metrics and tests)
        self._store = store
        self._clock = clock
        database = parse_database_url(database_url)
        self._listen_dsn = database.dsn if isinstance(database, PostgresDatabase) else None
        # SQLite serves one instance: what its file holds at start-up was left by a dead process.
        self._evict_others = self._listen_dsn is None if single is None else single
        self._poll_s = poll_s
        self._stepped = asyncio.Condition()
        self._steps_started = 0
        self._steps_done = 0
        self._flushes = 0  # flush() calls waiting for a step
        self._waiters: dict[str, asyncio.Future[Ticket]] = {}
        self._wanted: dict[str, Waiting] = {}  # every waiter's request, to queue it again if the store lost it
        self._joined: list[Waiting] = []
        self._ended: list[Ended] = []
        self._observed: RateLimits | None = None
        self._pause_until: float | None = None
        self._shared_pause_until = 0.0  # time.time(), as the store last said
        self._retry_at: float | None = None
        self._next_heartbeat = 0.0
        self._listening = False
        self._kick = asyncio.Event()
        self._closing = False
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(cls, store: Store, settings: EngineSettings, *, owner: str, database_url: str) -> StoreBudget:
        """The budget for the engine's settings, shared through the database at `database_url`."""
        return cls(
            store, budget_limits(settings), owner=owner, ttl_s=settings.claude_lease_ttl_s, database_url=database_url
        )

    async def start(self) -> None:
        """Start the pump (and, on PostgreSQL, the LISTEN connection); drop a dead SQLite process's calls."""
        self._kick.set()
        self._tasks.append(asyncio.create_task(self._pump(), name=PUMP_TASK))
        if self._listen_dsn is not None:
            self._tasks.append(asyncio.create_task(self._listen(self._listen_dsn), name="claude-budget-listen"))

    async def aclose(self) -> None:
        """Stop, handing this instance's slots back at once (they would expire anyway).

        The pump finishes the step it is in rather than being cancelled in the middle of a
        transaction (an SQLite write lock held by a cancelled statement would hold up the last step).
        """
        self._closing = True
        self._stopping.set()
        self._kick.set()
        for task in self._tasks:
            if task.get_name() != PUMP_TASK:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, CLOSE_TIMEOUT_S)
        self._tasks.clear()
        for future in self._waiters.values():
            future.cancel()
        self._waiters.clear()
        self._wanted.clear()
        change = Step(self.owner, self.ttl_s, ended=self._ended, leave=True)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self._store.claude_budget_step(change, self.limits, self._clock())
        except (TimeoutError, SQLAlchemyError, OSError):
            log.warning("could not hand this instance's Claude slots back; they free themselves in %g s", self.ttl_s)

    @property
    def paused_until(self) -> float:
        """The shared pause (ours or another instance's, as last known), as a time.monotonic()."""
        pause = max(self._shared_pause_until, self._pause_until or 0.0)
        return time.monotonic() + (pause - self._clock())

    @property
    def listening(self) -> bool:
        """Whether other instances' releases wake this one at once (PostgreSQL LISTEN is up)."""
        return self._listening

    async def acquire(self, priority: Priority, cost: CallCost) -> Lease:
        """Wait for this call's turn across every instance (see the module docstring)."""
        call_id = uuid.uuid4().hex
        future: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        self._waiters[call_id] = future
        self._wanted[call_id] = Waiting(call_id, int(priority), self._clock(), cost)
        self._joined.append(self._wanted[call_id])
        self._kick.set()
        try:
            return await future
        except asyncio.CancelledError:
            self._withdraw(call_id, future)
            raise

    def release(self, lease: Lease, usage: TokenUsage | None) -> None:
        """The call ended: its slot and unused reservation go back at the next step (at once)."""
        if not isinstance(lease, Ticket):
            raise TypeError(f"not a lease of this budget: {lease!r}")
        self._ended.append(Ended(lease.id, usage))
        self._kick.set()

    def pause(self, seconds: float) -> None:
        """No instance starts a call for `seconds` (written at the next step, at once)."""
        self._pause_until = max(self._pause_until or 0.0, self._clock() + seconds)
        self._kick.set()

    def observe(self, limits: RateLimits) -> None:
        """Keep the latest rate-limit headers for the next step (an older report adds nothing to a newer)."""
        if self._observed is None or limits.observed_at >= self._observed.observed_at:
            self._observed = limits
            self._kick.set()

    def wake(self) -> None:
        """Step now: something outside changed (another instance, or the clock in a test)."""
        self._kick.set()

    async def until(self, predicate: Callable[[Outcome], bool]) -> Outcome:
        """Wait for a step whose outcome satisfies `predicate` (the latest one may already)."""
        async with self._stepped:
            await self._stepped.wait_for(lambda: self.last is not None and predicate(self.last))
        assert self.last is not None
        return self.last

    async def flush(self) -> Outcome:
        """Step now, with everything queued so far (and the clock as it is now); that step's outcome."""
        target = self._steps_started + 1
        self._flushes += 1
        self._kick.set()
        try:
            return await self.until(lambda _: self._steps_done >= target)
        finally:
            self._flushes -= 1

    def _withdraw(self, call_id: str, future: asyncio.Future[Ticket]) -> None:
        """A waiter was cancelled: its row goes (a grant that came just then is handed back unused)."""
        self._waiters.pop(call_id, None)
        self._wanted.pop(call_id, None)
        unsent = [w for w in self._joined if w.id == call_id]
        if unsent and not future.done():
            self._joined.remove(unsent[0])  # never reached the store
            return
        self._ended.append(Ended(call_id, None, sent=False))
        self._kick.set()

    async def _pump(self) -> None:
        failures = 0
        while not self._closing:
            await self._wait_for_work()
            if self._closing or not self._has_work():
                continue
            try:
                await self._step()
                failures = 0
            except (SQLAlchemyError, OSError) as error:
                failures += 1
                delay_s = min(STEP_RETRY_S * 2 ** (failures - 1), STEP_RETRY_MAX_S)
                log.warning("the shared Claude budget's step failed (%s); trying again in %g s", error, delay_s)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_s):
                        await self._stopping.wait()
                self._kick.set()

    async def _wait_for_work(self) -> None:
        now = self._clock()
        wake_at = self._next_heartbeat
        if self._waiters:
            poll_s = self._poll_s if self._listening or self._listen_dsn is None else UNLISTENED_POLL_INTERVAL_S
            wake_at = min(wake_at, now + poll_s, self._retry_at if self._retry_at is not None else math.inf)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(wake_at - now, 0.0)):
                await self._kick.wait()
        self._kick.clear()

    def _has_work(self) -> bool:
        pending = self._joined or self._ended or self._observed is not None or self._pause_until is not None
        return bool(pending or self._waiters or self._flushes or self._clock() >= self._next_heartbeat)

    async def _step(self) -> None:
        self._steps_started += 1
        now = self._clock()
        renew = now >= self._next_heartbeat
        change = Step(
            self.owner,
            self.ttl_s,
            joined=self._joined,
            ended=self._ended,
            observed=[] if self._observed is None else [self._observed],
            pause_until=self._pause_until,
            renew=renew,
            evict_others=self._evict_others,
        )
        self._joined, self._ended, self._observed, self._pause_until = [], [], None, None
        try:
            outcome = await self._store.claude_budget_step(change, self.limits, now)
        except BaseException:
            self._requeue(change)
            raise
        self._evict_others = False
        if renew:
            self._next_heartbeat = now + self.ttl_s / HEARTBEATS_PER_TTL
        self._apply(outcome)
        self._steps_done = self._steps_started
        async with self._stepped:
            self._stepped.notify_all()

    def _requeue(self, change: Step) -> None:
        """A step that did not happen: what it carried goes into the next one."""
        self._joined[:0] = [w for w in change.joined if w.id in self._waiters]
        self._ended[:0] = change.ended
        if self._observed is None and change.observed:
            self._observed = change.observed[-1]
        if change.pause_until is not None:
            self._pause_until = max(self._pause_until or 0.0, change.pause_until)

    def _apply(self, outcome: Outcome) -> None:
        self.last = outcome
        self._retry_at = outcome.retry_at
        self._shared_pause_until = outcome.paused_until
        for call_id in outcome.granted & self._waiters.keys():
            future = self._waiters.pop(call_id)
            self._wanted.pop(call_id, None)
            if not future.done():  # one cancelled meanwhile is handed back by _withdraw
                future.set_result(Ticket(call_id))
        if outcome.known is not None:
            # Our rows expired while steps failed for longer than the TTL: queue those calls again.
            queued = {w.id for w in self._joined}
            lost = [w for call_id, w in self._wanted.items() if call_id not in outcome.known and call_id not in queued]
            if lost:
                log.warning("the store lost %d of this instance's waiting Claude calls; queued again", len(lost))
                self._joined.extend(lost)
                self._kick.set()

    async def _listen(self, dsn: str) -> None:
        while True:
            try:
                connection = await asyncpg.connect(dsn)
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("cannot LISTEN for the shared Claude budget (%s); polling meanwhile", error)
                await asyncio.sleep(LISTEN_RETRY_S)
                continue
            try:
                await connection.add_listener(NOTIFY_CHANNEL, self._notified)
                self._listening = True
                self._kick.set()  # whatever happened before we listened
                while True:  # a connection that died quietly shows when it is used
                    await asyncio.sleep(LISTEN_RETRY_S)
                    async with asyncio.timeout(LISTEN_RETRY_S):
                        await connection.execute("SELECT 1")
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("lost the shared Claude budget's LISTEN connection (%r); reconnecting", error)
            finally:
                self._listening = False
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    connection.terminate()

    def _notified(self, *_: Any) -> None:
        if self._waiters:
            self._kick.set()
