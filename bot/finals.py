"""Finals: wake whoever waits for a consultation to reach its final state.

A follow-up asked while the analysis still runs is answered once the consultation is final. In
this process the job says so with `done(id)` the moment it ends; a consultation another instance
runs (shared database, or taken over after a restart) is noticed by polling the store.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from bot.store import ACTIVE_STATUSES, Consultation

DEFAULT_POLL_S = 2.0


class ConsultationReader(Protocol):
    """The part of the Store that `wait` reads."""

    async def get(self, consultation_id: str) -> Consultation | None:
        """The stored consultation, or None."""
        ...


class Finals:
    """One per process: `done` from the jobs, `wait` from the follow-ups."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._waiters: dict[str, int] = {}

    def done(self, consultation_id: str) -> None:
        """The job of `consultation_id` ended (its final state is stored): wake its waiters."""
        event = self._events.pop(consultation_id, None)
        if event is not None:
            event.set()

    async def wait(
        self, consultation_id: str, store: ConsultationReader, *, poll_s: float = DEFAULT_POLL_S
    ) -> Consultation:
        """The consultation once its stored status is final; KeyError when it is not stored."""
        self._waiters[consultation_id] = self._waiters.get(consultation_id, 0) + 1
        try:
            while True:
                # Registered before reading the store, so a `done` between the read and the
                # wait still wakes us.
                event = self._events.setdefault(consultation_id, asyncio.Event())
                record = await store.get(consultation_id)
                if record is None:
                    raise KeyError(consultation_id)
                if record.status not in ACTIVE_STATUSES:
                    return record
                try:
                    async with asyncio.timeout(poll_s):
                        await event.wait()
                except TimeoutError:
                    pass  # another instance may run it: read the store again
        finally:
            left = self._waiters[consultation_id] - 1
            if left:
                self._waiters[consultation_id] = left
            else:
                # Nobody waits any more: forget the event so finished ids do not pile up.
                del self._waiters[consultation_id]
                self._events.pop(consultation_id, None)
