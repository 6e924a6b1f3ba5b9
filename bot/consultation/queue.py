"""Queued boards show their place; the places are re-rendered together, not on every start.

One consultation starting moves every waiting one up, so updating each board on each start would
spend Slack's app-wide update budget on the least useful change there is. Instead, a change of the
queue schedules one refresh `MATREC_QUEUE_REFRESH_S` later, which re-renders only the boards whose shown
place is out of date; each board's writer still paces and coalesces.
"""

from __future__ import annotations

import asyncio
import contextlib

from bot.consultation.job import JobRunner
from matrec.admission import Admission


class QueueNotices:
    """Keeps "queued, n ahead" on the boards roughly current, in coalesced batches."""

    def __init__(self, runner: JobRunner, admission: Admission, refresh_s: float) -> None:
        self.runner = runner
        self.refresh_s = refresh_s
        self.refreshes = 0
        self._pending: asyncio.Task[None] | None = None
        admission.on_change(self._changed)

    def _changed(self) -> None:
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self._refresh_later(), name="queue notices")

    async def _refresh_later(self) -> None:
        await asyncio.sleep(self.refresh_s)  # a deliberate delay: changes in the meantime join this batch
        self.refresh()

    def refresh(self) -> None:
        """Re-render every queued board whose shown place changed."""
        self.refreshes += 1
        for job in list(self.runner.queued):
            if job.writer is None or job.ticket.admitted:
                continue
            ahead = job.ticket.ahead
            if ahead != job.shown_ahead:
                job.shown_ahead = ahead
                job.writer.submit(self.runner.render(job))

    async def aclose(self) -> None:
        """Stop the pending refresh, if any."""
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pending
