"""At most N consultations run at once per process; the rest wait in arrival order.

    ticket = admission.ticket()          # joins the queue (or is admitted at once)
    if not ticket.admitted:
        show(f"queued, {ticket.ahead} ahead")
    async with ticket:                   # waits for its turn; leaving frees the place
        ...

A waiting consultation holds no image and no Claude slot: callers download and decode only inside
the block. Listeners added with `on_change` hear about every move of the queue (to re-render
"n ahead"; they should coalesce, since one start moves every waiter).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from types import TracebackType


class Ticket:
    """One consultation's place: queued, admitted, or finished."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._admitted = asyncio.get_running_loop().create_future()
        self._done = False

    @property
    def admitted(self) -> bool:
        """Whether it may run now."""
        return self._admitted.done()

    @property
    def ahead(self) -> int:
        """How many queued consultations go before this one (0 once admitted)."""
        return self._admission.position(self)

    def admit(self) -> None:
        """Its turn has come."""
        if not self._admitted.done():
            self._admitted.set_result(None)

    async def __aenter__(self) -> Ticket:
        try:
            await asyncio.shield(self._admitted)
        except asyncio.CancelledError:
            self.leave()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.leave()

    def leave(self) -> None:
        """Give up the place (running or queued); safe to call more than once."""
        if not self._done:
            self._done = True
            self._admission.leave(self)


class Admission:
    """A FIFO bound on running consultations, with a queue whose positions callers can show."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.running = 0
        self.peak = 0
        self._queue: deque[Ticket] = deque()
        self._listeners: list[Callable[[], None]] = []

    @property
    def waiting(self) -> int:
        """How many consultations are queued."""
        return len(self._queue)

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener` after every change of the queue."""
        self._listeners.append(listener)

    def ticket(self) -> Ticket:
        """A new place: admitted at once when there is room and nobody is waiting."""
        ticket = Ticket(self)
        if self.running < self.capacity and not self._queue:
            self._start(ticket)
        else:
            self._queue.append(ticket)
        self._changed()
        return ticket

    def position(self, ticket: Ticket) -> int:
        """Queued tickets ahead of `ticket`."""
        for index, queued in enumerate(self._queue):
            if queued is ticket:
                return index
        return 0

    def leave(self, ticket: Ticket) -> None:
        """`ticket` is finished (or gave up waiting): admit the next ones."""
        if ticket.admitted:
            self.running -= 1
        else:
            self._queue.remove(ticket)
        while self._queue and self.running < self.capacity:
            self._start(self._queue.popleft())
        self._changed()

    def _start(self, ticket: Ticket) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        ticket.admit()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()
